"""The pipeline's steps as plain functions: ingest -> validate -> features -> stage -> train -> register.

KFP components (pipelines/mlplatform_pipelines) are thin shims over these, and so is the CLI. A step
reads what earlier steps produced only from its arguments: their records (KFP task outputs) and the
workspace folders its task filled from input artifacts (mlplatform/handoff.py); training reads its
inputs from the MLflow run the stage step opened. Each step also logs its record in the workspace
(`steps/<run_id>/<step>.json`) for the demo to show; a failing step raises, so nothing downstream runs.
"""

from __future__ import annotations

import shutil
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


def _validated(validation: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The validation record handed on by the validate step, which must say success: unvalidated
    data goes nowhere."""
    if not validation.get("success"):
        raise RuntimeError(f"run {run_id}: validation failed, refusing to continue (report: {validation.get('report')})")
    return validation


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


def features(tenant_file: str, home: str, run_id: str, validation: dict[str, Any]) -> dict[str, Any]:
    """Feature tables -> Feast (apply, materialise into the online store), the retrieval index
    (ranking), and the training set (point-in-time join) in ws.training_set_dir: what training gets."""
    from mlplatform.data.ingest import load_raw
    from mlplatform.features import store
    from mlplatform.tasks import task_for

    cfg, ws = _open(tenant_file, home)
    _validated(validation, run_id)
    started = time.monotonic()
    raw = load_raw(cfg, ws)
    record: dict[str, Any] = {"tables": {}}
    out = ws.training_set_dir(cfg.name)
    shutil.rmtree(out, ignore_errors=True)  # a rerun replaces the set as a whole
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
    data = task_for(cfg).training_set(cfg, ws)
    data.save(out)
    record["training_set"] = {"path": str(out), "rows": len(data.frame), "as_of": data.as_of.isoformat()}
    record["seconds"] = round(time.monotonic() - started, 2)
    ws.write_step(cfg.name, run_id, "features", record)
    return record


def stage(tenant_file: str, home: str, run_id: str, snapshot: dict[str, Any], validation: dict[str, Any],
          report: str | None = None) -> dict[str, Any]:
    """Open the model's MLflow run holding what training reads (the training set, this tenant file,
    the validation report `report`, default the record's): the hand-off to a trainer that may run in
    another process (a RayJob), which gets only the run's id."""
    from mlplatform.training.mlflow_log import stage_run

    cfg, ws = _open(tenant_file, home)
    _validated(validation, run_id)
    started = time.monotonic()
    lineage = {"data_snapshot": snapshot["sha256"],
               "feature_views": ",".join(v.name for v in cfg.features.feature_views)}
    mlflow_run = stage_run(cfg, ws, Path(tenant_file).read_text(), ws.training_set_dir(cfg.name), run_id,
                           lineage, report or validation.get("report"))
    record = {"mlflow_run_id": mlflow_run, "seconds": round(time.monotonic() - started, 2)}
    ws.write_step(cfg.name, run_id, "stage", record)
    return record


def train(home: str, mlflow_run_id: str) -> dict[str, Any]:
    """Train on what the stage step logged with run `mlflow_run_id`, into that run: the tenant file,
    the training set and the lineage all come from MLflow, so this runs anywhere MLflow is reachable
    (here, or as the RayJob's entrypoint `mlplatform train-run`)."""
    import tempfile

    from mlplatform.config import load_tenant
    from mlplatform.tasks import task_for
    from mlplatform.tenants import apply_env_overrides
    from mlplatform.training import training_set
    from mlplatform.training.mlflow_log import staged_inputs

    ws = Workspace.from_env(home or None)
    text, tags = staged_inputs(ws, mlflow_run_id)
    tenant_file = Path(tempfile.mkdtemp(prefix="mlplatform-tenant-")) / "tenant.yaml"
    tenant_file.write_text(text)
    cfg = apply_env_overrides(load_tenant(tenant_file))
    data = training_set.download(ws.mlflow_uri, mlflow_run_id)
    lineage = {k: tags[k] for k in ("data_snapshot", "feature_views") if k in tags}
    run_id = tags.get("pipeline_run_id", mlflow_run_id)
    record = task_for(cfg).train_and_log(cfg, ws, data, mlflow_run_id, run_id, lineage)
    ws.write_step(cfg.name, run_id, "train", record)
    return record


def register(tenant_file: str, home: str, run_id: str, snapshot: dict[str, Any],
             trained: dict[str, Any]) -> dict[str, Any]:
    """The promotion gate and aliases for the model of the train step's record `trained`."""
    from mlplatform.registry.mlflow_registry import register as do_register

    started = time.monotonic()
    cfg, ws = _open(tenant_file, home)
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


STEPS = ("ingest", "validate", "features", "stage", "train", "register")


def run_all(tenant_file: str | Path, home: str | Path, run_id: str,
            on_step: Callable[[str], None] | None = None, isolated: bool = True) -> dict[str, dict[str, Any]]:
    """Every step in order in this process (tests, benchmarks; the pipeline runs them as KFP tasks),
    each given the records it needs from earlier steps, as the pipeline passes task outputs;
    returns each step's record. `isolated`: MLFLOW_TRACKING_URI is neither inherited nor leaked, so
    the workspace's own store is used (registry.mlflow_registry.isolated_tracking_env); False runs
    against the environment's services (the services profile)."""
    import contextlib

    from mlplatform.registry.mlflow_registry import isolated_tracking_env

    tenant, home = str(tenant_file), str(home)
    calls: dict[str, Callable[[dict[str, dict[str, Any]]], dict[str, Any]]] = {
        "ingest": lambda r: ingest(tenant, home, run_id),
        "validate": lambda r: validate(tenant, home, run_id),
        "features": lambda r: features(tenant, home, run_id, r["validate"]),
        "stage": lambda r: stage(tenant, home, run_id, r["ingest"], r["validate"]),
        "train": lambda r: train(home, r["stage"]["mlflow_run_id"]),
        "register": lambda r: register(tenant, home, run_id, r["ingest"], r["train"]),
    }
    records: dict[str, dict[str, Any]] = {}
    with isolated_tracking_env() if isolated else contextlib.nullcontext():
        for name in STEPS:
            if on_step is not None:
                on_step(name)
            records[name] = calls[name](records)
    return records
