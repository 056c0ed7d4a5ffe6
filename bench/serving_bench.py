"""Serving: the fraud predictor over HTTP (a Feast online lookup per request) at fixed rates and at
saturation, beside the same predictor in process and a minimal Starlette app without kserve
(bench/minimal_app.py), the two servers taking turns run by run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import orjson

from bench.common import STARTUP_SECONDS, TARGETS, median, pct, pyplot, ratio, wrk_saturation
from mlplatform.processes import free_port, server_env, start, stop


def run(tenant: Path, home: Path, p: dict, work: Path) -> dict:
    import gc

    import psutil

    from bench.loadgen import fixed_rate
    from mlplatform.config import load_tenant
    from mlplatform.serving.predictor import TenantPredictor
    from mlplatform.serving.server import freeze_startup_heap, limit_native_threads
    from mlplatform.serving.smoke import newest_rows, v1_body, v1_path
    from mlplatform.workspace import Workspace

    cfg, ws = load_tenant(tenant), Workspace(home)
    rows, _ = newest_rows(cfg, ws, 200)
    bodies = [orjson.dumps(v1_body([r])) for r in rows]
    out: dict = {"request": "V1, 1 row, 2 feature views looked up per request", "rows_cycled": len(rows)}

    # in-process: the same predictor object, predict() on a parsed V1 request (no HTTP), in a process
    # set up as the server sets itself up (one native thread, start-up heap frozen)
    pred = TenantPredictor(cfg, ws)
    pred.load()
    limit_native_threads()
    freeze_startup_heap()
    payloads = [orjson.loads(b) for b in bodies]
    try:
        for b in payloads[:20]:
            pred.predict(b)
        lat = []
        for i in range(p["inproc_n"]):
            t = time.perf_counter()
            pred.predict(payloads[i % len(payloads)])
            lat.append((time.perf_counter() - t) * 1000)
    finally:
        gc.unfreeze()  # the bench process goes on to other sections
    out["in_process"] = {"n": len(lat), "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99)}
    del pred

    targets = {}
    port = free_port()
    try:
        targets["kserve"] = (start([sys.executable, "-m", "mlplatform.serving.server", str(tenant), "--port", str(port)],
                                   f"http://127.0.0.1:{port}/v2/health/ready", work / "kserve.log",
                                   timeout=STARTUP_SECONDS, name="kserve server", env=server_env(home)),
                             f"http://127.0.0.1:{port}{v1_path(cfg)}")
        port2 = free_port()
        targets["minimal"] = (start([sys.executable, "-m", "bench.minimal_app", str(tenant), str(home), str(port2)],
                                    f"http://127.0.0.1:{port2}/health", work / "minimal.log",
                                    timeout=STARTUP_SECONDS, name="minimal app", env=server_env(home)),
                              f"http://127.0.0.1:{port2}/predict")
        for _, url in targets.values():
            fixed_rate(url, bodies, rate=50, seconds=2)  # warm-up
        # the two targets take turns, run by run: a noisy neighbour then hits both alike
        reps: dict = {(name, rate): [] for name in targets for rate in p["rates"]}
        for rate in p["rates"]:
            for _ in range(p["repeats"]):
                for name, (proc, url) in targets.items():
                    server = psutil.Process(proc.pid)
                    cpu = sum(server.cpu_times()[:2])
                    r = fixed_rate(url, bodies, rate=rate, seconds=p["rate_seconds"]).summary()
                    # the server's CPU time per request: robust to a busy machine, unlike latency
                    r["server_cpu_ms"] = (sum(server.cpu_times()[:2]) - cpu) * 1000 / max(r["sent"], 1)
                    reps[name, rate].append(r)
        for name, (_, url) in targets.items():
            runs = {}
            for rate in p["rates"]:
                rr = reps[name, rate]
                runs[str(rate)] = {"p50_ms": median([r["p50_ms"] for r in rr]),
                                   "p99_ms": median([r["p99_ms"] for r in rr]),
                                   "errors": sum(r["errors"] for r in rr), "sent": sum(r["sent"] for r in rr),
                                   "achieved_rps": median([r["achieved_rps"] for r in rr]),
                                   "server_cpu_ms_per_request": median([r["server_cpu_ms"] for r in rr]),
                                   "p99_ms_each": [r["p99_ms"] for r in rr],
                                   "repeats": len(rr), "seconds_each": p["rate_seconds"]}
            sat = [wrk_saturation(url, bodies[0], p["sat_seconds"], work) for _ in range(p["repeats"])]
            ok = [s for s in sat if "rps" in s]
            out[name] = {"fixed_rate": runs, "saturation": {
                "rps": median([s["rps"] for s in ok]) if ok else None,
                "p50_ms": median([s["p50_ms"] for s in ok]) if ok else None,
                "p99_ms": median([s["p99_ms"] for s in ok]) if ok else None,
                "errors": sum(s.get("errors", 0) for s in ok), "runs": sat}}
    finally:
        for proc, _ in targets.values():
            stop(proc)
    k, m = out["kserve"], out["minimal"]
    out["ratios"] = {
        "kserve_vs_minimal_p50": {r: ratio(k["fixed_rate"][r]["p50_ms"], m["fixed_rate"][r]["p50_ms"]) for r in k["fixed_rate"]},
        "kserve_vs_minimal_p99": {r: ratio(k["fixed_rate"][r]["p99_ms"], m["fixed_rate"][r]["p99_ms"]) for r in k["fixed_rate"]},
        "kserve_vs_in_process_p50": {r: ratio(k["fixed_rate"][r]["p50_ms"], out["in_process"]["p50_ms"]) for r in k["fixed_rate"]},
        "saturation_rps_kserve_vs_minimal": ratio(k["saturation"]["rps"], m["saturation"]["rps"]),
    }
    out["target"] = f"p99 < {TARGETS['serving_p99_ms_at_200rps']} ms at 200 req/s on 2 cores, zero errors"
    return out


def markdown(s: dict, img_rel: str, images: list[str]) -> list[str]:
    L: list[str] = []
    if s.get("status", "ok") != "ok":  # skipped or failed: say so, keep the rest of the report
        return ["## Serving", "", str(s['status']), ""]
    L += ["## Serving (fraud predictor, HTTP, online feature lookup per request)", "",
          f"{s['request']}. Target: {s['target']}. Fixed rates: open-loop generator (`bench/loadgen.py`: raw "
          "HTTP/1.1 on asyncio, latency from the scheduled send time, so server stalls are not omitted; it runs "
          "on the same 2 cores and its own ~0.3 ms of CPU per request is inside every figure); the two servers "
          "take turns run by run. Server CPU: the server process's CPU time per request at that rate (it "
          "includes the cost of waking an idle event loop per request, so compare it at equal rates). Saturation: `wrk -t1 "
          "-c8` (closed loop: its latencies omit queueing, read them as throughput only). Baselines: the same "
          "predictor in-process (`predict()` on a parsed request), and a minimal Starlette/uvicorn endpoint "
          "doing the same parse, lookup and prediction without kserve (`bench/minimal_app.py`; no metrics, "
          "drift or prediction log).", "",
          "| target | rate | p50 ms | p99 ms | errors / sent | achieved req/s | server CPU ms / request |",
          "|---|---|---|---|---|---|---|"]
    for name in ("kserve", "minimal"):
        for r, v in s[name]["fixed_rate"].items():
            L.append(f"| {name} | {r} req/s | {v['p50_ms']} | {v['p99_ms']} | {v['errors']} / {v['sent']} | "
                     f"{v['achieved_rps']} | {v.get('server_cpu_ms_per_request', '-')} |")
        sat = s[name]["saturation"]
        L.append(f"| {name} | saturation | {sat['p50_ms']} | {sat['p99_ms']} | {sat['errors']} | {sat['rps']} | - |")
    L += [f"| in-process | - | {s['in_process']['p50_ms']} | {s['in_process']['p99_ms']} | - | - | - |", "",
          f"Ratios: kserve/minimal p50 {s['ratios']['kserve_vs_minimal_p50']}, p99 {s['ratios']['kserve_vs_minimal_p99']}; "
          f"kserve/in-process p50 {s['ratios']['kserve_vs_in_process_p50']}; saturation throughput kserve/minimal "
          f"{s['ratios']['saturation_rps_kserve_vs_minimal']}.", ""]
    if "bench_serving.png" in images:
        L += [f"![serving latency]({img_rel}/bench_serving.png)", ""]
    return L


def plot(s: dict, img: Path) -> list[str]:
    """bench_serving.png: p50 and p99 per fixed rate, kserve beside the minimal app."""
    if "kserve" not in s:
        return []
    plt = pyplot()
    rates = list(s["kserve"]["fixed_rate"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(len(rates))
    for i, (name, q) in enumerate([("kserve", "p50_ms"), ("kserve", "p99_ms"), ("minimal", "p50_ms"),
                                   ("minimal", "p99_ms")]):
        ax.bar(x + (i - 1.5) * 0.2, [s[name]["fixed_rate"][r][q] for r in rates], 0.2, label=f"{name} {q[:3]}")
    ax.axhline(TARGETS["serving_p99_ms_at_200rps"], color="red", ls="--", lw=1, label="p99 target")
    ax.set(xticks=x, xticklabels=[f"{r} req/s" for r in rates], ylabel="ms", title="fraud predictor latency")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(img / "bench_serving.png", dpi=100)
    return ["bench_serving.png"]
