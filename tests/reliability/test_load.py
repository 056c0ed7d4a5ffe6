"""Sustained load on a real predictor: a bounded open-loop run (default 60 s at 50 requests/s,
V1 and V2 mixed, online feature lookup on every request) with the server's resident memory
measured at start and end. No errors; growth below RSS_GROWTH_LIMIT_MB. No latency assertion:
timings belong to the benchmarks (`make bench`), not to tests."""

from __future__ import annotations

import os
import threading
import time

import orjson
import psutil

from bench.loadgen import fixed_rate
from mlplatform.config import load_tenant
from mlplatform.serving.smoke import newest_rows, v1_body, v1_path, v2_body, v2_path
from mlplatform.workspace import Workspace
from tests.reliability.figures import record

SECONDS = float(os.environ.get("MLPLATFORM_RELIABILITY_LOAD_SECONDS", "60"))
RATE = float(os.environ.get("MLPLATFORM_RELIABILITY_LOAD_RPS", "50"))
RSS_GROWTH_LIMIT_MB = 50


def rss_mb(proc: psutil.Process) -> float:
    return (proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))) / 2**20


def test_sustained_load_no_errors_bounded_memory(trained_fraud, server):
    cfg = load_tenant(trained_fraud.tenant_file)
    rows, _ = newest_rows(cfg, Workspace(trained_fraud.home), 200)
    v1 = [orjson.dumps(v1_body([r])) for r in rows]
    v2 = [orjson.dumps(v2_body(cfg, [r])) for r in rows[:50]]
    proc = psutil.Process(server.proc.pid)
    # warm up (first requests fill caches, import lazily loaded modules) before the baseline
    fixed_rate(server.base_url + v1_path(cfg), v1, rate=50, seconds=4)
    fixed_rate(server.base_url + v2_path(cfg), v2, rate=20, seconds=2)
    start_rss = rss_mb(proc)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        t0 = time.monotonic()
        while not stop.wait(5):
            samples.append((round(time.monotonic() - t0, 1), round(rss_mb(proc), 1)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        # 9 of 10 requests V1, 1 of 10 V2, each at its share of the rate, concurrently
        results: dict = {}
        t_v2 = threading.Thread(target=lambda: results.update(
            v2=fixed_rate(server.base_url + v2_path(cfg), v2, rate=RATE / 10, seconds=SECONDS)))
        t_v2.start()
        results["v1"] = fixed_rate(server.base_url + v1_path(cfg), v1, rate=RATE * 0.9, seconds=SECONDS)
        t_v2.join()
    finally:
        stop.set()
        sampler.join()
    end_rss = rss_mb(proc)
    s1, s2 = results["v1"].summary(), results["v2"].summary()
    record("load", seconds=SECONDS, target_rps=RATE, requests=s1["sent"] + s2["sent"],
           errors=s1["errors"] + s2["errors"], v1=s1, v2=s2, rss_start_mb=round(start_rss, 1),
           rss_end_mb=round(end_rss, 1), rss_growth_mb=round(end_rss - start_rss, 1),
           rss_limit_mb=RSS_GROWTH_LIMIT_MB, rss_samples=samples)
    assert s1["errors"] == 0 and s2["errors"] == 0, (s1["first_errors"], s2["first_errors"])
    assert server.proc.poll() is None
    assert end_rss - start_rss < RSS_GROWTH_LIMIT_MB, (start_rss, end_rss, samples)
