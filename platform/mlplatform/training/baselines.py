"""Baselines: simpler models trained and scored in the train step beside the model, on the same
training and validation rows, so "why this model" is answered with this run's numbers.

Each task names its baselines (`Task.baselines`, mlplatform.tasks; classification:
training/classification_baselines.py, ranking: ranking/baselines.py). Each one is a `Baseline`:
it fits what it needs on the training rows and scores the validation rows with the task's own
metric function, so its figures carry the model's metric names. Into the model's MLflow run go
`baseline.<name>.<metric>` metrics and `baselines.json` (name, description, metrics, what each
chose on the training rows). A baseline that does not apply to a tenant says why (`NotApplicable`);
one that fails is recorded with its error and counted in the `baselines.failed` metric, and the
model is still logged: a baseline explains the model, it does not gate it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import mlflow
import numpy as np
import pandas as pd

from mlplatform.config import TenantConfig

ARTIFACT = "baselines.json"
FAILED_METRIC = "baselines.failed"
log = logging.getLogger(__name__)


class NotApplicable(Exception):
    """This tenant's data or configuration gives the baseline nothing to measure (the reason)."""


@dataclass
class BaselineInputs:
    """What every baseline of a run sees: the model's rows and its metric function."""

    cfg: TenantConfig
    train_df: pd.DataFrame
    valid_df: pd.DataFrame
    # scores of valid_df's rows -> the metrics the model logs (the task's metric function)
    metrics: Callable[[np.ndarray], dict[str, float]]
    trainer: Any = None  # the model's Trainer (mlplatform.contracts), for baselines that retrain it
    trained: Any = None  # what it returned for the model (its params, rounds)
    extra: Mapping[str, Any] = field(default_factory=dict)  # task-specific figures (e.g. retrieval recall)


class Baseline(Protocol):
    name: str  # metric prefix: baseline.<name>.<metric>
    description: str

    def evaluate(self, inputs: BaselineInputs) -> tuple[dict[str, float], dict[str, Any]]:
        """Fit on inputs.train_df, score inputs.valid_df: (metrics, what it chose, e.g. thresholds).
        Raises NotApplicable when the tenant gives it nothing to measure."""


def run(cfg: TenantConfig, baselines: list[Baseline], inputs: BaselineInputs) -> list[dict[str, Any]]:
    """Every baseline's record: name, description, status (ok | not_applicable | failed), metrics,
    chosen, reason, seconds. None when `model.baselines.enabled` is false."""
    if not cfg.model.baselines.enabled:
        return []
    records = []
    for baseline in baselines:
        started = time.monotonic()
        record: dict[str, Any] = {"name": baseline.name, "description": baseline.description}
        try:
            metrics, chosen = baseline.evaluate(inputs)
            record |= {"status": "ok", "metrics": {k: float(v) for k, v in metrics.items()}, "chosen": chosen}
        except NotApplicable as why:
            record |= {"status": "not_applicable", "reason": str(why)}
        except Exception as err:  # noqa: BLE001 - recorded, counted and logged: see the module docstring
            log.warning("%s: baseline %s failed: %s: %s", cfg.name, baseline.name, type(err).__name__, err)
            record |= {"status": "failed", "reason": f"{type(err).__name__}: {err}"}
        record["seconds"] = round(time.monotonic() - started, 3)
        records.append(record)
    return records


def metrics_of(records: list[dict[str, Any]]) -> dict[str, float]:
    """The run's metrics: baseline.<name>.<metric> of each baseline that ran."""
    return {f"baseline.{r['name']}.{m}": v for r in records if r["status"] == "ok" for m, v in r["metrics"].items()}


def log_records(records: list[dict[str, Any]]) -> None:
    """Into the active MLflow run (nothing when baselines are switched off)."""
    if not records:
        return
    mlflow.log_metrics(metrics_of(records) | {FAILED_METRIC: float(sum(r["status"] == "failed" for r in records))})
    mlflow.log_dict({"baselines": records}, ARTIFACT)
