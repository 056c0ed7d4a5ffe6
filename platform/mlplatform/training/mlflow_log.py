"""One MLflow run per trained model, the same for every task, filled in two steps:

stage_run        the pipeline's stage step opens it with what training reads: the training set, the
                 tenant file the pipeline run was given, the GE report, the lineage tags;
log_training_run training (in the stage task's process, or a RayJob elsewhere) adds params, metrics
                 (and the champion's on the same rows), importance, tuning trials, the task's own
                 artifacts, the model with its signature and input example, and its record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import infer_signature

from mlplatform.config import TenantConfig
from mlplatform.contracts import Trainer
from mlplatform.registry import champion_eval
from mlplatform.registry.mlflow_registry import code_version, connect, experiment_id
from mlplatform.training import baselines as baseline_records
from mlplatform.training import confidence, training_set
from mlplatform.training.champion import ChampionScore
from mlplatform.workspace import Workspace

TENANT_FILE = "tenant.yaml"  # the tenant file as the pipeline run was given it
RECORD = "train_record.json"  # the train step's record, what the register step reads


def stage_run(cfg: TenantConfig, ws: Workspace, tenant_text: str, data_dir: Path, pipeline_run_id: str,
              lineage: dict[str, Any], validation_report: str | None = None) -> str:
    """Open the model's MLflow run with everything training needs; returns its id."""
    connect(ws)
    tags = {"tenant": cfg.name, "task": cfg.task, "pipeline_run_id": pipeline_run_id,
            **{k: str(v) for k, v in lineage.items()}}
    with mlflow.start_run(experiment_id=experiment_id(cfg, ws), run_name=f"{cfg.name}-{pipeline_run_id}",
                          tags=tags) as run:
        mlflow.log_text(tenant_text, TENANT_FILE)
        training_set.log(data_dir)
        if validation_report and Path(validation_report).exists():
            mlflow.log_artifact(validation_report, "validation")
        return run.info.run_id


def staged_inputs(ws: Workspace, run_id: str) -> tuple[str, dict[str, str]]:
    """The tenant file text and the tags of a staged run (what training starts from)."""
    from mlflow.artifacts import load_text

    client = connect(ws)
    run = client.get_run(run_id)
    return load_text(f"{run.info.artifact_uri.rstrip('/')}/{TENANT_FILE}"), dict(run.data.tags)


def recorded(ws: Workspace, run_id: str) -> dict[str, Any]:
    """The train step's record logged with run `run_id` (FileNotFoundError when training did not finish)."""
    from mlflow.artifacts import load_dict
    from mlflow.exceptions import MlflowException

    connect(ws)
    try:
        return load_dict(f"runs:/{run_id}/{RECORD}")
    except MlflowException as err:
        raise FileNotFoundError(f"MLflow run {run_id} has no {RECORD}: training did not finish ({err})") from None


def importance_figure(importance: dict[str, float]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(importance.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(items) + 1))
    ax.barh([k for k, _ in items], [v for _, v in items])
    ax.set(xlabel="gain", title="feature importance")
    fig.tight_layout()
    return fig


def log_training_run(cfg: TenantConfig, ws: Workspace, mlflow_run_id: str, pipeline_run_id: str,
                     lineage: dict[str, Any], *, trainer: Trainer, trained: Any, train_df: pd.DataFrame,
                     valid_df: pd.DataFrame, as_of: pd.Timestamp, metrics: dict[str, float],
                     champion: ChampionScore | None, started: float, extra_tags: dict[str, str] | None = None,
                     extra_params: dict[str, Any] | None = None,
                     log_extra: Callable[[], None] | None = None,
                     baselines: list[dict[str, Any]] | None = None, intervals: dict[str, Any] | None = None,
                     record_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Complete the staged run `mlflow_run_id` with the trained model, the same for every task:
    params, metrics (and the champion's on the same rows, champion_eval.py), importance, tuning
    trials, the tenant config, `log_extra()`'s task-specific artifacts, the baselines' records
    (training/baselines.py) and the metrics' bootstrap intervals (training/confidence.py), the model
    with its signature and input example, and the train step's record (RECORD, with `record_extra`),
    which it returns. The record's `metrics` are the model's own: baselines and intervals have keys
    of their own."""
    connect(ws)
    tags = {"tenant": cfg.name, **(extra_tags or {}), "pipeline_run_id": pipeline_run_id,
            **{k: str(v) for k, v in lineage.items()}}
    champion_metrics: dict[str, float] = {}
    if champion is not None:  # the gate reads these (registry/champion_eval.py)
        champion_tags, champion_metrics = champion_eval.run_fields(champion.version, champion.metrics, champion.error)
        tags |= champion_tags
    with mlflow.start_run(run_id=mlflow_run_id, tags=tags) as run:
        mlflow.log_params({f"param.{k}": v for k, v in trained.params.items() if not isinstance(v, list)})
        mlflow.log_params({"train_rows": len(train_df), "valid_rows": len(valid_df), "best_iteration":
                           trained.best_iteration, "as_of": as_of.isoformat(), "trainer": cfg.model.trainer,
                           "features": ",".join(cfg.model.features), **(extra_params or {})})
        mlflow.log_metrics(metrics | champion_metrics)
        if log_extra is not None:
            log_extra()
        if intervals is not None:
            confidence.log(intervals)
        baseline_records.log_records(baselines or [])
        if trained.importance:
            mlflow.log_figure(importance_figure(trained.importance), "plots/feature_importance.png")
            mlflow.log_dict(trained.importance, "feature_importance.json")
        if getattr(trained, "tune_trials", None):  # every trial, the selected one flagged (tuning.py)
            mlflow.log_dict({"trials": trained.tune_trials}, "tune_trials.json")
            mlflow.log_param("tune_trials", len(trained.tune_trials))  # the selected values: param.<name>
        if getattr(trained, "selection", None):  # how the rounds were chosen (training/time_folds.py)
            mlflow.log_dict(trained.selection, "selection.json")
            mlflow.set_tag("selection", trained.selection.get("message", trained.selection["rule"]))
        if getattr(trained, "workers", None):  # what each Ray Train worker trained on (distributed.py)
            mlflow.log_param("ray_workers", len(trained.workers))
            mlflow.log_dict({"workers": trained.workers}, "ray_workers.json")
        mlflow.log_dict(cfg.model_dump(mode="json"), "tenant.json")
        example = valid_df[cfg.model.features].head(5)
        signature = infer_signature(example, trainer.predict(trained.model, example))
        model_info = trainer.log(trained.model, signature=signature, input_example=example)
        record = {
            "run_id": run.info.run_id,
            "model_uri": model_info.model_uri,
            "metrics": metrics,
            "champion_on_same_rows": ({"version": champion.version, "metrics": champion.metrics,
                                       "error": champion.error} if champion else None),
            "rows": len(train_df) + len(valid_df),
            "train_rows": len(train_df),
            "valid_rows": len(valid_df),
            "seconds": round(time.monotonic() - started, 2),
            "code_version": code_version(),
            "baselines": baselines or [],
            "confidence_intervals": intervals,
        } | (record_extra or {})
        mlflow.log_dict(record, RECORD)
    return record

