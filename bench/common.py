"""What every bench section shares: the run parameters and targets, small statistics, the machine
description, the fraud workspace the fraud sections measure, wrk saturation runs, a section's own CLI
(`section_main`), and the plotting set-up. Imports no other bench module.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as pyplatform
import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
FRAUD = REPO / "examples" / "fraud" / "tenant.yaml"
QUICK = {"rates": [50], "rate_seconds": 3, "sat_seconds": 3, "repeats": 1, "inproc_n": 200, "lookup_n": 100,
         "train_sizes": [2_000], "train_rounds": 20, "drift_rows": 100_000, "train_repeats": 1,
         "shadow_rate": 50, "shadow_seconds": 3, "shadow_rounds": 1,
         "stream_rate": 500, "stream_seconds": 5, "stream_server_rps": 200}
FULL = {"rates": [50, 100, 200], "rate_seconds": 20, "sat_seconds": 15, "repeats": 3, "inproc_n": 2000,
        "lookup_n": 1000, "train_sizes": [20_000, 100_000, 500_000], "train_rounds": 100,
        "drift_rows": 1_000_000, "train_repeats": 3,
        "shadow_rate": 50, "shadow_seconds": 10, "shadow_rounds": 5,
        "stream_rate": 500, "stream_seconds": 60, "stream_server_rps": 200}
TARGETS = {"serving_p99_ms_at_200rps": 10.0, "lookup_p99_ms_1": 5.0, "lookup_p99_ms_200": 40.0,
           "training_ratio": 1.5, "training_startup_s": 15.0, "drift_seconds": 5.0,
           "shadow_added_p99_ms": 2.0,
           "stream_event_to_online_p99_ms": 1000.0,  # bench/stream_bench.py: 500 payments/s with the server at 200 req/s
           "search_e2e_p99_ms": 30.0,  # bench/search_bench.py: HTTP at 100 req/s, distinct queries, zero errors
           "letor_ndcg_at_10_vs_lgbm_defaults": 1.0}  # bench/letor_bench.py: platform / LGBMRanker() >= 1
STARTUP_SECONDS = 180  # every process a section starts (model server, baseline app, relay) is ready within this


def pct(values, q) -> float:
    return round(float(np.percentile(np.asarray(values), q)), 3)


def median(values) -> float:
    return round(float(statistics.median(values)), 3)


def ratio(a, b) -> float | None:
    return round(a / b, 2) if a and b else None


def section_main(prog: str, run, argv: list[str] | None) -> int:
    """`python -m bench.<section> [--quick] [--json F]`: one section alone, in a temporary folder."""
    ap = argparse.ArgumentParser(prog=prog)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", help="write the result here")
    args = ap.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with tempfile.TemporaryDirectory(prefix=prog.rsplit(".", 1)[-1] + "-") as tmp:
        res = run({}, Path(tmp), args.quick)
    text = json.dumps(res, indent=2, default=str)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


# --- machine and workspace ------------------------------------------------------------------------


def machine() -> dict:
    import psutil

    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for pkg in ("kserve", "feast", "ray", "xgboost", "mlflow", "numpy", "uvicorn"):
        try:
            from importlib.metadata import version

            versions[pkg] = version(pkg)
        except Exception:  # noqa: BLE001
            pass
    wrk = shutil.which("wrk")
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()], "python": pyplatform.python_version(),
            "os": pyplatform.platform(), "versions": versions,
            "wrk": subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.splitlines()[0] if wrk else None}


def build_workspace(quick: bool, work: Path) -> tuple[Path, Path]:
    from mlplatform import steps

    raw = yaml.safe_load(FRAUD.read_text())
    if quick:
        raw["data"]["generator_args"] = {"customers": 300, "terminals": 600, "days": 40, "seed": 11}
        raw["model"]["num_boost_round"] = 80
    tenant = work / "fraud" / "tenant.yaml"
    tenant.parent.mkdir(parents=True, exist_ok=True)
    tenant.write_text(yaml.safe_dump(raw, sort_keys=False))
    home = work / "home"
    steps.run_all(tenant, home, "bench", on_step=lambda name: print(f"bench: workspace step {name}", flush=True))
    return tenant, home


def wrk_saturation(url: str, body: bytes, seconds: float, work: Path) -> dict:
    wrk = shutil.which("wrk")
    if not wrk:
        return {"skipped": "wrk not installed (apt-get install wrk)"}
    script = work / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
        "done = function(s, latency, requests)\n"
        '  io.write(string.format("WRKJSON {\\"requests\\": %d, \\"errors\\": %d, \\"non2xx\\": %d, '
        '\\"duration_us\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d}\\n", s.requests, '
        "s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout, s.errors.status, s.duration, "
        "latency:percentile(50), latency:percentile(99)))\nend\n")
    out = subprocess.run([wrk, "-t1", "-c8", f"-d{int(seconds)}s", "--timeout", "5s", "-s", str(script), url],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    m = re.search(r"WRKJSON (\{.*\})", out)
    if not m:
        return {"error": out[-500:]}
    r = json.loads(m.group(1))
    return {"rps": round(r["requests"] / (r["duration_us"] / 1e6), 1), "requests": r["requests"],
            "errors": r["errors"] + r["non2xx"], "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
            "connections": 8, "seconds": seconds}


def reported(fn) -> dict:
    """A failing section says so in the report (with the traceback's tail) instead of losing the others."""
    import traceback

    try:
        return fn()
    except Exception as err:  # noqa: BLE001
        return {"status": f"failed: {type(err).__name__}: {err}"[:500], "traceback": traceback.format_exc()[-3000:]}


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display on a bench machine)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
