"""The current champion scored on this run's validation rows (registry/champion_eval.py says why),
for both tasks' training steps.

A champion that cannot be scored here (it needs inputs this data lacks, or scoring raised) does not
fail training, but it is not silent either: the exception is logged with its traceback and the
training run records `champion_rescore_failed = 1` with the reason (training/mlflow_log.py), which
the promotion gate reads and, unless the tenant file allows it, refuses to promote on
(registry/mlflow_registry.register)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlplatform.config import TenantConfig
from mlplatform.registry.loading import ModelLoadError, load_by_alias
from mlplatform.training.trainers import model_features
from mlplatform.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChampionScore:
    """The champion's metrics on this run's rows, or why there are none (`error`)."""

    version: str
    metrics: dict[str, float] | None = None
    error: str | None = None


def evaluate_champion(cfg: TenantConfig, ws: Workspace, frame: pd.DataFrame,
                      metrics_fn: Callable[[Any, Callable, list[str]], dict[str, float]]) -> ChampionScore | None:
    """The champion's metrics_fn(model, predict, features) on `frame`; None when there is no champion
    (the first version); `error` set when it exists but cannot be scored on these rows."""
    try:
        mv, trainer, model = load_by_alias(cfg, ws, "champion")
    except ModelLoadError:
        return None  # the first version: nothing to compare with
    version = str(mv.version)
    features = model_features(model, cfg.model.features)
    missing = sorted(set(features) - set(frame.columns))
    if missing:
        error = f"champion v{version} needs inputs this run's data does not have: {missing}"
        log.error("%s: not scored on this run's validation rows; the gate will refuse to promote on its recorded "
                  "figures unless metrics.gates.allow_recorded_champion_metrics", error)
        return ChampionScore(version, error=error)
    try:
        return ChampionScore(version, metrics=metrics_fn(model, trainer.predict, features))
    except Exception as err:  # noqa: BLE001 - a champion we cannot score must not fail training
        log.exception("champion v%s could not be scored on this run's validation rows; the gate will refuse to "
                      "promote on its recorded figures unless metrics.gates.allow_recorded_champion_metrics", version)
        return ChampionScore(version, error=f"scoring champion v{version} raised {type(err).__name__}: {err}")
