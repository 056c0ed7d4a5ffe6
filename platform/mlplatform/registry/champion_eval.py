"""The champion scored on the candidate's validation rows, so the promotion gate compares two models
on the same data.

Metrics recorded when the champion was trained come from *its* validation window. A retrained
candidate is validated on a newer window, and on rare-positive data the two windows alone move
PR-AUC by more than any tolerance (the demo loop saw 0.76 vs 0.84 for two models of the same
recipe). So the training step also scores the current champion on its own validation rows and logs
those metrics as `champion_<metric>` with the run tag `champion_evaluated=<version>`; the registry
gate uses them when they belong to the champion it compares with (mlflow_registry.register), and
falls back to the champion's recorded metrics, saying so in a tag, when they do not (no champion
at training time, a champion trained on features this data does not have, or promoted since).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd

from mlplatform.config import TenantConfig
from mlplatform.workspace import Workspace

PREFIX = "champion_"
TAG = "champion_evaluated"
# classification: KS distance between candidate and champion scores on the same rows (logged as
# champion_score_ks); the rollout's score check allows this much divergence from that champion
SCORE_KS = "score_ks"
log = logging.getLogger(__name__)


def model_features(model: Any, default: list[str]) -> list[str]:
    """The inputs a loaded model was trained on (xgboost: feature_names; lightgbm: feature_name())."""
    names = getattr(model, "feature_names", None)
    if names is None and callable(getattr(model, "feature_name", None)):
        names = model.feature_name()
    return list(names or default)


def evaluate_champion(cfg: TenantConfig, ws: Workspace, frame: pd.DataFrame,
                      metrics_fn: Callable[[Any, Callable, list[str]], dict[str, float]]) -> tuple[str, dict[str, float]] | None:
    """(champion version, metrics_fn(model, predict, features)) on `frame`, or None when there is no
    champion or it cannot be scored on these rows (the reason is logged; training goes on)."""
    from mlplatform.serving.predictor import ModelLoadError, load_by_alias

    try:
        mv, trainer, model = load_by_alias(cfg, ws, "champion")
    except ModelLoadError:
        return None  # the first version: nothing to compare with
    features = model_features(model, cfg.model.features)
    missing = sorted(set(features) - set(frame.columns))
    if missing:
        log.warning("champion v%s not scored on this run's data: it needs %s", mv.version, missing)
        return None
    try:
        return str(mv.version), metrics_fn(model, trainer.predict, features)
    except Exception as err:  # noqa: BLE001 - a champion we cannot score must not fail training
        log.warning("champion v%s not scored on this run's data: %s", mv.version, err)
        return None


def as_run_metrics(metrics: dict[str, float]) -> dict[str, float]:
    return {f"{PREFIX}{k}": v for k, v in metrics.items()}


def from_run(run_metrics: dict[str, float], run_tags: dict[str, str], champion_version: str) -> dict[str, float] | None:
    """The champion's metrics on the run's own validation rows, when the run scored that version."""
    if run_tags.get(TAG) != str(champion_version):
        return None
    return {k[len(PREFIX):]: v for k, v in run_metrics.items() if k.startswith(PREFIX)} or None
