"""Start a real ModelServer process for the tests (the process plumbing is mlplatform.processes)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from mlplatform.processes import free_port, server_env, spawn, stop, wait_ready

STARTUP_SECONDS = 120


def start_server(tenant_file: Path, home: Path, port: int, log: Path, *args: str,
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m mlplatform.serving.server` on `port` for the workspace `home` (no waiting); `env` adds to
    the server's environment."""
    cmd = [sys.executable, "-m", "mlplatform.serving.server", str(tenant_file), "--port", str(port), *args]
    return spawn(cmd, log, env=server_env(home) | (env or {}))


def wait_server_ready(proc: subprocess.Popen, base_url: str, log: Path, timeout: float = STARTUP_SECONDS) -> None:
    """Until /v2/health/ready answers 200; NotReady (with the log's tail) when the server exits or times out."""
    wait_ready(proc, f"{base_url}/v2/health/ready", log, timeout, "model server")


@dataclass
class RunningServer:
    base_url: str
    proc: subprocess.Popen
    log: Path


@contextlib.contextmanager
def running_server(tenant_file: Path, home: Path, log_dir: Path) -> Iterator[RunningServer]:
    """A ready server for a trained workspace on a free port, stopped on exit (the session fixtures)."""
    port, log = free_port(), log_dir / "server.log"
    proc = start_server(tenant_file, home, port, log)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_server_ready(proc, base_url, log)
        yield RunningServer(base_url, proc, log)
    finally:
        stop(proc)


def send_request_file(base_url: str, tenant: str, protocol: str) -> httpx.Response:
    """POST examples/<tenant>/requests/<protocol>.json (the files docs/cluster.md sends through the
    Gateway) by the path the docs use; asserts 200."""
    path = {"v1": f"/v1/models/{tenant}:predict", "v2": f"/v2/models/{tenant}/infer"}[protocol]
    repo = Path(__file__).resolve().parents[2]
    body = (repo / "examples" / tenant / "requests" / f"{protocol}.json").read_bytes()
    resp = httpx.post(base_url + path, content=body, headers={"content-type": "application/json"}, timeout=30)
    assert resp.status_code == 200, f"{tenant} {protocol}: {resp.status_code} {resp.text}"
    return resp
