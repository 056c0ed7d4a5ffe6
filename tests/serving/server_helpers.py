"""Start and stop a real ModelServer process (shared by the serving tests)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

STARTUP_SECONDS = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLATFORM_", "MLFLOW_"))}
    return env | {"MLPLATFORM_HOME": str(home), "PYTHONUNBUFFERED": "1"}


def start_server(tenant_file: Path, home: Path, port: int, log: Path, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mlplatform.serving.server", str(tenant_file), "--port", str(port), *args]
    with log.open("w") as out:
        return subprocess.Popen(cmd, env=server_env(home), stdout=out, stderr=subprocess.STDOUT)


def wait_ready(proc: subprocess.Popen, base_url: str, log: Path, timeout: float = STARTUP_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base_url}/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server not ready after {timeout}s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
        wait_ready(proc, base_url, log)
        yield RunningServer(base_url, proc, log)
    finally:
        stop(proc)
