"""Alertmanager's own tool on a rendered configuration (mlplatform.monitoring.alert_routing):
`amtool check-config` (does Alertmanager accept it) and `amtool config routes test` (which
receivers a label set reaches). amtool comes with Debian's prometheus-alertmanager package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml


def find_amtool() -> str | None:
    """$MLPLATFORM_AMTOOL if it exists, else amtool on PATH (Debian: apt-get install prometheus-alertmanager)."""
    env = os.environ.get("MLPLATFORM_AMTOOL")
    if env:
        return env if Path(env).exists() or shutil.which(env) else None
    return shutil.which("amtool")


def check_config(config: dict[str, Any], amtool: str, timeout: int = 60) -> tuple[bool, str]:
    """(ok, amtool output) of `amtool check-config`."""
    with tempfile.TemporaryDirectory(prefix="mlplatform-amtool-") as tmp:
        path = Path(tmp, "alertmanager.yml")
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        proc = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, timeout=timeout)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def routes_test(config: dict[str, Any], labels: dict[str, str], amtool: str, timeout: int = 60) -> list[str]:
    """The receivers Alertmanager sends an alert with these labels to (`amtool config routes test`)."""
    with tempfile.TemporaryDirectory(prefix="mlplatform-amtool-") as tmp:
        path = Path(tmp, "alertmanager.yml")
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        proc = subprocess.run([amtool, "config", "routes", "test", f"--config.file={path}",
                               *(f"{k}={v}" for k, v in labels.items())], capture_output=True, text=True,
                              timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"amtool config routes test failed: {(proc.stdout + proc.stderr).strip()}")
    return [r.strip() for r in proc.stdout.strip().split(",") if r.strip()]
