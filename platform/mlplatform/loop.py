"""`make demo-loop`: the feedback loop, live, on one machine.

traffic -> nginx -> stable model server -> Prometheus (drift gauges, rules rendered from the tenant's
chart) -> alert -> Alertmanager -> retraining webhook -> `mlplatform run` on fresh data -> a new
version registered (gate: challenger) -> rollout: shadow -> canary steps -> promote or roll back.

A ranking tenant (no drift gauges: the ranker logs no drift reference) runs the quality half of
the loop instead (mlplatform.loop_ranking): query traffic, simulated clicks, the quality job.

A tenant with a stream (features.stream) gets its traffic as payments: each goes to the tenant's
Redis stream, the stream worker (`mlplatform stream`, started by the loop) moves the features, and a
sample is scored first (mlplatform.loop_stream: a compressed clock, a week per 30 s). The loop
starts its own `redis-server` for the stream and the online store when none is configured.

Every step is printed with a timestamp and written to runs/<stamp>/loop.json.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.markup import escape

from mlplatform import loop_ranking, loop_stream
from mlplatform.config import LoopDrift, load_tenant
from mlplatform.workspace import Workspace

# The loop runs the tenant with short windows so it completes in minutes; the tenant file keeps
# its production values. Each key is a dotted path into the tenant file.
LOOP_OVERRIDES: dict[str, Any] = {
    "drift.window_rows": 150,  # drift computed over the last 150 requests
    "drift.min_rows": 100,
    "rollout.interval_seconds": 6,
    "rollout.window": "30s",
    "rollout.shadow_seconds": 12,
    "rollout.step_weights": [25, 50],
    "rollout.max_weight": 50,
    "retraining.cooldown_minutes": 30,
}
RULE_OVERRIDES = {"drift": {"for_minutes": 0.1}}  # alerts fire after 6 s above threshold, not 10 min


def _set(raw: dict, dotted: str, value: Any) -> None:
    node = raw
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value


def loop_tenant_file(tenant_file: Path, out_dir: Path, data_args: dict[str, Any],
                     drift: LoopDrift | None = None) -> Path:
    """A copy of the tenant file with the loop's short windows, and fresh data for retraining
    (the generator's seed moves on: the retrained model sees data the champion never saw).
    `drift` (the tenant's loop.drift): the fresh data lives through the same shift the loop injects
    into the traffic, as the world a drift alert reports would, through the generator arguments
    it names (loop.drift.generator; none named: no shift)."""
    raw = yaml.safe_load(tenant_file.read_text())
    streaming = (raw.get("features") or {}).get("stream") is not None
    for dotted, value in (LOOP_OVERRIDES | (loop_stream.LOOP_OVERRIDES if streaming else {})).items():
        _set(raw, dotted, value)
    args = raw["data"].setdefault("generator_args", {})
    args.update(data_args)
    if "seed" in args:
        args["seed"] = int(args["seed"]) + 1
    if drift is not None and drift.generator is not None:
        args.update(shift_args(drift, args))
    path = out_dir / "tenants" / raw["name"] / "tenant.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def shift_args(drift: LoopDrift, generator_args: dict[str, Any]) -> dict[str, Any]:
    """The generator arguments that shift the data as the loop shifts the traffic: `factor`, from
    `from_fraction` of the generated days on (enough shifted days to train and to validate on)."""
    names = drift.generator
    return {names.factor: drift.factor, names.from_day: int(int(generator_args[names.days]) * drift.from_fraction)}


def injected_drift(cfg) -> LoopDrift:
    """The drift the loop injects into the traffic: the tenant file declares it (loop.drift)."""
    if cfg.loop.drift is None:
        raise RuntimeError(f"tenant {cfg.name!r} declares no loop.drift: the loop does not know which request field "
                           "to shift, by how much (see examples/fraud/tenant.yaml)")
    return cfg.loop.drift


def drifted(row: dict[str, Any], drift: LoopDrift) -> dict[str, Any]:
    """A request row with the loop's drift: `column` x `factor`, to 2 decimals, capped at `max`."""
    if drift.column in row:
        value = round(float(row[drift.column]) * drift.factor, 2)
        row[drift.column] = value if drift.max is None else min(drift.max, value)
    return row


class Journal:
    """Timestamped steps, printed as they happen and kept for loop.json."""

    def __init__(self, console: Console):
        self.console, self.t0, self.steps = console, time.monotonic(), []

    def __call__(self, event: str, **details: Any) -> None:
        at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        elapsed = time.monotonic() - self.t0
        self.steps.append({"at": at, "elapsed_s": round(elapsed, 1), "event": event, **details})
        extra = " ".join(f"{k}={v}" for k, v in details.items() if v is not None)
        self.console.print(f"[dim]{at}[/] [bold]+{elapsed:5.0f}s[/] {escape(f'{event} {extra}')}")


class Traffic(threading.Thread):
    """Requests through the proxy at a steady rate; while `drift` is set (the tenant's loop.drift),
    each request carries it."""

    def __init__(self, url: str, path: str, rows: list[dict], rate: float = 20.0):
        super().__init__(daemon=True)
        self.url, self.path, self.rows, self.rate = url, path, rows, rate
        self.drift: LoopDrift | None = None
        self.stop_event = threading.Event()
        self.sent = self.errors = 0

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            i = 0
            while not self.stop_event.is_set():
                row = dict(self.rows[i % len(self.rows)])
                drift = self.drift
                if drift is not None:
                    row = drifted(row, drift)
                with contextlib.suppress(httpx.HTTPError):
                    resp = client.post(self.path, json={"instances": [row]})
                    self.errors += resp.status_code >= 400
                self.sent += 1
                i += 1
                time.sleep(1.0 / self.rate)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)


def traffic_rows(cfg, ws: Workspace, n: int = 400, seed: int = 0) -> list[dict]:
    """Request rows sampled across the validation window (so hours and weekdays look like the
    data the drift reference was built from), keeping entities the online store knows."""
    import numpy as np
    import pandas as pd

    from mlplatform.data.ingest import load_raw
    from mlplatform.features.store import OnlineFeatures
    from mlplatform.serving.inputs import RequestSchema
    from mlplatform.serving.smoke import _json_value

    names = [s.name for s in RequestSchema(cfg).specs]
    raw = load_raw(cfg, ws)
    ts = pd.to_datetime(raw[cfg.data.timestamp], utc=True)
    recent = raw[ts >= ts.max() - pd.Timedelta(days=cfg.model.split.validation_days)]
    sample = recent[names].sample(n=min(2 * n, len(recent)), random_state=seed).reset_index(drop=True)
    rows = [{k: _json_value(v) for k, v in r.items()} for r in sample.to_dict("records")]
    keys = cfg.features.join_keys
    feats = OnlineFeatures(cfg, ws).fetch([{k: r[k] for k in keys} for r in rows])
    known = np.ones(len(rows), dtype=bool)
    for view in cfg.features.feature_views:
        known &= ~feats[[f.name for f in view.features]].isna().all(axis=1).to_numpy()
    return [r for r, ok in zip(rows, known) if ok][:n]


def _wait(what: str, check, timeout: float, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f}s")


def run_loop(tenant_file: Path, ws: Workspace | None, runs: Path, data_args: dict[str, Any],
             console: Console | None = None, timeout: float = 900) -> dict[str, Any]:
    """One pass of the loop. `ws` None: a new workspace in the run folder, so every run tells the same
    story from a champion of the world before the shift (a workspace where an earlier loop already
    retrained on shifted data would see "drift" from the first request)."""
    from mlplatform.demo import new_run_dir

    console = console or Console()
    run_dir = new_run_dir(runs)
    streaming = load_tenant(tenant_file).features.stream is not None
    with loop_stream.stream_redis(run_dir) if streaming else contextlib.nullcontext():
        return _run_loop(tenant_file, ws, run_dir, runs, data_args, console, timeout)


def _run_loop(tenant_file: Path, ws: Workspace | None, run_dir: Path, runs: Path, data_args: dict[str, Any],
              console: Console, timeout: float) -> dict[str, Any]:
    import pandas as pd

    from mlplatform.data.ingest import load_raw
    from mlplatform.demo import run_pipeline
    from mlplatform.features.stream import stream_key
    from mlplatform.monitoring.rules import render_rules
    from mlplatform.monitoring.stack import MonitoringStack
    from mlplatform.monitoring.webhook import start_webhook
    from mlplatform.processes import free_port, stop
    from mlplatform.registry.mlflow_registry import champion_version, connect
    from mlplatform.rollout.backends import EmbeddedNginxBackend
    from mlplatform.rollout.controller import run_rollout
    from mlplatform.rollout.state import rollout_dir
    from mlplatform.serving.smoke import v1_path
    from mlplatform.tasks import task_for
    from mlplatform.tenants import apply_env_overrides

    ws = ws or Workspace(run_dir / "home")
    log = Journal(console)
    drift = load_tenant(tenant_file).loop.drift
    tenant_file = loop_tenant_file(tenant_file, run_dir, data_args, drift)
    cfg = apply_env_overrides(load_tenant(tenant_file))  # the loop's Redis, when it started one
    result: dict[str, Any] = {"tenant": cfg.name, "run_dir": str(run_dir), "steps": log.steps}

    trained_before = champion_version(connect(ws), cfg.name) is not None
    if not trained_before:
        log("no champion yet: training the first model", run_id="loop-base")
        base = yaml.safe_load(tenant_file.read_text())
        args = base["data"]["generator_args"]
        args["seed"] = args.get("seed", 8) - 1
        if drift is not None and drift.generator is not None:  # the champion learnt the world before the shift
            for key in (drift.generator.factor, drift.generator.from_day):
                args.pop(key, None)
        base_file = run_dir / "tenants" / "base.yaml"
        base_file.write_text(yaml.safe_dump(base, sort_keys=False))
        run_pipeline(console, base_file, ws, "loop-base", run_dir)
    champion = str(champion_version(connect(ws), cfg.name).version)
    log("champion in service", version=champion, workspace=str(ws.home))

    backend = EmbeddedNginxBackend(cfg, ws, free_port())
    stack = None
    webhook = start_webhook(ws, port=free_port(), tenant_files={cfg.name: tenant_file})
    traffic = worker = None
    try:
        if cfg.features.stream is not None:
            if trained_before:  # the workspace's features into this loop's online store, as of its data's end
                from mlplatform.features import store
                newest = load_raw(cfg, ws)[cfg.data.timestamp].max() + pd.Timedelta(seconds=1)
                store.materialize(cfg, ws, end=newest.to_pydatetime())
            worker_port = free_port()
            worker = loop_stream.start_worker(tenant_file, ws, run_dir, worker_port)
            log("stream worker up", metrics=f"http://127.0.0.1:{worker_port}/metrics", stream=cfg.features.stream.redis_url)
        url = backend.up()
        log("proxy and stable model server up", proxy=url)
        rules = render_rules(tenant_file, run_dir / "monitoring", overrides=RULE_OVERRIDES)
        stack = MonitoringStack(run_dir / "monitoring", rule_files=[rules], webhook_url=f"{webhook.url}/alerts",
                                tenants=[cfg])
        stack.set_targets({"webhook": [webhook.url.split("://", 1)[1]]}
                          | ({"stream": [f"127.0.0.1:{worker_port}"]} if worker is not None else {}))
        # Prometheus discovers the model servers the rollout starts from the backend's targets file
        serving_targets = stack.folder / "targets" / "serving.json"
        serving_targets.unlink(missing_ok=True)
        serving_targets.symlink_to(rollout_dir(ws, cfg.name) / "targets.json")
        stack.start()
        log("Prometheus and Alertmanager up", prometheus=stack.prometheus_url, alertmanager=stack.alertmanager_url,
            rules=str(rules))

        watch_drift = task_for(cfg).drift_reference
        if worker is not None:
            import redis

            replay = loop_stream.PaymentReplay(cfg, load_raw(cfg, ws))
            traffic = loop_stream.StreamTraffic(url, v1_path(cfg), replay, redis.Redis.from_url(cfg.features.stream.redis_url),
                                                stream_key(cfg), drifted)
            log("payments streaming", cards=replay.cards, payments_per_week=replay.events_per_week,
                week_seconds=loop_stream.WEEK_SECONDS)
        else:
            traffic = Traffic(url, v1_path(cfg), traffic_rows(cfg, ws) if watch_drift else loop_ranking.traffic_rows(cfg, ws))
        traffic.start()
        log("traffic started", rate_per_s=traffic.rate)
        if not watch_drift:  # no drift gauges to alert on: measure online quality from (simulated) clicks
            loop_ranking.online_quality(cfg, ws, stack, traffic, log, result)
            return result
        drift = injected_drift(cfg)
        retraining_alerts = set(cfg.retraining.alerts)
        time.sleep(45 if worker is not None else 30)  # a baseline of normal traffic (streaming: a drift window and a half)
        early = [f"{a['labels']['alertname']}({a['labels'].get('feature', '')}={a.get('value', '?')})"
                 for a in stack.alerts() if a["labels"].get("alertname") in retraining_alerts]
        if early:
            raise RuntimeError(f"alerts {', '.join(early)} are pending or firing before any drift was injected: the traffic "
                               f"(sampled from {ws.home}'s current data) does not look like the champion's training "
                               "data; an earlier loop may have retrained there on shifted data: run without --home")
        log("baseline: no drift alert", requests=traffic.sent)
        traffic.drift = drift
        log("drift injected", change=f"{drift.column} x{drift.factor:g}")

        fired = _wait("a drift alert to fire",
                      lambda: [a for a in stack.alerts("firing") if a["labels"].get("alertname") in retraining_alerts],
                      timeout=300)
        alert = fired[0]
        result["alert"] = {"name": alert["labels"]["alertname"], "fired_at": alert.get("activeAt"),
                           "labels": alert["labels"]}
        log("alert firing", alert=alert["labels"]["alertname"], feature=alert["labels"].get("feature"),
            value=alert.get("value"))

        retrains = _wait("the webhook to start retraining",
                         lambda: httpx.get(f"{webhook.url}/retrains", timeout=5).json()["retrains"], timeout=120)
        run = retrains[0]
        result["retraining"] = {"run_id": run["run_id"], "started_at": run.get("started_at")}
        log("retraining started by the webhook", run_id=run["run_id"])
        register = ws.step_file(cfg.name, run["run_id"], "register")

        def retrain_finished():
            state = {r["run_id"]: r for r in httpx.get(f"{webhook.url}/retrains", timeout=5).json()["retrains"]}
            return register.exists() or not state[run["run_id"]].get("active", True)

        _wait("the retraining run to finish", retrain_finished, timeout=timeout, every=5)
        if not register.exists():
            raise RuntimeError(f"retraining run {run['run_id']} ended without registering a model; "
                               f"see {ws.home / 'monitoring' / 'webhook'}")
        reg = json.loads(register.read_text())
        result["retraining"] |= {"version": reg["version"], "aliases": reg["aliases"], "gate": reg["decision"]}
        log("new version registered", version=reg["version"], aliases=",".join(reg["aliases"]) or "none",
            gate=reg["decision"][:80])

        # the callers' traffic is back to normal while the new model is rolled out
        traffic.drift = None
        if isinstance(traffic, Traffic):  # the workspace's data changed: entities the online store knows
            traffic.rows = traffic_rows(cfg, ws)
        if "challenger" not in reg["aliases"]:
            result["decision"] = {"outcome": "rejected by the promotion gate", "reason": reg["decision"]}
            log("no rollout: the new version did not pass the gate")
        else:
            def on_step(state, step):
                log(f"rollout {step['action']}", phase=state.phase, weight=state.weight, reason=step.get("reason"))

            final = run_rollout(cfg, ws, backend, stack.prometheus_url, on_step=on_step, metrics_port=free_port(),
                                max_seconds=timeout)
            result["rollout"] = final.to_dict()["steps"]
            result["decision"] = {"outcome": final.phase, "reason": final.reason,
                                  "champion": str(champion_version(connect(ws), cfg.name).version)}
            log("rollout finished", outcome=final.phase, champion=result["decision"]["champion"])
        result["traffic"] = {"requests": traffic.sent, "errors": traffic.errors}
    finally:
        if traffic is not None:
            traffic.stop()
        if worker is not None:
            with contextlib.suppress(Exception):
                result["stream"] = {"published": getattr(traffic, "published", 0), **loop_stream.worker_counts(worker_port)}
            stop(worker)
        with contextlib.suppress(Exception):
            backend.down()
        if stack is not None:
            with contextlib.suppress(Exception):
                stack.stop()
        webhook.stop()
        result["seconds"] = round(time.monotonic() - log.t0, 1)
        (run_dir / "loop.json").write_text(json.dumps(result, indent=2, default=str))
        console.print(f"loop: {escape(str(runs / 'latest' / 'loop.json'))}")
    return result
