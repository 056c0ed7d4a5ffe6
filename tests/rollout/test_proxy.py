"""The embedded nginx proxy: canary weights, shadow mirroring, isolation from a bad shadow,
graceful reloads. Real nginx; the upstreams are small test servers (upstreams.py)."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter

import httpx
import numpy as np
import pytest

from mlplatform.processes import free_port, start, stop
from mlplatform.rollout.proxy import NginxProxy, Routes, nginx_binary
from mlplatform.workspace import Workspace

from tests.conftest import require
from tests.rollout.upstreams import Upstream

try:
    nginx_binary()
    HAVE_NGINX = True
except FileNotFoundError:
    HAVE_NGINX = False


@pytest.fixture
def ups():
    made: list[Upstream] = []

    def make(name, mode="ok", **kw):
        u = Upstream(name, mode, **kw)
        made.append(u)
        return u

    yield make
    for u in made:
        u.close()


@pytest.fixture
def proxy(tmp_path):
    require(HAVE_NGINX, "nginx not installed (apt-get install nginx-light)")
    p = NginxProxy(Workspace(tmp_path), "t", free_port())
    yield p
    p.stop()


def post(client, proxy, i=0):
    return client.post(f"{proxy.url}/v1/models/t:predict", content=b'{"instances": [{"i": %d}]}' % i)


def test_canary_weight_is_honoured(proxy, ups):
    stable, canary = ups("stable"), ups("canary")
    proxy.start(Routes(stable.address, canary.address, 20))
    with httpx.Client() as c:
        seen = Counter(post(c, proxy).text for _ in range(1000))
    assert seen["canary"] + seen["stable"] == 1000
    assert 140 <= seen["canary"] <= 260, seen


def test_shadow_gets_a_copy_callers_never_see_it(proxy, ups):
    stable, shadow = ups("stable"), ups("shadow")
    proxy.start(Routes(stable.address, shadow=shadow.address))
    with httpx.Client() as c:
        responses = [post(c, proxy, i) for i in range(50)]
    assert {r.text for r in responses} == {"stable"}
    assert {r.headers["X-Mlplatform-Role"] for r in responses} == {"stable"}
    deadline = time.monotonic() + 5
    while len(shadow.requests) < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(shadow.requests) == 50
    # same request id and body on both sides: stable and shadow predictions can be joined
    assert sorted(stable.requests) == sorted(shadow.requests)
    assert all(rid for rid, _ in shadow.requests)
    assert {r.headers["X-Request-ID"] for r in responses} == {rid for rid, _ in shadow.requests}


def _p99_ms(proxy, n=200) -> tuple[float, set[str], set[int]]:
    lat, texts, codes = [], set(), set()
    with httpx.Client(timeout=10) as c:
        for i in range(20):
            post(c, proxy, i)  # warm-up
        for i in range(n):
            t = time.perf_counter()
            r = post(c, proxy, i)
            lat.append((time.perf_counter() - t) * 1000)
            texts.add(r.text)
            codes.add(r.status_code)
    return float(np.percentile(lat, 99)), texts, codes


@pytest.fixture
def relay(tmp_path):
    procs = []

    def start_relay(target: str) -> str:
        port = free_port()
        procs.append(start([sys.executable, "-m", "mlplatform.rollout.mirror_relay", "--port", str(port), "--target",
                            target], f"http://127.0.0.1:{port}/_relay/stats", tmp_path / f"relay-{len(procs)}.log",
                           timeout=20, name="mirror relay"))
        return f"127.0.0.1:{port}"

    yield start_relay
    for p in procs:
        stop(p, timeout=10)


@pytest.mark.parametrize("mode", ["error", "hang", "down"])
def test_a_bad_shadow_does_not_change_callers_responses(proxy, ups, relay, mode, record_property):
    """The embedded backend's path: nginx mirror -> relay (answers 202 at once) -> shadow."""
    stable = ups("stable")
    proxy.start(Routes(stable.address))
    base, _, _ = _p99_ms(proxy)
    shadow_address = f"127.0.0.1:{free_port()}" if mode == "down" else ups("shadow", mode, hang_seconds=3).address
    proxy.apply(Routes(stable.address, shadow=relay(shadow_address)))
    with_shadow, texts, codes = _p99_ms(proxy)
    assert texts == {"stable"} and codes == {200}
    added = with_shadow - base
    record_property(f"added_p99_ms_{mode}", round(added, 3))
    print(f"\nshadow {mode}: stable-only p99 {base:.2f} ms, with shadow {with_shadow:.2f} ms, added {added:.2f} ms")


def test_relay_forwards_copies_to_a_healthy_shadow(proxy, ups, relay):
    stable, shadow = ups("stable"), ups("shadow")
    proxy.start(Routes(stable.address, shadow=relay(shadow.address)))
    with httpx.Client() as c:
        ids = {post(c, proxy, i).headers["X-Request-ID"] for i in range(30)}
    deadline = time.monotonic() + 10
    while len(shadow.requests) < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert {rid for rid, _ in shadow.requests} == ids


def test_reload_drops_no_requests(proxy, ups):
    stable, canary = ups("stable"), ups("canary")
    proxy.start(Routes(stable.address))
    stop = threading.Event()
    results: list[int | str] = []

    def drive():  # a connection per request: see docs/rollout.md for keep-alive clients
        with httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as c:
            while not stop.is_set():
                try:
                    results.append(post(c, proxy).status_code)
                except httpx.HTTPError as err:  # a dropped request
                    results.append(type(err).__name__)

    threads = [threading.Thread(target=drive) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for w in (10, 50, 0, 30, 0, 100, 0, 25, 0, 10):  # ten graceful reloads under load
            proxy.apply(Routes(stable.address, canary.address if w else None, w))
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=20)
    counts = Counter(results)
    print(f"\n{len(results)} requests during 10 reloads: {dict(counts)}")
    assert len(results) > 100
    assert counts == Counter({200: len(results)}), counts


def test_apply_returns_after_old_workers_drain(proxy, ups):
    """A request in flight under the old routes finishes before apply() returns, so the caller
    (the rollout backend) may stop the old upstream right after apply() without failing it."""
    old, new = ups("old", "hang", hang_seconds=2.0), ups("new")
    proxy.start(Routes(old.address))
    result: list = []
    caller = threading.Thread(target=lambda: result.append(post(httpx.Client(timeout=10), proxy)))
    caller.start()
    while not old.requests:
        time.sleep(0.01)
    before = proxy.workers()
    proxy.apply(Routes(new.address))
    assert result and (result[0].status_code, result[0].text) == (200, "old")
    assert before and not set(before) & set(proxy.workers())  # the old worker is gone, a new one serves
    old.close()
    with httpx.Client() as c:
        assert post(c, proxy).text == "new"
    caller.join(timeout=5)
