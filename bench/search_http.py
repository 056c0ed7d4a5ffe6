"""The search server over HTTP for bench/search_bench.py: open-loop fixed rates with a query never
sent before in every request (bench/loadgen.py), and wrk's saturation with distinct queries too.

Every request of a measured run carries a query the server has not seen, so the predictor's
query-embedding cache never answers: what is measured is the encoder's cost, not the cache's. The
generated queries are too few for 100 req/s over several seconds, so made-up ones (2-10 catalog
words) fill the rest; the record says how many of each were sent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.common import STARTUP_SECONDS


def made_up(titles: list[str], count: int, seed: int, exclude: set[str] = frozenset()) -> list[str]:
    """`count` distinct queries of 2-10 catalog words (seeded), none of them in `exclude`."""
    rng = np.random.default_rng(seed)
    words = sorted({w for t in titles for w in t.lower().replace("-", " ").split() if w.isalpha()})
    out: dict[str, None] = {}
    tries = 0
    while len(out) < count:
        # lengths 2-10 by attempt (a length tied to len(out) would retry one-word queries forever once
        # the vocabulary's single words are used up)
        tries += 1
        if tries > 100 * count + 1000:
            raise RuntimeError(f"only {len(out)} distinct made-up queries from {len(words)} words, {count} asked")
        text = " ".join(rng.choice(words, size=2 + tries % 9))
        if text not in exclude:
            out[text] = None
    return list(out)


def distinct_bodies(queries: list[str], n: int) -> list[bytes]:
    import orjson

    return [orjson.dumps({"query": q, "n": n}) for q in queries]


def wrk_distinct(url: str, bodies: list[bytes], seconds: float, work: Path, connections: int = 8) -> dict:
    """wrk (closed loop, `connections` connections, one thread): each request takes the next body,
    so no query repeats while the bodies last; the saturation rate of uncached queries."""
    wrk = shutil.which("wrk")
    if not wrk:
        return {"skipped": "wrk not installed (apt-get install wrk)"}
    script = work / "distinct.lua"
    script.write_text(
        "local bodies = {" + ",".join(json.dumps(b.decode()) for b in bodies) + "}\n"
        "local i = 0\n"
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        "request = function()\n  i = i + 1\n  return wrk.format(nil, nil, nil, bodies[(i - 1) % #bodies + 1])\nend\n"
        "done = function(s, latency, requests)\n"
        '  io.write(string.format("WRKJSON {\\"requests\\": %d, \\"errors\\": %d, \\"non2xx\\": %d, '
        '\\"duration_us\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d}\\n", s.requests, '
        "s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout, s.errors.status, s.duration, "
        "latency:percentile(50), latency:percentile(99)))\nend\n")
    out = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "5s", "-s", str(script),
                          url], capture_output=True, text=True, timeout=seconds + 60).stdout
    m = re.search(r"WRKJSON (\{.*\})", out)
    if not m:
        return {"error": out[-500:]}
    r = json.loads(m.group(1))
    rps = r["requests"] / (r["duration_us"] / 1e6)
    return {"rps": round(rps, 1), "requests": r["requests"], "errors": r["errors"] + r["non2xx"],
            "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000, "connections": connections,
            "seconds": seconds, "distinct_bodies": len(bodies), "repeated_queries": max(0, r["requests"] - len(bodies))}


def serve_and_load(tenant: Path, home: Path, url_path: str, batches: dict[int, list[list[bytes]]],
                   warm: list[bytes], saturation: list[bytes], sat_seconds: float, work: Path, name: str) -> dict:
    """Start the KServe server on `tenant`, warm it up, then for each rate its runs (one list of
    bodies per run, sent once each at that rate), then wrk; the server is stopped whatever happens."""
    from bench.loadgen import fixed_rate
    from mlplatform.processes import free_port, server_env, start, stop

    port = free_port()
    proc = start([sys.executable, "-m", "mlplatform.serving.server", str(tenant), "--home", str(home),
                  "--port", str(port)], f"http://127.0.0.1:{port}/v2/health/ready", work / f"search-server-{name}.log",
                 timeout=STARTUP_SECONDS, name=f"search server ({name})", env=server_env(home))
    url = f"http://127.0.0.1:{port}{url_path}"
    out: dict = {}
    try:
        fixed_rate(url, warm, rate=20, seconds=max(1.0, len(warm) / 20))
        for rate, runs in batches.items():
            # (+ half a request: fixed_rate sends int(rate x seconds) requests, which float rounding could cut by one)
            res = [fixed_rate(url, bodies, rate=rate, seconds=(len(bodies) + 0.5) / rate).summary() for bodies in runs]
            out[str(rate)] = summarise(res, rate)
        out["saturation"] = wrk_distinct(url, saturation, sat_seconds, work)
    finally:
        stop(proc)
    return out


def summarise(runs: list[dict], rate: int) -> dict:
    """The median of each run's percentiles; errors and requests summed."""
    return {"rate": rate, "repeats": len(runs), "seconds_each": runs[0]["seconds"],
            "p50_ms": round(float(np.median([r["p50_ms"] for r in runs])), 3),
            "p99_ms": round(float(np.median([r["p99_ms"] for r in runs])), 3),
            "max_ms": round(float(np.max([r["max_ms"] for r in runs])), 3),
            "errors": sum(r["errors"] for r in runs), "sent": sum(r["sent"] for r in runs),
            "achieved_rps": round(float(np.median([r["achieved_rps"] for r in runs])), 1),
            "statuses": [r["statuses"] for r in runs], "first_errors": [e for r in runs for e in r["first_errors"]][:3]}
