"""Reliability suite: a real ModelServer per module against the session's trained fraud workspace,
relocatable workspace copies for destructive faults, and a record of the figures the suite measured
(requests tried, errors, faults survived), written to `reliability.json` in the session's tmp dir
(or to $MLPLATFORM_RELIABILITY_OUT) at the end of the session."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.reliability.figures import FIGURES, record  # noqa: F401 (record: re-exported)
from mlplatform.processes import free_port, stop
from tests.serving.server_helpers import start_server, wait_server_ready

STARTUP_SECONDS = 300  # generous: CI machines may be busy; a server that never starts still fails


@pytest.fixture(scope="session", autouse=True)
def reliability_report(tmp_path_factory):
    yield
    if not FIGURES:
        return
    out = Path(os.environ.get("MLPLATFORM_RELIABILITY_OUT") or tmp_path_factory.getbasetemp() / "reliability.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                               "nproc": os.cpu_count(), "figures": FIGURES}, indent=2, default=str))
    print(f"\nreliability figures: {out}")


@dataclass
class Server:
    base_url: str
    proc: subprocess.Popen
    log: Path
    home: Path


def launch(tenant_file: Path, home: Path, log: Path, env: dict | None = None, *args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    return start_server(tenant_file, home, port, log, *args, env=env), f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def server(trained_fraud, tmp_path_factory) -> Server:
    """A real predictor process for this module only (a fresh process: faults do not leak)."""
    log = tmp_path_factory.mktemp("rel-server") / "server.log"
    proc, url = launch(trained_fraud.tenant_file, trained_fraud.home, log)
    try:
        wait_server_ready(proc, url, log, timeout=STARTUP_SECONDS)
        yield Server(url, proc, log, trained_fraud.home)
    finally:
        stop(proc)


def copy_workspace(src: Path, dst: Path) -> Path:
    """A private copy of a workspace whose MLflow store points at the copy's own artifacts
    (mlflow.db stores absolute artifact locations: rewrite them), so faults stay in the copy."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("ray"))
    db = sqlite3.connect(dst / "mlflow.db")
    try:
        for (table,) in db.execute("select name from sqlite_master where type='table'").fetchall():
            for col in db.execute(f'pragma table_info("{table}")').fetchall():
                if "CHAR" in (col[2] or "").upper() or "TEXT" in (col[2] or "").upper():
                    db.execute(f'update "{table}" set "{col[1]}" = replace("{col[1]}", ?, ?) '
                               f'where "{col[1]}" like ?', (str(src), str(dst), f"%{src}%"))
        db.commit()
    finally:
        db.close()
    return dst
