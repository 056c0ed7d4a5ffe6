"""Small HTTP upstreams for the proxy tests (the proxy is what is under test, so plain servers
that answer with their name, count requests and can fail, hang or be absent are enough)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Upstream:
    def __init__(self, name: str, mode: str = "ok", hang_seconds: float = 5.0):
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

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
