"""Can the validation rows support the gate's decision? A confidence interval per gated metric.

With rare positives the validation window can hold a handful of them, or one: its ROC-AUC of 0.50
says nothing about the model, and a gate comparing it with a minimum decides on noise. For each
metric with a `metrics.gates.minimum`, an approximate 95% interval from the number of positives
and negatives behind it; when the interval contains the minimum the rows cannot decide, and the
run says so (train record, MLflow run tag, model version tag, the register step's decision).

Intervals: Wilson's score interval for a proportion, over the rows the metric's uncertainty comes
from. It widens as those rows get fewer and stays wide at 0 or 1 (one positive ranked first gives
ROC-AUC 1.0, which proves little; a normal approximation would give the interval [1, 1]).
- ROC-AUC, the probability that a positive outranks a negative: n = min(positives, negatives), the
  variance bound AUC(1-AUC)/min(m, n) of Birnbaum & Klose (1957).
- PR-AUC (average precision) and recall_*: n = positives (as in Boyd, Eng & Page 2013, "Area under
  the precision-recall curve: point estimates and confidence intervals").
Other metrics have no interval here and are not judged.
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959964


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x))


def wilson_interval(p: float, n: int) -> tuple[float, float]:
    denom = 1 + Z95 ** 2 / n
    centre = (p + Z95 ** 2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n * n)) / denom
    return _clip(centre - half), _clip(centre + half)


def interval(metric: str, value: float, positives: int, negatives: int) -> tuple[float, float] | None:
    if metric == "roc_auc":
        return wilson_interval(value, min(positives, negatives))
    if metric == "pr_auc" or metric.startswith("recall_"):
        return wilson_interval(value, positives)
    return None


def gate_evidence(y, metrics: dict[str, float], minimums: dict[str, float]) -> dict:
    """Per gated metric its interval and whether it excludes the minimum; `sufficient` when every
    judged metric does, with a sentence saying why not."""
    y = np.asarray(y)
    positives, negatives = int((y == 1).sum()), int((y != 1).sum())
    judged: dict[str, dict] = {}
    for metric, minimum in minimums.items():
        if metric not in metrics or positives == 0 or negatives == 0:
            continue
        bounds = interval(metric, float(metrics[metric]), positives, negatives)
        if bounds is None:
            continue
        low, high = bounds
        judged[metric] = {"value": float(metrics[metric]), "low": low, "high": high, "minimum": minimum,
                          "decides": not (low <= minimum <= high)}
    undecided = [m for m, j in judged.items() if not j["decides"]]
    message = (
        f"the validation rows cannot support a decision: {positives} positive(s) in {positives + negatives} rows; "
        + "; ".join(f"{m} {judged[m]['value']:.3f}, 95% interval [{judged[m]['low']:.2f}, {judged[m]['high']:.2f}] "
                    f"contains the minimum {judged[m]['minimum']:g}" for m in undecided)
        + " (widen model.split.validation_days or wait for more labelled positives)"
    ) if undecided else f"{positives} positive(s) in {positives + negatives} validation rows: the gated metrics' " \
        f"95% intervals exclude their minimums"
    return {"sufficient": not undecided, "positives": positives, "rows": positives + negatives,
            "metrics": judged, "message": message}
