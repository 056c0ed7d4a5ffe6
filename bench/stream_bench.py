"""Streaming freshness (issue 14): payments published to the fraud tenant's Redis stream at a fixed
rate go through the stream worker (`mlplatform stream`, its own process) into the Feast online store,
while the fraud server, reading that store, takes fixed-rate traffic; beside it the baseline: the
batch pipeline's features step (tables built, applied, materialised online) on the same payments.

Everything runs against a private `redis-server` (mlplatform.redis_local) holding the stream, the
worker's state and the online store. The streamed payments are of new cards (ids above the
workspace's), so the server's requests keep reading the workspace's cards. Figures:
- event -> online: bench/stream_feed.py's prober (a Feast read of the card until its row carries the
  payment's event time); and the worker's own mlplatform_stream_event_age_seconds (bucketed, p99
  interpolated as Prometheus' histogram_quantile does);
- the worker's CPU (user + system) per event, and how long the backlog took to drain after the feed;
- the server's latency at its rate, at the same time (bench/loadgen.py, open loop).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import orjson

from bench.common import STARTUP_SECONDS, TARGETS, pct, ratio
from mlplatform.processes import free_port, server_env, spawn, start, stop, wait_ready

WORKER_CARD_BASE = 10_000_000  # streamed cards: far above the generated ones
SERVER_ALONE_SECONDS = 20  # the server's baseline: the same rate with no stream traffic


def histogram_p99(text: str, name: str, q: float = 0.99) -> float | None:
    """histogram_quantile(q) of one histogram in a /metrics text (one label set), as Prometheus
    computes it: linear within the bucket the rank falls in."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets = sorted(((float(s.labels["le"]), s.value) for f in text_string_to_metric_families(text)
                      for s in f.samples if s.name == f"{name}_bucket"), key=lambda b: b[0])
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    lo_bound, lo_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lo_bound
            return round(lo_bound + (bound - lo_bound) * (rank - lo_count) / max(count - lo_count, 1e-12), 4)
        lo_bound, lo_count = bound, count
    return None


def counter(text: str, name: str, **labels) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def run(tenant: Path, home: Path, p: dict, work: Path) -> dict:
    if shutil.which("redis-server") is None:
        return {"status": "skipped: redis-server not installed (apt-get install redis-server)"}
    import httpx
    import pandas as pd
    import psutil

    from bench.loadgen import fixed_rate
    from mlplatform import services
    from mlplatform.config import load_tenant
    from mlplatform.data.ingest import load_raw
    from mlplatform.features import store
    from mlplatform.features.stream import stream_key
    from mlplatform.features.repo import write_repo
    from mlplatform.features.stream_metrics import stream_lag
    from mlplatform.redis_local import local_redis
    from mlplatform.serving.smoke import newest_rows, v1_body, v1_path
    from mlplatform.tenants import apply_env_overrides
    from mlplatform.workspace import Workspace

    rate, seconds, rps = p["stream_rate"], p["stream_seconds"], p["stream_server_rps"]
    base_cfg, ws = load_tenant(tenant), Workspace(home)
    out: dict = {"status": "ok", "rate": rate, "seconds": seconds, "server_rps": rps}
    with local_redis(work / "stream-redis") as url:
        import redis

        address = url.removeprefix("redis://").split("/", 1)[0]
        env = server_env(home) | {services.ONLINE_STORE: "redis", services.REDIS: address, services.STREAM_REDIS: url}
        cfg = apply_env_overrides(base_cfg, env)
        client = redis.Redis.from_url(url, decode_responses=True)
        procs = []
        try:
            # the workspace's rows online in this Redis (the server's terminal and card rows)
            raw = load_raw(cfg, ws)
            end = pd.to_datetime(raw[cfg.data.timestamp], utc=True).max() + pd.Timedelta(seconds=1)
            used0, keys0 = client.info("memory")["used_memory"], client.dbsize()
            t = time.monotonic()
            store.materialize(cfg, ws, end=end.to_pydatetime())
            out["initial_materialize_seconds"] = round(time.monotonic() - t, 2)
            out["online_store_memory"] = online_memory(client, cfg, used0, keys0)
            mport, sport = free_port(), free_port()
            worker = spawn([sys.executable, "-m", "mlplatform.cli", "stream", str(tenant), "--metrics-port", str(mport)],
                           work / "stream-worker.log", env=env)
            procs.append(worker)
            metrics_url = f"http://127.0.0.1:{mport}/metrics"
            wait_ready(worker, metrics_url, work / "stream-worker.log", STARTUP_SECONDS, "stream worker")
            procs.append(start([sys.executable, "-m", "mlplatform.serving.server", str(tenant), "--port", str(sport)],
                               f"http://127.0.0.1:{sport}/v2/health/ready", work / "stream-server.log",
                               timeout=STARTUP_SECONDS, name="kserve server", env=env))
            rows, _ = newest_rows(base_cfg, ws, 200)
            bodies = [orjson.dumps(v1_body([r])) for r in rows]
            server_url = f"http://127.0.0.1:{sport}{v1_path(cfg)}"
            fixed_rate(server_url, bodies, rate=50, seconds=2)  # warm-up
            # baseline in the same run: the server alone at the same rate, no stream traffic
            sproc = psutil.Process(procs[-1].pid)
            scpu0 = sum(sproc.cpu_times()[:2])
            alone = fixed_rate(server_url, bodies, rate=rps, seconds=SERVER_ALONE_SECONDS).summary()
            out["server_alone"] = {k: alone[k] for k in ("sent", "errors", "achieved_rps", "p50_ms", "p99_ms", "max_ms")} | {
                "cpu_ms_per_request": round((sum(sproc.cpu_times()[:2]) - scpu0) * 1000 / max(alone["sent"], 1), 3)}

            wproc = psutil.Process(worker.pid)
            cpu0, text0 = sum(wproc.cpu_times()[:2]), httpx.get(metrics_url).text
            feed_out = work / "stream-feed.json"
            feeder = spawn([sys.executable, "-m", "bench.stream_feed", str(tenant), str(home), str(rate), str(seconds),
                            str(WORKER_CARD_BASE), "5000", str(feed_out)], work / "stream-feed.log", env=env)
            procs.append(feeder)
            time.sleep(0.5)  # the feeder's imports; the server's load starts with the payments
            scpu0 = sum(sproc.cpu_times()[:2])
            served = fixed_rate(server_url, bodies, rate=rps, seconds=seconds).summary()
            server_cpu_ms = (sum(sproc.cpu_times()[:2]) - scpu0) * 1000 / max(served["sent"], 1)
            feeder.wait(timeout=seconds + 120)
            if feeder.returncode != 0:
                raise RuntimeError(f"stream feeder exited {feeder.returncode}: {(work / 'stream-feed.log').read_text()[-2000:]}")
            feed = json.loads(feed_out.read_text())
            t = time.monotonic()  # the backlog left when the feed stopped
            while True:
                lag = stream_lag(client, stream_key(cfg), cfg.features.stream.group)
                if not (lag["undelivered"] or lag["pending"]) or time.monotonic() - t > 60:
                    break
                time.sleep(0.05)
            out["drain_seconds_after_feed"] = round(time.monotonic() - t, 2)
            cpu1, text1 = sum(wproc.cpu_times()[:2]), httpx.get(metrics_url).text
            applied = counter(text1, "mlplatform_stream_events_total", outcome="applied") - \
                counter(text0, "mlplatform_stream_events_total", outcome="applied")
            probe = feed["probe_ms"]
            out["feed"] = {k: feed[k] for k in ("sent", "seconds", "achieved_rate", "probe_timeouts")}
            out["event_to_online"] = {"probes": len(probe), "p50_ms": pct(probe, 50) if probe else None,
                                      "p99_ms": pct(probe, 99) if probe else None,
                                      "max_ms": round(max(probe), 3) if probe else None,
                                      "worker_histogram_p99_s": histogram_p99(text1, "mlplatform_stream_event_age_seconds")}
            out["worker"] = {"events_applied": int(applied),
                             "cpu_ms_per_event": round((cpu1 - cpu0) * 1000 / applied, 4) if applied else None,
                             "rows_written": int(counter(text1, "mlplatform_stream_rows_total", result="written")
                                                 - counter(text0, "mlplatform_stream_rows_total", result="written"))}
            out["server"] = {k: served[k] for k in ("sent", "errors", "achieved_rps", "p50_ms", "p99_ms", "max_ms")} | {
                "cpu_ms_per_request": round(server_cpu_ms, 3),
                # one server process: the share of its one core it was busy (queueing sets the tail)
                "core_utilisation": round(server_cpu_ms * served["achieved_rps"] / 1000, 3)}
            out["worker_state_memory"] = worker_memory(client, cfg)
            for proc in procs:
                stop(proc)
            procs.clear()
            out["baseline_features_step"] = _batch_baseline(cfg, raw, client, work)
        finally:
            for proc in procs:
                stop(proc)
            write_repo(base_cfg, ws)  # the workspace's own store settings again (the processes rewrote them)
    e2e, srv = out["event_to_online"], out["server"]
    out["target"] = (f"event -> online p99 < {TARGETS['stream_event_to_online_p99_ms']:g} ms at {rate} payments/s "
                     f"for {seconds} s, with the fraud server at {rps} req/s and its p99 < "
                     f"{TARGETS['serving_p99_ms_at_200rps']:g} ms")
    out["target_met"] = bool(e2e["p99_ms"] is not None and e2e["p99_ms"] < TARGETS["stream_event_to_online_p99_ms"]
                             and feed["probe_timeouts"] == 0 and srv["errors"] == 0
                             and srv["p99_ms"] < TARGETS["serving_p99_ms_at_200rps"])
    out["ratio_server_p99_with_stream_vs_alone"] = ratio(srv["p99_ms"], out["server_alone"]["p99_ms"])
    base = out["baseline_features_step"]["seconds"]
    out["ratio_batch_vs_stream_p99"] = ratio(base * 1000, e2e["p99_ms"]) if e2e["p99_ms"] else None
    return out


def online_memory(client, cfg, used_before: int, keys_before: int) -> dict:
    """What materialising the workspace added to the (empty) Redis: Feast keeps one hash per entity
    key (a card, a terminal) holding every view of that entity, so bytes per key is the online
    store's memory per entity, averaged over the tenant's entity kinds."""
    used, keys = client.info("memory")["used_memory"], client.dbsize()
    entities = keys - keys_before
    return {"tenant": cfg.name, "entities": entities, "bytes": used - used_before,
            "bytes_per_entity": round((used - used_before) / entities) if entities else None}


def worker_state_prefix(cfg) -> str:
    return f"mlplatform:{cfg.name}:{cfg.features.stream.view}:"


def worker_memory(client, cfg) -> dict:
    """The stream worker's own state (buckets, applied event ids, last pushed stamp) per card it
    has seen, by Redis' MEMORY USAGE of its keys: beside the online rows, the stream's cost."""
    cards, total = set(), 0
    for key in client.scan_iter(f"{worker_state_prefix(cfg)}*", count=1000):
        total += client.memory_usage(key, samples=0) or 0
        cards.add(key.rsplit(":", 1)[-1])
    return {"cards": len(cards), "bytes": total, "bytes_per_card": round(total / len(cards)) if cards else None}


def _batch_baseline(cfg, raw, client, work: Path) -> dict:
    """The features step of the batch pipeline (build_tables, apply, materialize: steps.features minus
    the training set) on the workspace's payments plus the streamed ones, in a workspace of its own,
    into the same Redis: the time until those payments are online."""
    import pandas as pd

    from mlplatform.features import store
    from mlplatform.features.stream import stream_key
    from mlplatform.workspace import Workspace

    entries = client.xrange(stream_key(cfg))
    ts = pd.to_datetime([int(f["ts_us"]) for _, f in entries], unit="us", utc=True)
    streamed = pd.DataFrame({
        "transaction_id": raw["transaction_id"].max() + 1 + pd.RangeIndex(len(entries)),
        "tx_datetime": ts, "customer_id": [int(f["key"]) for _, f in entries],
        "terminal_id": raw["terminal_id"].sample(len(entries), replace=True, random_state=0).to_numpy(),
        "amount": [float(f["value"]) for _, f in entries], "is_fraud": 0, "fraud_scenario": 0,
        "label_available_at": ts + pd.Timedelta(days=cfg.data.label_delay_days or 7)})
    both = pd.concat([raw, streamed[raw.columns.intersection(streamed.columns)]], ignore_index=True)
    ws = Workspace(work / "stream-batch-home")
    t = time.monotonic()
    store.build_tables(cfg, ws, both)
    store.apply(cfg, ws)
    store.materialize(cfg, ws, end=(ts.max() + pd.Timedelta(seconds=1)).to_pydatetime())
    return {"seconds": round(time.monotonic() - t, 2), "payments": len(both), "streamed_payments": len(entries)}


def markdown(s: dict) -> list[str]:
    if s.get("status", "ok") != "ok":
        return ["## Streaming freshness", "", str(s["status"]), ""]
    e, w, srv, b, f = s["event_to_online"], s["worker"], s["server"], s["baseline_features_step"], s["feed"]
    return ["## Streaming freshness (stream worker vs. the batch features step)", "",
            f"Payments published to the fraud tenant's Redis stream at {s['rate']}/s for {s['seconds']} s "
            f"(achieved {f['achieved_rate']}/s, {f['sent']} sent) go through `mlplatform stream` (its own "
            f"process) into the Feast online store, while the fraud server takes {s['server_rps']} req/s from "
            "the same Redis. Event -> online is probed through Feast (the predictor's read: the card's row "
            "until it carries the payment's time, polled every 10 ms), a payment every 50 ms; the worker's own "
            "histogram is beside it. The worker waits up to `linger_ms` (100 ms) for fuller rounds: less CPU per "
            "event, up to 100 ms more event -> online. "
            "Baseline: the batch pipeline's features step (build the tables, apply, materialise) on the same "
            "payments plus the workspace's; on top of it comes the schedule interval of the batch runs.", "",
            "| figure | value |", "|---|---|",
            f"| event -> online p50 / p99 / max (probe) | {e['p50_ms']} / {e['p99_ms']} / {e['max_ms']} ms "
            f"({e['probes']} probes, {f['probe_timeouts']} timeouts) |",
            f"| event -> online p99 (worker histogram, interpolated) | {e['worker_histogram_p99_s']} s |",
            f"| worker CPU per event | {w['cpu_ms_per_event']} ms ({w['events_applied']} events, "
            f"{w['rows_written']} rows written) |",
            f"| backlog drained after the feed stopped | {s['drain_seconds_after_feed']} s |",
            f"| fraud server at {s['server_rps']} req/s meanwhile: p50 / p99, errors | {srv['p50_ms']} / "
            f"{srv['p99_ms']} ms, {srv['errors']} errors ({srv['achieved_rps']} req/s achieved) |",
            *([f"| baseline: the server alone at {s['server_rps']} req/s, same run: p50 / p99 | {a['p50_ms']} / "
               f"{a['p99_ms']} ms ({a['cpu_ms_per_request']} CPU ms per request) |",
               f"| server p99 with the stream / alone | {s['ratio_server_p99_with_stream_vs_alone']}x (its one "
               f"process {srv['cpu_ms_per_request']} CPU ms per request, {srv['core_utilisation']:.0%} of a core busy) |"]
              if (a := s.get("server_alone")) else []),
            f"| baseline: batch features step on {b['payments']} payments | {b['seconds']} s |",
            *([f"| online store (Feast on Redis) per entity | {m['bytes_per_entity']:,} bytes ({m['entities']:,} "
               f"entities, {m['bytes']:,} bytes) |"] if (m := s.get("online_store_memory") or {}).get("bytes_per_entity") else []),
            *([f"| worker state per card (buckets, event ids) | {m['bytes_per_card']:,} bytes ({m['cards']:,} cards) |"]
              if (m := s.get("worker_state_memory") or {}).get("bytes_per_card") else []),
            f"| batch step / stream p99 | {s['ratio_batch_vs_stream_p99']}x |", "",
            f"Target: {s['target']}: **{'met' if s['target_met'] else 'not met'}**.", ""]


if __name__ == "__main__":
    from bench.common import QUICK, FULL, build_workspace

    quick = "--quick" in sys.argv
    import tempfile

    with tempfile.TemporaryDirectory(prefix="stream-bench-") as tmp:
        tenant, home = build_workspace(quick, Path(tmp))
        print(json.dumps(run(tenant, home, QUICK if quick else FULL, Path(tmp)), indent=2, default=str))
