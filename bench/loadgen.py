"""An open-loop, fixed-rate HTTP load generator (asyncio, raw HTTP/1.1), for 127.0.0.1 targets only.

Requests are sent on a fixed schedule whatever the server does, and each latency is measured from
the request's *scheduled* start, so a slow server cannot hide its queueing (no coordinated
omission). wrk (closed loop) is used for saturation instead; wrk2 is not packaged in Debian, and
Debian's `hey` rate-limits each of its workers (a worker waits for its reply before sending again,
all workers tick in step, one body only), so it would omit exactly the slow periods this measures.

The generator shares the machine with the server (2 cores in the benchmarks), so its own cost per
request is part of every latency it reports. It therefore speaks HTTP/1.1 itself over keep-alive
connections (asyncio protocols, request bytes built once per body, responses framed by
Content-Length or chunked encoding): ~0.3 ms of CPU per request. The httpx client it replaced
took 5-6 ms per request on the same 2 busy cores and could not send 200 req/s at all (it reached
50-95), so the server's 200 req/s figures measured the generator.
"""

from __future__ import annotations

import asyncio
import gc
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlparse

import numpy as np

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[ \t]*chunked", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close", re.IGNORECASE)


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
    # per request when asked for (record=True): (index, scheduled start in s from the run's start,
    # latency ms, status (0: no answer), response body)
    events: list[tuple[int, float, float, int, bytes]] = field(default_factory=list)
    started: float = 0.0  # time.perf_counter() when the schedule started: the events' time zero

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


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time: `send` returns a future of (status, body)."""

    def __init__(self):
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True
        self._fail(ConnectionError(f"connection closed by the server ({exc or 'EOF'})"))

    def send(self, request: bytes) -> asyncio.Future:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter

    def _fail(self, err: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(err)
        self.waiter = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None:
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end + 2])  # keep the last CRLF: every header line is \r\n-prefixed
        start = end + 4
        length = _CONTENT_LENGTH.search(head)
        if length is not None:
            stop = start + int(length.group(1))
            if len(self.buffer) < stop:
                return
            body = bytes(self.buffer[start:stop])
        elif _CHUNKED.search(head):
            body, stop = _dechunk(self.buffer, start)
            if body is None:
                return
        else:  # no framing: the body ends when the connection does (not expected from our servers)
            self._fail(ConnectionError("response without Content-Length or chunked encoding"))
            self.transport.close()
            return
        del self.buffer[:stop]
        if _CLOSE.search(head):
            self.closed = True
            self.transport.close()
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((int(head[9:12]), body))


def _dechunk(buffer: bytearray, pos: int) -> tuple[bytes | None, int]:
    """A complete chunked body from `pos` (and where it ends), or (None, 0) when more bytes are due."""
    parts = []
    while True:
        eol = buffer.find(b"\r\n", pos)
        if eol < 0:
            return None, 0
        size = int(bytes(buffer[pos:eol]).split(b";", 1)[0], 16)
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", eol)
            if buffer[eol:eol + 4] == b"\r\n\r\n":
                return b"".join(parts), eol + 4
            return (b"".join(parts), trailer_end + 4) if trailer_end >= 0 else (None, 0)
        if len(buffer) < eol + 2 + size + 2:
            return None, 0
        parts.append(bytes(buffer[eol + 2:eol + 2 + size]))
        pos = eol + 2 + size + 2


async def _run(url: str, bodies: list[bytes], rate: float, seconds: float, timeout: float,
               max_in_flight: int, stop=None, request_ids: str | None = None, record: bool = False) -> LoadResult:
    check_local(url)
    parsed = urlparse(url)
    host, port = parsed.hostname, parsed.port or 80
    path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
    head = (f"POST {path} HTTP/1.1\r\nHost: {parsed.netloc}\r\ncontent-type: application/json\r\n"
            f"accept: */*\r\n").encode()
    requests = [head + b"content-length: %d\r\n\r\n" % len(b) + b for b in bodies]  # built once per body

    def request(i: int) -> bytes:
        body = bodies[i % len(bodies)]
        if request_ids is None:
            return requests[i % len(requests)]
        return head + b"x-request-id: %s%d\r\ncontent-length: %d\r\n\r\n" % (request_ids.encode(), i, len(body)) + body

    loop = asyncio.get_running_loop()
    result = LoadResult(rate, seconds)
    total = int(rate * seconds)
    interval = 1.0 / rate
    idle: list[_Connection] = []
    slots = asyncio.Semaphore(max_in_flight)  # bounded connections; waiting for one counts as latency

    async def one(i: int, scheduled: float) -> None:
        async with slots:
            conn = None
            try:
                while idle and conn is None:
                    conn = idle.pop()
                    if conn.closed:
                        conn = None
                if conn is None:
                    _, conn = await asyncio.wait_for(loop.create_connection(_Connection, host, port), timeout)
                status, body = await asyncio.wait_for(conn.send(request(i)), timeout)
                text = body[:200].decode("utf-8", "replace") if status >= 400 else ""
            except (OSError, asyncio.TimeoutError, ValueError) as err:
                status, text, body = 0, f"{type(err).__name__}: {err}", b""
                if conn is not None:
                    conn.closed = True
                    conn.transport.close()
            if conn is not None and not conn.closed:
                idle.append(conn)
        result.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
        if record:
            result.events.append((i, scheduled - start, result.latencies_ms[-1], status, body))
        result.statuses[status] += 1
        if 200 <= status < 300:
            result.ok += 1
        else:
            result.errors += 1
            if len(result.first_errors) < 3:
                result.first_errors.append(f"{status}: {text}")

    tasks = []
    start = result.started = time.perf_counter()
    try:
        for i in range(total):
            if stop is not None and stop.is_set():
                break
            scheduled = start + i * interval
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, scheduled)))
            result.sent += 1
        await asyncio.gather(*tasks)
    finally:
        result.seconds = time.perf_counter() - start
        for conn in idle:
            conn.transport.close()
    return result


def fixed_rate(url: str, bodies: list[bytes], rate: float, seconds: float, *, timeout: float = 10.0,
               max_in_flight: int = 64, stop=None, request_ids: str | None = None,
               record: bool = False) -> LoadResult:
    """POST bodies (round robin) to url at `rate` requests/s for `seconds`; bounded in count and time.
    `stop` (a threading.Event): no further requests once set; `request_ids`: each request carries
    `X-Request-ID: <request_ids><index>`; `record`: keep every request's outcome in `events`.

    The caller's heap is frozen for the run (gc.freeze, which only moves the tracked objects aside:
    no collection first, so the schedule starts now): a bench process holds a workspace's frames and
    stores, and a full collection of them is a pause in the generator that every request in flight
    would count as server latency."""
    gc.freeze()
    try:
        return asyncio.run(_run(url, bodies, rate, seconds, timeout, max_in_flight, stop, request_ids, record))
    finally:
        gc.unfreeze()
