"""`make bench`: every benchmark, each beside its baseline in the same run.

    python -m bench.run [--quick] [--home H --tenant-file T] [--out bench/results.json] [--doc docs/benchmarks.md]
                        [--skip SECTION,...] [--merge]

Without --home, a fraud workspace is built first (quick: a small one; full: the tenant file's own
size) in a temporary folder; the search and LETOR sections always build their own workspaces
there, from scratch, and the scale section its own generated catalogs. Writes the results JSON, the Markdown report and its plots. Benchmarks are
not tests: nothing here asserts a timing; targets are reported beside the measured figures.
Load only ever targets 127.0.0.1, with bounded counts and durations.

This module only orchestrates (flags, which sections run, merging with the last results, writing
the files). Each section is its own module with `run(...)` and `markdown(...)` (and `plot` when it
has a figure): bench/{serving,lookup,training,workers,drift,shadow,stream,search,scale,letor,recipe,demo}_bench.py; what they
share is bench/common.py; bench/report.py renders docs/benchmarks.md from the results.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench import (demo_bench, drift_bench, letor_bench, lookup_bench, recipe_bench, report, scale_bench,
                   search_bench, serving_bench, shadow_bench, stream_bench, training_bench, workers_bench)
from bench.common import FRAUD, FULL, QUICK, REPO, TARGETS, build_workspace, machine, reported

SECTIONS = ("serving", "lookup", "training", "workers", "drift", "shadow", "stream", "search", "scale", "letor",
            "recipe")
NEED_WORKSPACE = {"serving", "lookup", "training", "shadow", "stream"}  # the sections that measure the fraud workspace


def merge_results(old: dict, new: dict, skipped: set[str]) -> dict:
    """`new` with each skipped section taken from an earlier full run `old`; `section_dates` and
    `section_machines` say when and on what each section was measured (a section re-measured alone
    is dated apart from the rest)."""
    dates = old.get("section_dates") or {name: old["date"] for name in SECTIONS if name in old}
    # the machine each section ran on (machines of one kind differ per core: judge a figure with its own)
    machines = old.get("section_machines") or {name: old.get("machine") for name in SECTIONS
                                               if name in old and dates.get(name) == old.get("date")}
    merged = dict(new)
    for name in SECTIONS:
        if name in skipped and old.get(name, {}).get("status") != "skipped" and name in old:
            merged[name] = old[name]
        elif name not in skipped and name in new:
            dates[name], machines[name] = new["date"], new.get("machine")
    kept = [name for name in SECTIONS if name in dates and merged.get(name, {}).get("status") != "skipped"]
    merged["section_dates"] = {name: dates[name] for name in kept}
    merged["section_machines"] = {name: machines.get(name) for name in kept}
    if merged.get("demo", {}).get("status") != "ok" and old.get("demo", {}).get("status") == "ok":
        merged["demo"] = old["demo"]  # a checkout without runs/ (the demo's summaries) keeps the last one read
    return merged


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.run")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, short durations (CI)")
    ap.add_argument("--home", help="a trained workspace to reuse (with --tenant-file)")
    ap.add_argument("--tenant-file", help="the fraud tenant file of --home")
    ap.add_argument("--search-workspace", nargs=3, metavar=("TENANT_FILE", "HOME", "RUN_ID"),
                    help="quick mode: a trained search workspace to serve instead of building one (the tests' own)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results.json"))
    ap.add_argument("--doc", default=str(REPO / "docs" / "benchmarks.md"))
    ap.add_argument("--img-dir", default=None, help="default: <doc dir>/img")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip (" + ",".join(SECTIONS) + ")")
    ap.add_argument("--merge", action="store_true",
                    help="keep the skipped sections' figures (and their dates) from the existing --out file")
    args = ap.parse_args(argv)
    p = QUICK if args.quick else FULL
    if args.search_workspace and not args.quick:
        ap.error("--search-workspace is for --quick (full mode measures a search workspace built from scratch)")
    prebuilt = args.search_workspace and tuple(map(Path, args.search_workspace[:2])) + (args.search_workspace[2],)
    skip = set(filter(None, args.skip.split(",")))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    work = Path(tempfile.mkdtemp(prefix="mlplatform-bench-"))
    started = time.monotonic()
    try:
        if args.home:
            tenant, home = Path(args.tenant_file or FRAUD), Path(args.home)
        elif NEED_WORKSPACE - skip:
            tenant, home = build_workspace(args.quick, work)
        else:  # no section reads it
            tenant, home = FRAUD, work / "home"
        results = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "mode": "quick" if args.quick else "full", "params": p,
                   "command": "python -m bench.run" + (" --quick" if args.quick else ""), "machine": machine(),
                   "targets": TARGETS}
        sections = {"serving": lambda: serving_bench.run(tenant, home, p, work),
                    "lookup": lambda: lookup_bench.run(tenant, home, p),
                    "training": lambda: training_bench.run(tenant, p),
                    "workers": lambda: workers_bench.run(p, work, args.quick),
                    "drift": lambda: drift_bench.run(p, work),
                    "shadow": lambda: shadow_bench.run(tenant, home, p, work),
                    "stream": lambda: reported(lambda: stream_bench.run(tenant, home, p, work)),
                    # these build their own workspaces, clean, under work (quick search may copy --search-workspace's);
                    # a failure is reported, not raised
                    "search": lambda: reported(lambda: search_bench.run(p, work, args.quick, prebuilt)),
                    "scale": lambda: reported(lambda: scale_bench.run(p, work / "scale", args.quick)),
                    "letor": lambda: reported(lambda: letor_bench.run(p, work, args.quick)),
                    "recipe": lambda: reported(lambda: recipe_bench.run(p, work, args.quick))}
        for name, fn in sections.items():
            if name in skip:
                results[name] = {"status": "skipped"}
                continue
            print(f"bench: {name}", flush=True)
            t = time.monotonic()
            results[name] = fn()
            results[name]["bench_seconds"] = round(time.monotonic() - t, 1)
        results["demo"] = demo_bench.run()
        results["seconds"] = round(time.monotonic() - started, 1)
        if args.merge and Path(args.out).exists():
            results = merge_results(json.loads(Path(args.out).read_text()), results, skip)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        doc = Path(args.doc)
        img = Path(args.img_dir) if args.img_dir else doc.parent / "img"
        images = report.plots(results, img)  # each plot skips a section without figures
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text(report.markdown(results, os.path.relpath(img, doc.parent), images))
        print(f"bench: wrote {out} and {doc} in {results['seconds']} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
