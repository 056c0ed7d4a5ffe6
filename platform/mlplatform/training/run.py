"""The training step: from the ingested snapshot to an MLflow run holding a model worth reviewing.

events labelled by now -> point-in-time features (Feast) -> time split -> train (Ray) -> metrics,
threshold, PR curve, importance -> MLflow run (params, metrics, plots, GE report, model with
signature and input example, lineage tags).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import infer_signature

from mlplatform.config import TenantConfig
from mlplatform.data.ingest import load_raw
from mlplatform.features.store import training_frame
from mlplatform.monitoring.drift import DRIFT_REFERENCE_ARTIFACT, drift_reference
from mlplatform.plugins import resolve
from mlplatform.registry import champion_eval
from mlplatform.registry.mlflow_registry import code_version, connect, experiment_id
from mlplatform.serving.metrics import bucketed_score_ks
from mlplatform.training.dataset import labelled_as_of, time_split
from mlplatform.training.metrics import classification_metrics, pr_curve_figure
from mlplatform.workspace import Workspace


def trainer_module(cfg: TenantConfig) -> ModuleType:
    """The module holding the tenant's trainer: it also provides predict, log_model and load_model."""
    return sys.modules[resolve(cfg.model.trainer).__module__]


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


def train_and_log(cfg: TenantConfig, ws: Workspace, pipeline_run_id: str, lineage: dict[str, Any],
                  validation_report: str | None = None) -> dict[str, Any]:
    if cfg.task == "ranking":  # grouped rows, ranking metrics, retrieval recall: its own step
        from mlplatform.ranking.train import train_ranking_and_log

        return train_ranking_and_log(cfg, ws, pipeline_run_id, lineage, validation_report)
    started = time.monotonic()
    raw = load_raw(cfg, ws)
    as_of = pd.to_datetime(raw[cfg.data.timestamp], utc=True).max()
    events = labelled_as_of(cfg, raw, as_of)
    request_cols = [c.name for c in cfg.features.request.fields if c.name in events.columns]
    keep = list(dict.fromkeys(cfg.features.join_keys + [cfg.data.timestamp, cfg.data.label] + request_cols))
    frame = training_frame(cfg, ws, events[keep])
    train_df, valid_df = time_split(cfg, frame)

    trainer = trainer_module(cfg)
    trained = resolve(cfg.model.trainer)(cfg, train_df, valid_df, ws.tenant(cfg.name) / "ray")
    scores = trainer.predict(trained.model, valid_df)
    y_valid = valid_df[cfg.data.label].to_numpy()
    metrics = classification_metrics(y_valid, scores, cfg.metrics)

    def champion_metrics(model, predict, _) -> dict[str, float]:
        champion_scores = predict(model, valid_df)
        # score_ks: how far apart the two models' scores are on these rows, the divergence the
        # rollout's score check expects to see online between this model and that champion
        return classification_metrics(y_valid, champion_scores, cfg.metrics) | {
            champion_eval.SCORE_KS: bucketed_score_ks(scores, champion_scores)}

    champion = champion_eval.evaluate_champion(cfg, ws, valid_df, champion_metrics)

    def classification_artifacts() -> None:
        mlflow.log_figure(pr_curve_figure(y_valid, scores, f"{cfg.name}: validation PR curve"), "plots/pr_curve.png")
        # what the predictor compares live traffic with: the validation window (the newest data,
        # out-of-sample scores), binned at its quantiles (mlplatform.monitoring.drift)
        mlflow.log_text(drift_reference(cfg, valid_df, scores).to_json(), DRIFT_REFERENCE_ARTIFACT)

    return log_training_run(cfg, ws, pipeline_run_id, lineage, trainer=trainer, trained=trained, train_df=train_df,
                            valid_df=valid_df, as_of=as_of, metrics=metrics, champion=champion, started=started,
                            validation_report=validation_report, log_extra=classification_artifacts)


def log_training_run(cfg: TenantConfig, ws: Workspace, pipeline_run_id: str, lineage: dict[str, Any], *,
                     trainer: ModuleType, trained: Any, train_df: pd.DataFrame, valid_df: pd.DataFrame,
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
        if getattr(trained, "tune_trials", None):
            mlflow.log_dict({"trials": trained.tune_trials}, "tune_trials.json")
        if validation_report and Path(validation_report).exists():
            mlflow.log_artifact(validation_report, "validation")
        mlflow.log_dict(cfg.model_dump(mode="json"), "tenant.json")
        example = valid_df[cfg.model.features].head(5)
        signature = infer_signature(example, trainer.predict(trained.model, example))
        model_info = trainer.log_model(trained.model, signature=signature, input_example=example)
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

