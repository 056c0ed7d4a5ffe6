"""The current champion scored on this run's validation rows (registry/champion_eval.py says why),
for both tasks' training steps."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd

from mlplatform.config import TenantConfig
from mlplatform.registry.loading import ModelLoadError, load_by_alias
from mlplatform.training.trainers import model_features
from mlplatform.workspace import Workspace

log = logging.getLogger(__name__)


def evaluate_champion(cfg: TenantConfig, ws: Workspace, frame: pd.DataFrame,
                      metrics_fn: Callable[[Any, Callable, list[str]], dict[str, float]]) -> tuple[str, dict[str, float]] | None:
    """(champion version, metrics_fn(model, predict, features)) on `frame`, or None when there is no
    champion or it cannot be scored on these rows (the reason is logged; training goes on)."""
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
