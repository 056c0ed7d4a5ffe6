"""Where the embedded platform keeps its state: one folder, `$MLPLATFORM_HOME` (default `./.mlplatform`).

    <home>/mlflow.db, <home>/mlartifacts/          MLflow backend store and artifacts (shared by tenants)
    <home>/tenants/<name>/data/raw/date=…/          ingested partitions (the data snapshot)
    <home>/tenants/<name>/data/features/<view>.parquet
    <home>/tenants/<name>/training_set/             what the features step hands to training
    <home>/tenants/<name>/feature_repo/             Feast repo: feature_store.yaml, registry, online store
    <home>/tenants/<name>/reports/                  validation reports (Great Expectations Data Docs)
    <home>/tenants/<name>/steps/<run_id>/<step>.json  what each step produced (a log the demo reads;
                                                      steps hand records to each other as arguments)

In cluster mode (and in tests/topology) every pipeline task has its own workspace in scratch space,
filled from its input artifacts (mlplatform/handoff.py): a workspace is never shared between processes
there. In embedded mode it also holds the zero-setup stores (SQLite, files) all processes use.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Workspace:
    home: Path

    def __post_init__(self) -> None:
        # absolute: Feast and kfp.local change directories, and a relative home would move with them
        object.__setattr__(self, "home", Path(self.home).expanduser().resolve())

    @classmethod
    def from_env(cls, home: str | Path | None = None) -> "Workspace":
        home = home or os.environ.get("MLPLATFORM_HOME") or ".mlplatform"
        return cls(Path(home).resolve())

    def tenant(self, name: str) -> Path:
        return self.home / "tenants" / name

    def raw_dir(self, name: str) -> Path:
        return self.tenant(name) / "data" / "raw"

    def features_dir(self, name: str) -> Path:
        return self.tenant(name) / "data" / "features"

    def training_set_dir(self, name: str) -> Path:
        return self.tenant(name) / "training_set"

    def feature_repo(self, name: str) -> Path:
        return self.tenant(name) / "feature_repo"

    def reports_dir(self, name: str) -> Path:
        return self.tenant(name) / "reports"

    def step_file(self, name: str, run_id: str, step: str) -> Path:
        return self.tenant(name) / "steps" / run_id / f"{step}.json"

    @property
    def mlflow_uri(self) -> str:
        # MLFLOW_TRACKING_URI wins (Postgres, a remote server); else a SQLite file in the workspace.
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.home / "mlartifacts"

    def write_step(self, name: str, run_id: str, step: str, record: dict[str, Any]) -> Path:
        path = self.step_file(name, run_id, step)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2, default=str))
        tmp.replace(path)  # atomic: a reader never sees half a record
        return path

    def read_step(self, name: str, run_id: str, step: str) -> dict[str, Any]:
        path = self.step_file(name, run_id, step)
        if not path.exists():
            raise FileNotFoundError(f"step {step!r} of run {run_id} has no record at {path}; did it run?")
        return json.loads(path.read_text())
