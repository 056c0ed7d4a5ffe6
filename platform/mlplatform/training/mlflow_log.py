"""One MLflow run per trained model, the same for every task: lineage tags, params, metrics (and
the champion's on the same rows), importance, tuning trials, the GE report, the tenant file, the
task's own artifacts, and the model with its signature and input example."""

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
from mlplatform.workspace import Workspace


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


def log_training_run(cfg: TenantConfig, ws: Workspace, pipeline_run_id: str, lineage: dict[str, Any], *,
                     trainer: Trainer, trained: Any, train_df: pd.DataFrame, valid_df: pd.DataFrame,
                     as_of: pd.Timestamp, metrics: dict[str, float], champion: tuple[str, dict] | None,
                     started: float, validation_report: str | None = None, extra_tags: dict[str, str] | None = None,
                     extra_params: dict[str, Any] | None = None,
                     log_extra: Callable[[], None] | None = None) -> dict[str, Any]:
    """One MLflow run for a trained model, the same for every task: lineage tags, params, metrics
    (and the champion's on the same rows, champion_eval.py), importance, tuning trials, the GE
    report, the tenant file, `log_extra()`'s task-specific artifacts, and the model with its
    signature and input example. Returns the train step's record."""
    connect(ws)
    tags = {"tenant": cfg.name, **(extra_tags or {}), "pipeline_run_id": pipeline_run_id,
            **{k: str(v) for k, v in lineage.items()}}
    if champion:
        tags[champion_eval.TAG] = champion[0]
    with mlflow.start_run(experiment_id=experiment_id(cfg, ws), run_name=f"{cfg.name}-{pipeline_run_id}",
                          tags=tags) as run:
        mlflow.log_params({f"param.{k}": v for k, v in trained.params.items() if not isinstance(v, list)})
        mlflow.log_params({"train_rows": len(train_df), "valid_rows": len(valid_df), "best_iteration":
                           trained.best_iteration, "as_of": as_of.isoformat(), "trainer": cfg.model.trainer,
                           "features": ",".join(cfg.model.features), **(extra_params or {})})
        mlflow.log_metrics(metrics | (champion_eval.as_run_metrics(champion[1]) if champion else {}))
        if log_extra is not None:
            log_extra()
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
        if validation_report and Path(validation_report).exists():
            mlflow.log_artifact(validation_report, "validation")
        mlflow.log_dict(cfg.model_dump(mode="json"), "tenant.json")
        example = valid_df[cfg.model.features].head(5)
        signature = infer_signature(example, trainer.predict(trained.model, example))
        model_info = trainer.log(trained.model, signature=signature, input_example=example)
        run_id = run.info.run_id
    return {
        "run_id": run_id,
        "model_uri": model_info.model_uri,
        "metrics": metrics,
        "champion_on_same_rows": {"version": champion[0], "metrics": champion[1]} if champion else None,
        "rows": len(train_df) + len(valid_df),
        "train_rows": len(train_df),
        "valid_rows": len(valid_df),
        "seconds": round(time.monotonic() - started, 2),
        "code_version": code_version(),
    }

