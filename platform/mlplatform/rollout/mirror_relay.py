"""A fire-and-forget relay between nginx's `mirror` and the shadow model server.

nginx finishes a request only when its mirror subrequests have finished: a shadow that hangs
delays the next request on the same keep-alive client connection by the mirror timeout (measured:
+250 ms p99 with a 250 ms timeout, docs/rollout.md). The relay answers every mirrored request at
once (202, empty body) and forwards it to the shadow in the background through a bounded queue
(full: the copy is dropped and counted), so the shadow's health never reaches callers.

    python -m mlplatform.rollout.mirror_relay --port P --target HOST:PORT [--queue 1000] [--workers 8]

A shadow failing BREAK_AFTER times in a row (5xx or no answer) opens a circuit breaker: copies are
shed for BREAK_SECONDS, then tried again. GET /_relay/stats answers
{"received", "forwarded", "failed", "dropped", "shed"} (JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time

import httpx

BREAK_AFTER, BREAK_SECONDS = 20, 5.0
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "upgrade"}


class Relay:
    def __init__(self, target: str, queue_size: int = 1000, workers: int = 8, timeout: float = 5.0):
        self.target, self.workers, self.timeout = target, workers, timeout
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=queue_size)
        self.stats = {"received": 0, "forwarded": 0, "failed": 0, "dropped": 0, "shed": 0}
        # circuit breaker: after BREAK_AFTER failures in a row, copies are shed for BREAK_SECONDS
        # (a dead or erroring shadow then costs the box no CPU the stable path needs)
        self.failures_in_a_row, self.open_until = 0, 0.0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # nginx keeps upstream connections alive: many requests per connection
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = [tuple(p.strip() for p in line.split(":", 1)) for line in lines[1:] if ":" in line]
                length = int(next((v for k, v in headers if k.lower() == "content-length"), 0) or 0)
                body = await reader.readexactly(length) if length else b""
                if method == "GET" and target == "/_relay/stats":
                    out = json.dumps(self.stats).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                                 % len(out) + out)
                else:
                    writer.write(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                    self.stats["received"] += 1
                    fwd = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
                    if time.monotonic() < self.open_until:
                        self.stats["shed"] += 1
                        await writer.drain()
                        continue
                    try:
                        self.queue.put_nowait((method, target, fwd, body))
                    except asyncio.QueueFull:
                        self.stats["dropped"] += 1
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def forward(self, client: httpx.AsyncClient) -> None:
        while True:
            method, target, headers, body = await self.queue.get()
            try:
                resp = await client.request(method, target, headers=headers, content=body)
                ok = resp.status_code < 500
            except httpx.HTTPError:
                ok = False
            try:
                self.stats["forwarded" if ok else "failed"] += 1
                self.failures_in_a_row = 0 if ok else self.failures_in_a_row + 1
                if self.failures_in_a_row >= BREAK_AFTER:
                    self.open_until, self.failures_in_a_row = time.monotonic() + BREAK_SECONDS, 0
            finally:
                self.queue.task_done()

    async def serve(self, host: str, port: int) -> None:
        async with httpx.AsyncClient(base_url=f"http://{self.target}", timeout=self.timeout,
                                     limits=httpx.Limits(max_connections=self.workers)) as client:
            tasks = [asyncio.create_task(self.forward(client)) for _ in range(self.workers)]
            server = await asyncio.start_server(self.handle, host, port)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            async with server:
                await stop.wait()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mirror_relay", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", required=True, help="host:port of the shadow server")
    parser.add_argument("--queue", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    asyncio.run(Relay(args.target, args.queue, args.workers, args.timeout).serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
