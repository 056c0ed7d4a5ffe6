"""Helpers for the tests that talk to the running kind cluster (marker `live_cluster`).

They need `make up` first. Without a reachable cluster they skip with the reason; with
MLPLATFORM_LIVE_CLUSTER=1 (set by .github/workflows/cluster-e2e.yaml) an unreachable cluster fails
them instead, so the workflow cannot pass by skipping. Services are reached the way a user reaches
them: `kubectl port-forward`, one per service, on a free local port, stopped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def versions() -> dict[str, str]:
    lines = (REPO / "platform" / "cluster" / "versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


V = versions()
CONTEXT = f"kind-{V['KIND_CLUSTER_NAME']}"
REQUIRED = os.environ.get("MLPLATFORM_LIVE_CLUSTER") == "1"


def kubectl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "--context", CONTEXT, *args], capture_output=True, text=True, timeout=timeout)


def unreachable_reason() -> str | None:
    """None when the kind cluster's API server answers; else why not."""
    if shutil.which("kubectl") is None:
        return "kubectl is not installed"
    try:
        proc = kubectl("get", "--raw", "/readyz", "--request-timeout=5s", timeout=15)
    except subprocess.TimeoutExpired:
        return f"context {CONTEXT}: the API server did not answer in 15 s"
    if proc.returncode != 0:
        return f"context {CONTEXT} is not reachable ({proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}); run `make up`"
    return None


def require_cluster() -> None:
    reason = unreachable_reason()
    if reason is None:
        return
    if REQUIRED:
        pytest.fail(f"MLPLATFORM_LIVE_CLUSTER=1 but no cluster: {reason}")
    pytest.skip(f"no live kind cluster: {reason}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def port_forward(namespace: str, target: str, remote_port: int, timeout: float = 30) -> Iterator[str]:
    """`kubectl port-forward <target> <free port>:<remote_port>`; yields http://127.0.0.1:<port>."""
    port = _free_port()
    proc = subprocess.Popen(["kubectl", "--context", CONTEXT, "-n", namespace, "port-forward", target,
                             f"{port}:{remote_port}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read() if proc.poll() is not None else ""
                raise RuntimeError(f"port-forward {namespace}/{target} did not open: {out}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def gateway_service() -> str:
    """The Envoy proxy Service of kserve/kserve-ingress-gateway (what `make gateway` forwards)."""
    proc = kubectl("-n", V["NS_GATEWAY_PROXY"], "get", "svc", "-o", "name", "-l",
                   "gateway.envoyproxy.io/owning-gateway-name=kserve-ingress-gateway,"
                   f"gateway.envoyproxy.io/owning-gateway-namespace={V['NS_GATEWAY']}")
    names = proc.stdout.split()
    assert proc.returncode == 0 and names, f"no Envoy proxy Service for the Gateway: {proc.stderr}"
    return names[0]
