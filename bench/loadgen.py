"""An open-loop, fixed-rate HTTP load generator (asyncio + httpx), for 127.0.0.1 targets only.

Requests are sent on a fixed schedule whatever the server does, and each latency is measured from
the request's *scheduled* start, so a slow server cannot hide its queueing (no coordinated
omission). wrk (closed loop) is used for saturation instead; wrk2 is not packaged in Debian.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlparse

import numpy as np


@dataclass
class LoadResult:
    rate: float
    seconds: float
    sent: int = 0
    ok: int = 0
    errors: int = 0
    statuses: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    first_errors: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.asarray([np.nan])
        return {"target_rps": self.rate, "seconds": round(self.seconds, 2), "sent": self.sent, "ok": self.ok,
                "errors": self.errors, "achieved_rps": round(self.sent / self.seconds, 1) if self.seconds else 0,
                "p50_ms": round(float(np.percentile(lat, 50)), 3), "p90_ms": round(float(np.percentile(lat, 90)), 3),
                "p99_ms": round(float(np.percentile(lat, 99)), 3), "max_ms": round(float(lat.max()), 3),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "first_errors": self.first_errors}


def check_local(url: str) -> None:
    host = urlparse(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"load tests only target 127.0.0.1, not {host!r}")


async def _run(url: str, bodies: list[bytes], rate: float, seconds: float, timeout: float,
               max_in_flight: int) -> LoadResult:
    import httpx

    check_local(url)
    result = LoadResult(rate, seconds)
    total = int(rate * seconds)
    interval = 1.0 / rate
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
    sem = asyncio.Semaphore(max_in_flight)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        async def one(i: int, scheduled: float) -> None:
            async with sem:
                try:
                    resp = await client.post(url, content=bodies[i % len(bodies)], headers=headers)
                    status = resp.status_code
                    text = resp.text[:200] if status >= 400 else ""
                except httpx.HTTPError as err:
                    status, text = 0, f"{type(err).__name__}: {err}"
            result.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
            result.statuses[status] += 1
            if 200 <= status < 300:
                result.ok += 1
            else:
                result.errors += 1
                if len(result.first_errors) < 3:
                    result.first_errors.append(f"{status}: {text}")

        tasks = []
        start = time.perf_counter()
        for i in range(total):
            scheduled = start + i * interval
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, scheduled)))
            result.sent += 1
        await asyncio.gather(*tasks)
        result.seconds = time.perf_counter() - start
    return result


def fixed_rate(url: str, bodies: list[bytes], rate: float, seconds: float, *, timeout: float = 10.0,
               max_in_flight: int = 64) -> LoadResult:
    """POST bodies (round robin) to url at `rate` requests/s for `seconds`; bounded in count and time."""
    return asyncio.run(_run(url, bodies, rate, seconds, timeout, max_in_flight))
