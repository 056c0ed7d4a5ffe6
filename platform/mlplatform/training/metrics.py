"""Offline metrics for binary classifiers, and the cost-based decision threshold."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from mlplatform.config import MetricsConfig


def recall_at_fpr(y: np.ndarray, scores: np.ndarray, max_fpr: float) -> float:
    """Highest recall reachable while the false-positive rate stays at or below `max_fpr`."""
    fpr, tpr, _ = roc_curve(y, scores)
    ok = fpr <= max_fpr
    return float(tpr[ok].max()) if ok.any() else 0.0


def cost_threshold(y: np.ndarray, scores: np.ndarray, fn_cost: float, fp_cost: float) -> tuple[float, float]:
    """The score threshold minimising expected cost (missed positives × fn_cost + false alarms × fp_cost).

    Returns (threshold, cost per event). Candidates are the distinct scores, plus "flag nothing".
    """
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], y[order].astype(np.int64)
    tp = np.cumsum(t)  # flagging the top k events
    fp = np.cumsum(1 - t)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # one candidate per distinct score
    cost = (t.sum() - tp[last]) * fn_cost + fp[last] * fp_cost
    nothing = t.sum() * fn_cost
    best = int(np.argmin(cost))
    if nothing <= cost[best]:
        return float(np.nextafter(s[0], np.inf)), float(nothing / len(y))
    return float(s[last[best]]), float(cost[best] / len(y))


def classification_metrics(y, scores, cfg: MetricsConfig) -> dict[str, float]:
    y, scores = np.asarray(y), np.asarray(scores, dtype=np.float64)
    if len(np.unique(y)) < 2:
        raise ValueError("evaluation set holds one class only: PR-AUC and ROC-AUC are undefined "
                         "(widen model.split.validation_days or add data)")
    out = {
        "pr_auc": float(average_precision_score(y, scores)),
        "roc_auc": float(roc_auc_score(y, scores)),
        f"recall_at_fpr_{cfg.recall_at_fpr:g}": recall_at_fpr(y, scores, cfg.recall_at_fpr),
        "positive_rate": float(y.mean()),
        "rows": float(len(y)),
    }
    if cfg.costs:
        threshold, cost = cost_threshold(y, scores, cfg.costs.false_negative, cfg.costs.false_positive)
        flagged = scores >= threshold
        out |= {
            "threshold": threshold,
            "expected_cost_per_event": cost,
            "precision_at_threshold": float(y[flagged].mean()) if flagged.any() else 0.0,
            "recall_at_threshold": float(flagged[y == 1].mean()),
        }
    else:
        out["threshold"] = 0.5
    return out


def pr_curve_figure(y, scores, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    precision, recall, _ = precision_recall_curve(y, scores)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(recall, precision, lw=1.5)
    ax.axhline(float(np.mean(y)), ls="--", c="grey", lw=1, label="random")
    ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig
