"""Can the validation rows decide the gate? Wilson intervals over the positives behind each metric."""

from __future__ import annotations

import numpy as np
import pytest

from mlplatform.training.evidence import gate_evidence, wilson_interval


def labels(positives: int, rows: int) -> np.ndarray:
    y = np.zeros(rows, dtype=int)
    y[:positives] = 1
    return y


def test_one_positive_cannot_decide_even_when_ranked_first():
    """ROC-AUC 1.0 from one positive: the interval stays wide and contains the minimum."""
    ev = gate_evidence(labels(1, 1000), {"roc_auc": 1.0, "pr_auc": 1.0}, {"roc_auc": 0.8, "pr_auc": 0.3})
    assert ev["sufficient"] is False and ev["positives"] == 1 and ev["rows"] == 1000
    assert ev["metrics"]["roc_auc"]["low"] < 0.8 and ev["metrics"]["pr_auc"]["low"] < 0.3
    assert ev["message"].startswith("the validation rows cannot support a decision: 1 positive(s) in 1000 rows; roc_auc")
    assert "contains the minimum 0.8" in ev["message"] and "pr_auc" in ev["message"]


def test_many_positives_decide_both_ways():
    """The demo's scale (about 120 positives): a clear pass and a clear failure are both decisions."""
    passing = gate_evidence(labels(120, 20000), {"roc_auc": 0.96, "pr_auc": 0.84}, {"roc_auc": 0.8, "pr_auc": 0.3})
    assert passing["sufficient"] is True, passing
    failing = gate_evidence(labels(120, 20000), {"roc_auc": 0.6}, {"roc_auc": 0.8})
    assert failing["sufficient"] is True and failing["metrics"]["roc_auc"]["high"] < 0.8


def test_a_value_close_to_its_minimum_needs_more_rows():
    close = {"roc_auc": 0.83}
    assert gate_evidence(labels(40, 5000), close, {"roc_auc": 0.8})["sufficient"] is False
    assert gate_evidence(labels(4000, 40000), close, {"roc_auc": 0.8})["sufficient"] is True


def test_metrics_without_an_interval_or_a_gate_are_not_judged():
    ev = gate_evidence(labels(1, 100), {"roc_auc": 0.5, "threshold": 0.3}, {"threshold": 0.1})
    assert ev["sufficient"] is True and ev["metrics"] == {}


@pytest.mark.parametrize("p, n", [(0.0, 5), (1.0, 5), (0.5, 1), (0.9, 1000)])
def test_wilson_interval_holds_its_estimate(p, n):
    low, high = wilson_interval(p, n)
    assert 0.0 <= low <= p <= high <= 1.0 and high - low > 0
