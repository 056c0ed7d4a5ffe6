"""Bootstrap confidence intervals of offline metrics: how much a figure would move on another
sample of the same size (percentile bootstrap, Efron & Tibshirani 1993, ch. 13).

The unit resampled is what the metric averages over, so the interval reflects its real sample
size: validation rows for a classifier, queries for a ranker (rows of one query are not
independent). The generator is a fresh seeded numpy Generator: it draws nothing from the global
state, so the model's own seeded training is untouched (tests/model/test_seeded_metrics.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import mlflow
import numpy as np

from mlplatform.config import ConfidenceConfig

ARTIFACT = "confidence_intervals.json"


def bootstrap(statistic: Callable[[np.ndarray], Mapping[str, float]], units: int,
              cfg: ConfidenceConfig, unit: str) -> dict[str, Any]:
    """Percentile intervals of each figure `statistic(indices)` returns for a resample of `units`
    units (indices drawn with replacement). A resample on which a figure is undefined (the
    statistic leaves it out, e.g. one class only) does not count; `resamples` says how many did.
    {"unit", "units", "level", "seed", "intervals": {metric: {"low", "high", "resamples"}}}."""
    out: dict[str, Any] = {"unit": unit, "units": units, "level": cfg.level, "seed": cfg.seed,
                           "requested": cfg.resamples, "intervals": {}}
    if cfg.resamples == 0 or units < 2:
        return out
    rng = np.random.default_rng(cfg.seed)
    draws: dict[str, list[float]] = {}
    for _ in range(cfg.resamples):
        for name, value in statistic(rng.integers(0, units, size=units)).items():
            draws.setdefault(name, []).append(float(value))
    tail = (1 - cfg.level) / 2 * 100
    for name, values in draws.items():
        low, high = np.percentile(values, [tail, 100 - tail])
        out["intervals"][name] = {"low": float(low), "high": float(high), "resamples": len(values)}
    return out


def per_unit_means(values: Mapping[str, np.ndarray]) -> Callable[[np.ndarray], dict[str, float]]:
    """The statistic of metrics that are means of per-unit values (a ranker's per-query NDCG)."""
    arrays = {name: np.asarray(v, dtype=np.float64) for name, v in values.items()}
    return lambda idx: {name: float(a[idx].mean()) for name, a in arrays.items()}


def metrics_of(result: Mapping[str, Any]) -> dict[str, float]:
    """`<metric>.ci_low` / `<metric>.ci_high`, the names the run's metrics get."""
    out = {}
    for name, iv in result.get("intervals", {}).items():
        out |= {f"{name}.ci_low": iv["low"], f"{name}.ci_high": iv["high"]}
    return out


def log(result: Mapping[str, Any]) -> None:
    """Into the active MLflow run: the bounds as metrics, the whole result as an artifact."""
    figures = metrics_of(result)
    if figures:
        mlflow.log_metrics(figures)
    mlflow.log_dict(dict(result), ARTIFACT)
