"""A plain HTTP upstream that answers with its name, counts requests and can fail or hang: the
stand-in for a broken shadow in the shadow benchmark and the proxy tests (the proxy and relay are
what is measured, so the upstream only needs to misbehave on cue).

    python -m bench.fault_upstream --mode ok|error|hang --port P [--name N] [--hang-seconds S]
"""

from __future__ import annotations

import argparse
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Upstream:
    def __init__(self, name: str, mode: str = "ok", hang_seconds: float = 5.0, port: int = 0):
        if mode not in ("ok", "error", "hang"):
            raise ValueError(f"mode must be ok, error or hang, got {mode!r}")
        self.name, self.mode, self.hang_seconds = name, mode, hang_seconds
        self.requests: list[tuple[str, bytes]] = []  # (X-Request-ID, body)
        self.lock = threading.Lock()
        up = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with up.lock:
                    up.requests.append((self.headers.get("X-Request-ID", ""), body))
                if up.mode == "hang":
                    time.sleep(up.hang_seconds)
                status = b"500 Internal Server Error" if up.mode == "error" else b"200 OK"
                out = up.name.encode()
                # one write: separate header and body writes meet Nagle + delayed ACK (40 ms stalls)
                self.wfile.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: %d\r\n\r\n" % len(out) + out)

            def do_GET(self):  # readiness probe
                self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    ap = argparse.ArgumentParser(prog="bench.fault_upstream")
    ap.add_argument("--mode", default="ok", choices=["ok", "error", "hang"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="upstream")
    ap.add_argument("--hang-seconds", type=float, default=5.0)
    args = ap.parse_args()
    Upstream(args.name, args.mode, args.hang_seconds, args.port).thread.join()


if __name__ == "__main__":
    main()
