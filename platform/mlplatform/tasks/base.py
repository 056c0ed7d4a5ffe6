"""The interface of a task (`task` in the tenant file): everything the generic lifecycle does
differently for it. One module per task implements it (tasks/classification.py, tasks/ranking.py);
tasks/__init__.py finds it by name."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd
    from kserve import Model

    from mlplatform.config import TenantConfig
    from mlplatform.monitoring.prediction_log import PredictionLog
    from mlplatform.report.plugin import TaskReport
    from mlplatform.training.baselines import Baseline
    from mlplatform.training.training_set import TrainingSet
    from mlplatform.workspace import Workspace


class Task(Protocol):
    name: str  # the tenant file's `task` value
    # its models log a drift reference, so a served model exports drift gauges (what the loop's
    # drift alerts watch); without one the loop watches quality on delayed feedback instead
    drift_reference: bool

    def training_set(self, cfg: TenantConfig, ws: Workspace) -> TrainingSet:
        """The features step's half of training: labelled events joined point in time with their
        features (Feast's offline store, in this workspace), ready to split and train on."""

    def train_and_log(self, cfg: TenantConfig, ws: Workspace, data: TrainingSet, mlflow_run_id: str,
                      pipeline_run_id: str, lineage: dict[str, Any]) -> dict[str, Any]:
        """The train step: train and evaluate into the staged MLflow run `mlflow_run_id`
        (training/mlflow_log.py); the step's record."""

    def baselines(self, cfg: TenantConfig) -> list[Baseline]:
        """The simpler models its train step trains and scores beside the model, on the same rows
        (training/baselines.py), unless the tenant file switches them off (model.baselines)."""

    def predictor(self, cfg: TenantConfig, ws: Workspace, *, alias: str | None = None,
                  role: str = "stable") -> Model:
        """The kserve.Model that serves the tenant (not loaded yet)."""

    def prediction_log(self, cfg: TenantConfig, ws: Workspace, role: str) -> PredictionLog:
        """The prediction log its predictor writes: the rows the quality job joins labels with."""

    def smoke_test(self, cfg: TenantConfig, ws: Workspace, base_url: str, n: int | None = None) -> dict[str, Any]:
        """Realistic and malformed requests against a running server: {"requests", "errors", ...}."""

    def quality_job(self, cfg: TenantConfig, ws: Workspace, *, role: str = "stable", window: int | None = None,
                    as_of: datetime | None = None, events: pd.DataFrame | None = None) -> dict[str, Any]:
        """Quality on delayed labels from the prediction log, written to quality/latest.json
        (monitoring/quality.py); the record."""

    def report_sections(self) -> TaskReport:
        """The design review's sections that differ by task (mlplatform/report/)."""
