"""`promtool check rules` (and `promtool test rules`) on the PrometheusRule specs rendered by Helm.

The PrometheusRule `spec` has the same shape as a Prometheus rule file ({groups: [...]}), so the
rendered spec is written out as a rule file and checked by Prometheus' own tool.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml


def find_promtool() -> str | None:
    """$MLPLATFORM_PROMTOOL if it exists, else promtool on PATH (Debian: apt-get install prometheus)."""
    env = os.environ.get("MLPLATFORM_PROMTOOL")
    if env:
        return env if Path(env).exists() or shutil.which(env) else None
    return shutil.which("promtool")


def rule_files(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """name -> rule file content, one per PrometheusRule object."""
    return {o["metadata"]["name"]: {"groups": o["spec"]["groups"]} for o in objects
            if o.get("kind") == "PrometheusRule"}


def check_rules(rules: dict[str, Any], promtool: str, timeout: int = 60) -> tuple[bool, str]:
    """(ok, promtool output) for one rule file content."""
    with tempfile.TemporaryDirectory(prefix="mlplatform-promtool-") as tmp:
        path = Path(tmp, "rules.yaml")
        path.write_text(yaml.safe_dump(rules, sort_keys=False))
        proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=timeout)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def test_rules(rules: dict[str, Any], tests: dict[str, Any], promtool: str, timeout: int = 120) -> tuple[bool, str]:
    """Run `promtool test rules` with unit tests (`tests` without rule_files: it is added here)."""
    with tempfile.TemporaryDirectory(prefix="mlplatform-promtool-") as tmp:
        Path(tmp, "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
        Path(tmp, "tests.yaml").write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], **tests}, sort_keys=False))
        proc = subprocess.run([promtool, "test", "rules", "tests.yaml"], capture_output=True, text=True,
                              timeout=timeout, cwd=tmp)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()
