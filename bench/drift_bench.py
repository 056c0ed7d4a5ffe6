"""Drift: PSI and KS over 1M rows x 30 features on one core (target: under 5 s), beside scipy's exact
two-sample KS over the same shapes, and the streaming per-request histogram update.

    python -m bench.drift_bench [--rows 1000000] [--features 30] [--json out.json]

`run` (the bench section) starts that command: the measurement runs in a fresh process whose BLAS
threads are pinned to 1 before numpy loads, so the figure is one core's (numpy searchsorted/bincount
are single-threaded anyway). It prints one JSON object (and writes it to --json); `run` adds the
scipy baseline, timed in the bench process.
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # the measuring process: pin BLAS threads before numpy is imported
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from bench.common import REPO, TARGETS, ratio  # noqa: E402


def run(p: dict, work: Path) -> dict:
    try:
        from mlplatform.monitoring.drift import psi_ks  # noqa: F401
    except ImportError:
        return {"status": "not yet available (mlplatform.monitoring.drift.psi_ks missing)"}
    out = work / "drift.json"  # measured in a fresh process: BLAS pinned to one thread before numpy loads
    proc = subprocess.run([sys.executable, "-m", "bench.drift_bench", "--rows", str(p["drift_rows"]),
                           "--features", "30", "--repeat", str(p["repeats"]), "--json", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    if proc.returncode != 0:
        return {"status": "failed", "stderr": proc.stderr[-1000:]}
    res = json.loads(out.read_text())
    # baseline in the same run: scipy's exact two-sample KS over the same shapes (one feature, scaled x30)
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(0)
    ref, cur = rng.normal(size=200_000), rng.normal(size=p["drift_rows"])
    t = time.perf_counter()
    ks_2samp(ref, cur)
    one = time.perf_counter() - t
    res["baseline_scipy_ks_2samp_30_features_s"] = round(one * 30, 3)
    res["ratio_vs_scipy_ks"] = ratio(res["seconds_best"], one * 30)
    res["status"] = "ok"
    return res


def markdown(d: dict) -> list[str]:
    L = ["", "## Drift (PSI and KS)", ""]
    if d.get("status") == "ok":
        L += [f"`bench/drift_bench.py` (monitoring): {d['rows']:,} rows x {d['features']} features, best of "
              f"{len(d['seconds_all'])}: **{d['seconds_best']} s** (target < {TARGETS['drift_seconds']} s); baseline "
              f"scipy `ks_2samp` (exact KS, one feature timed, x30): {d['baseline_scipy_ks_2samp_30_features_s']} s; "
              f"ratio {d['ratio_vs_scipy_ks']}. Streaming update per request: "
              f"{d.get('streaming_update_us_per_request_18_columns')} µs."]
    else:
        L += [f"{d.get('status')}"]
    return L + [""]


def main() -> None:
    """The measurement, in its own process (`run` starts it)."""
    from mlplatform.monitoring.drift import DriftReference, StreamingHistograms, psi_ks

    ap = argparse.ArgumentParser(prog="bench.drift_bench")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=30)
    ap.add_argument("--bins", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(args.features)]
    ref_rows = 200_000
    reference = DriftReference.build({n: rng.normal(size=ref_rows) for n in names}, bins=args.bins)
    current = rng.normal(size=(args.rows, args.features))
    current[:, 0] += 0.5  # one shifted column, so the numbers are not all ~0
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        out = psi_ks(reference, current)
        times.append(time.perf_counter() - t)

    # streaming per-request update: one row of 17 features (the fraud model's inputs)
    stream_ref = DriftReference.build({f"f{i}": rng.normal(size=20_000) for i in range(18)}, bins=args.bins)
    hist = StreamingHistograms(stream_ref)
    row = rng.normal(size=(1, 18))
    n = 20_000
    t = time.perf_counter()
    for _ in range(n):
        hist.update(row)
    per_update_us = (time.perf_counter() - t) / n * 1e6

    result = {
        "benchmark": "drift_psi_ks",
        "rows": args.rows, "features": args.features, "bins": args.bins,
        "seconds_best": round(min(times), 3), "seconds_all": [round(x, 3) for x in times],
        "target_seconds": 5.0, "passed": min(times) < 5.0,
        "psi_shifted_column": round(out["f0"]["psi"], 4), "psi_unshifted_max": round(max(v["psi"] for k, v in out.items() if k != "f0"), 5),
        "streaming_update_us_per_request_18_columns": round(per_update_us, 2),
    }
    text = json.dumps(result)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
