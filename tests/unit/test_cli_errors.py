"""The CLI's expected errors: one clean message, exit 2, no traceback (unless --debug); and user text
printed as text, never as console markup. The real CLI on the real code: CliRunner in-process, and
a subprocess where the process itself matters (the traceback on stderr, `serve` exiting)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from mlplatform.cli import EXIT_USER_ERROR, app
from mlplatform.config import NAME_RE
from tests.conftest import FRAUD_TENANT, REPO


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def expected_error(result, text: str) -> None:
    out = " ".join(result.output.split())  # rich wraps long lines at 80 columns here
    assert result.exit_code == EXIT_USER_ERROR, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # handled, not raised through
    assert "Traceback" not in result.output
    assert out.startswith("error: ") and out.count("error: ") == 1, out
    assert text in out, out


def cli(*args: str, cwd: Path, env_extra: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m mlplatform.cli ...` in a fresh process, importing this checkout's code."""
    paths = [REPO / p for p in ("platform", "pipelines", "examples/fraud", "examples/search", ".")]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # the workspace's own registry
    env |= {"PYTHONPATH": os.pathsep.join(map(str, paths)), "COLUMNS": "200"} | (env_extra or {})
    return subprocess.run([sys.executable, "-m", "mlplatform.cli", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout)


@pytest.fixture
def unknown_key_tenant(tmp_path) -> Path:
    raw = yaml.safe_load(FRAUD_TENANT.read_text())
    raw["data"]["colour"] = "red"
    path = tmp_path / "typo" / "tenant.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_unknown_tenant_is_one_message_and_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("run", "doesnotexist")
    expected_error(result, "no tenant 'doesnotexist'; looked for a tenant file at:")


def test_unknown_key_in_the_tenant_file_names_the_key(unknown_key_tenant, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for command in (["run", str(unknown_key_tenant)], ["rules", str(unknown_key_tenant)],
                    ["serve", str(unknown_key_tenant), "--home", str(tmp_path / "home")]):
        result = invoke(*command)
        expected_error(result, "data.colour: unknown key")
    assert not (tmp_path / "runs").exists()  # refused before a run folder is made


def test_tenant_name_rule_is_printed_intact(tmp_path):
    """`[a-z]` is not swallowed as console markup."""
    pd.DataFrame({"x": [1, 2], "y": [0, 1]}).to_csv(tmp_path / "t.csv", index=False)
    result = invoke("tenant", "new", "Bad_Name", "--from-table", str(tmp_path / "t.csv"), "--label", "y",
                       "--dir", str(tmp_path / "tenants"))
    expected_error(result, f"tenant name 'Bad_Name' must match {NAME_RE} ")
    assert "^[a-z][a-z0-9-]{1,30}[a-z0-9]$" in result.output


def test_bad_tables_and_options_are_expected_errors(tmp_path):
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    pd.DataFrame({"ts": [1, 2], "y": [0, 1], "x": [1.0, 2.0]}).to_csv(tmp_path / "t.csv", index=False)
    new = ["tenant", "new", "tbl", "--dir", str(tmp_path / "tenants")]
    cases = {
        ("--from-table", str(tmp_path / "nope.csv"), "--label", "y"): "nope.csv: no such table",
        ("--from-table", str(tmp_path / "broken.parquet"), "--label", "y"): "cannot be read as a table",
        ("--from-table", str(tmp_path / "t.csv"), "--label", "nope"): "label column 'nope' is not in",
        ("--from-table", str(tmp_path / "t.csv"), "--label", "y", "--timestamp", "ts"): "--timestamp-unit s|ms|us|ns",
        ("--from-table", str(tmp_path / "t.csv")): "--from-table needs --label COL",
        ("--label", "y"): "give exactly one of",
    }
    for args, message in cases.items():
        result = invoke(*new, *args)
        expected_error(result, message)


def test_run_without_traceback_and_with_debug(tmp_path):
    """The process as a user runs it: the message alone on stderr; --debug adds the traceback."""
    proc = cli("run", "doesnotexist", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "no tenant 'doesnotexist'" in proc.stderr
    debug = cli("--debug", "run", "doesnotexist", cwd=tmp_path)
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "TenantConfigError: no tenant 'doesnotexist'" in debug.stderr


def test_serve_without_a_registered_model_exits_2(tmp_path):
    """The model is loaded before any server starts: no champion means exit 2, one message."""
    proc = cli("serve", str(FRAUD_TENANT), "--home", str(tmp_path / "home"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "has no version with alias 'champion' of registered model 'fraud'" in proc.stderr


def test_demo_refuses_an_unknown_profile_and_a_services_profile_without_its_services(tmp_path, monkeypatch):
    expected_error(invoke("demo", "fraud", "--profile", "cloud", "--runs", str(tmp_path / "runs")),
                   "--profile must be one of embedded, services, got 'cloud'")
    from mlplatform.processes import free_port

    monkeypatch.setenv("MLPLATFORM_SERVICES_POSTGRES", f"postgresql+psycopg://u@127.0.0.1:{free_port()}/db")
    expected_error(invoke("demo", "fraud", "--profile", "services", "--runs", str(tmp_path / "runs")),
                   "the services profile needs PostgreSQL at 127.0.0.1:")
    assert not (tmp_path / "runs").exists()  # refused before anything is written
