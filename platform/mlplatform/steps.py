"""The pipeline's steps as plain functions: ingest -> validate -> features -> train -> register.

KFP components (pipelines/mlplatform_pipelines) are thin shims over these, and so is the CLI.
Each step records what it produced in the workspace (`steps/<run_id>/<step>.json`), which the
next step and the demo read; a failing step raises, so nothing downstream runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from mlplatform.config import TenantConfig, load_tenant
from mlplatform.workspace import Workspace


def _open(tenant_file: str, home: str) -> tuple[TenantConfig, Workspace]:
    """The tenant with the deployment's settings from the environment (tenants.apply_env_overrides:
    Redis, Feast's SQL registry), and the workspace."""
    from mlplatform.tenants import apply_env_overrides

    return apply_env_overrides(load_tenant(tenant_file)), Workspace.from_env(home or None)


def _validated(ws: Workspace, cfg: TenantConfig, run_id: str) -> dict[str, Any]:
    """The validation record of this run, which must say success: unvalidated data goes nowhere."""
    record = ws.read_step(cfg.name, run_id, "validate")
    if not record.get("success"):
        raise RuntimeError(f"run {run_id}: validation failed, refusing to continue (report: {record.get('report')})")
    return record


def ingest(tenant_file: str, home: str, run_id: str) -> dict[str, Any]:
    from mlplatform.data.ingest import ingest as do_ingest

    cfg, ws = _open(tenant_file, home)
    started = time.monotonic()
    snap = do_ingest(cfg, ws)
    record = snap.to_dict() | {"seconds": round(time.monotonic() - started, 2)}
    ws.write_step(cfg.name, run_id, "ingest", record)
    return record


def validate(tenant_file: str, home: str, run_id: str) -> dict[str, Any]:
    """Raises ValidationFailed (with the report path) when the batch breaks an expectation."""
    from mlplatform.data.ingest import load_raw, load_table
    from mlplatform.validation.gate import ValidationFailed, validate as run_suite

    cfg, ws = _open(tenant_file, home)
    started = time.monotonic()
    tables = {name: load_table(cfg, ws, name) for name in cfg.data.tables}
    result = run_suite(cfg, load_raw(cfg, ws), ws.reports_dir(cfg.name) / run_id, tables)
    record = result.to_dict() | {"seconds": round(time.monotonic() - started, 2)}
    ws.write_step(cfg.name, run_id, "validate", record)
    if not result.success:
        raise ValidationFailed(result)
    return record


def features(tenant_file: str, home: str, run_id: str) -> dict[str, Any]:
    from mlplatform.data.ingest import load_raw
    from mlplatform.features import store

    cfg, ws = _open(tenant_file, home)
    _validated(ws, cfg, run_id)
    started = time.monotonic()
    raw = load_raw(cfg, ws)
    record: dict[str, Any] = {"tables": {}}
    if cfg.features.feature_views:
        record["tables"] = store.build_tables(cfg, ws, raw)
        store.apply(cfg, ws)
        # the online store holds the latest values as of the end of the data ("now" for this snapshot)
        end = pd.to_datetime(raw[cfg.data.timestamp], utc=True).max().to_pydatetime()
        store.materialize(cfg, ws, end=end + pd.Timedelta(seconds=1))
        record |= {"materialized_until": end.isoformat(), "repo": str(ws.feature_repo(cfg.name))}
    retrieval = cfg.ranking.retrieval if cfg.ranking else None
    if retrieval:  # ranking: the candidate-generation index is built from the same snapshot
        from mlplatform.plugins import resolve
        from mlplatform.ranking import index

        record["retrieval_index"] = resolve(retrieval.retriever).build(cfg, ws, index.built_dir(cfg, ws))
    record["seconds"] = round(time.monotonic() - started, 2)
    ws.write_step(cfg.name, run_id, "features", record)
    return record


def train(tenant_file: str, home: str, run_id: str) -> dict[str, Any]:
    from mlplatform.tasks import task_for

    cfg, ws = _open(tenant_file, home)
    snapshot = ws.read_step(cfg.name, run_id, "ingest")
    validation = _validated(ws, cfg, run_id)
    ws.read_step(cfg.name, run_id, "features")
    lineage = {
        "data_snapshot": snapshot["sha256"],
        "feature_views": ",".join(v.name for v in cfg.features.feature_views),
    }
    record = task_for(cfg).train_and_log(cfg, ws, run_id, lineage, validation_report=validation["report"])
    ws.write_step(cfg.name, run_id, "train", record)
    return record


def register(tenant_file: str, home: str, run_id: str) -> dict[str, Any]:
    from mlplatform.registry.mlflow_registry import register as do_register

    started = time.monotonic()
    cfg, ws = _open(tenant_file, home)
    snapshot = ws.read_step(cfg.name, run_id, "ingest")
    trained = ws.read_step(cfg.name, run_id, "train")
    lineage = {
        "data_snapshot": snapshot["sha256"],
        "pipeline_run_id": run_id,
        "feature_views": ",".join(v.name for v in cfg.features.feature_views),
        "code_version": trained["code_version"],
        "trainer": cfg.model.trainer,
        "task": cfg.task,
    }
    if "threshold" in trained["metrics"]:  # classification: the decision threshold the predictor reads
        lineage["threshold"] = trained["metrics"]["threshold"]
    evidence = trained.get("evidence")  # can the validation rows decide the gate (training/evidence.py)
    if evidence and not evidence["sufficient"]:
        lineage["evidence"] = evidence["message"]  # a tag of the version, beside the gate's decision
    selection = trained.get("selection") or {}  # a thin window: chosen over time folds (training/time_folds.py)
    if selection.get("thin"):
        lineage["selection"] = selection["message"]
    record = do_register(cfg, ws, trained["run_id"], trained["model_uri"], lineage).to_dict()
    if evidence and not evidence["sufficient"]:
        record["decision"] += f" ({evidence['message']})"
        record["evidence"] = evidence
    if selection.get("thin"):
        record["selection"] = selection["message"]
    record["seconds"] = round(time.monotonic() - started, 2)
    ws.write_step(cfg.name, run_id, "register", record)
    return record


STEPS = {"ingest": ingest, "validate": validate, "features": features, "train": train, "register": register}


def run_all(tenant_file: str | Path, home: str | Path, run_id: str,
            on_step: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Every step in order in this process (tests, benchmarks; the pipeline runs them as KFP tasks),
    returning each step's record. MLFLOW_TRACKING_URI is neither inherited nor leaked, so the
    workspace's own store is used (registry.mlflow_registry.isolated_tracking_env)."""
    from mlplatform.registry.mlflow_registry import isolated_tracking_env

    records: dict[str, dict[str, Any]] = {}
    with isolated_tracking_env():
        for name, fn in STEPS.items():
            if on_step is not None:
                on_step(name)
            records[name] = fn(str(tenant_file), str(home), run_id)
    return records
