"""Small HTTP upstreams for the proxy tests (the proxy is what is under test, so plain servers
that answer with their name, count requests and can fail, hang or be absent are enough); the
same class the shadow benchmark runs (bench/fault_upstream.py)."""

from bench.fault_upstream import Upstream

__all__ = ["Upstream"]
