"""Run a pipeline on this machine with kfp.local: every component is a subprocess of the current
interpreter (SubprocessRunner, use_venv=False), so the same component code runs as on a cluster."""

from __future__ import annotations

import json
from pathlib import Path

from kfp import local

from mlplatform_pipelines.train_deploy import train_deploy


def run_train_deploy(tenant_file: Path, home: Path, run_id: str, pipeline_root: Path) -> dict:
    """Run `train_deploy` in embedded mode; returns the register step's record. Raises on failure."""
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root),
               raise_on_error=True)
    task = train_deploy(tenant=str(tenant_file), home=str(home), run_id=run_id, mode="embedded")
    return json.loads(task.output)
