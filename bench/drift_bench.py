"""Benchmark: PSI and KS over 1M rows x 30 features on one core (target: under 5 s).

    .venv/bin/python bench/drift_bench.py [--rows 1000000] [--features 30] [--json out.json]

Prints one JSON object to stdout (and writes it to --json when given): the benchmark collector
picks it up. Single-threaded by construction (numpy searchsorted/bincount); BLAS threads are
pinned to 1 anyway so the figure is one core's.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from mlplatform.monitoring.drift import DriftReference, StreamingHistograms, psi_ks  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
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
