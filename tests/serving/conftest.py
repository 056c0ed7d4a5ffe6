"""A real ModelServer process for the trained fraud workspace, started once per test session."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from server_helpers import free_port, start_server, stop, wait_ready


@dataclass
class RunningServer:
    base_url: str
    proc: subprocess.Popen
    log: Path


@pytest.fixture(scope="session")
def fraud_server(trained_fraud, tmp_path_factory) -> RunningServer:
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    proc = start_server(trained_fraud.tenant_file, trained_fraud.home, port, log)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base_url, log)
        yield RunningServer(base_url, proc, log)
    finally:
        stop(proc)
