"""A server whose alias does not exist in MLflow must never report ready, and say why."""

from __future__ import annotations

import subprocess

import httpx

from mlplatform.processes import free_port, stop
from server_helpers import start_server


def test_missing_alias_refuses_to_start(trained_fraud, tmp_path):
    port, log = free_port(), tmp_path / "server.log"
    proc = start_server(trained_fraud.tenant_file, trained_fraud.home, port, log, "--alias", "nope")
    try:
        code = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        # still running: it must not be ready
        ready = httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2)
        raise AssertionError(f"server with alias 'nope' kept running (ready: {ready.status_code})")
    finally:
        stop(proc)
    out = log.read_text()
    assert code == 2, out[-2000:]
    assert "alias 'nope'" in out and "cannot serve" in out
