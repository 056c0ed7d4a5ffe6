"""bench/loadgen.py speaks HTTP/1.1 itself: against a real local server it frames Content-Length
and chunked bodies, reuses keep-alive connections, survives `Connection: close`, counts errors
with their status, and keeps the fixed schedule."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.loadgen import _dechunk, check_local, fixed_rate


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless the response closes
    connections: set = set()

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        Handler.connections.add(self.client_address)
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for part in (b'{"echo": ', body, b"}"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        status = 500 if self.path == "/error" else 200
        out = b'{"error": "boom"}' if status == 500 else body
        self.send_response(status)
        self.send_header("content-length", str(len(out)))
        if self.path in ("/close", "/error"):
            self.send_header("connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(out)


@pytest.fixture(scope="module")
def base_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("path", ["/length", "/chunked", "/close"])
def test_fixed_rate_frames_every_response(base_url, path):
    Handler.connections.clear()
    r = fixed_rate(base_url + path, [b'{"a": 1}', b'{"b": 22}'], rate=100, seconds=1)
    s = r.summary()
    assert (s["sent"], s["ok"], s["errors"]) == (100, 100, 0), s
    assert 0.95 <= r.seconds < 3 and s["p99_ms"] < 1000
    if path != "/close":  # keep-alive: a new connection only when every open one is busy
        assert len(Handler.connections) <= 20, len(Handler.connections)
    else:
        assert len(Handler.connections) == 100


def test_errors_are_counted_with_status_and_body(base_url):
    s = fixed_rate(base_url + "/error", [b"{}"], rate=50, seconds=0.4).summary()
    assert s["errors"] == s["sent"] == 20 and s["statuses"] == {"500": 20}
    assert s["first_errors"][0].startswith("500:") and "boom" in s["first_errors"][0]


def test_unreachable_server_is_an_error_not_a_crash():
    s = fixed_rate("http://127.0.0.1:9/x", [b"{}"], rate=20, seconds=0.2, timeout=2).summary()
    assert s["errors"] == s["sent"] == 4 and s["statuses"] == {"0": 4}


def test_dechunk_waits_for_the_whole_body():
    full = bytearray(b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\nNEXT")
    assert _dechunk(full, 0) == (b"Wikipedia", len(full) - 4)
    for cut in (3, 10, 20, len(full) - 6):
        assert _dechunk(full[:cut], 0) == (None, 0)


def test_only_local_targets():
    with pytest.raises(ValueError):
        check_local("http://example.com/predict")
