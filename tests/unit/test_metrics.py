"""Offline metrics and the cost-based threshold, on cases small enough to compute by hand."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from mlplatform.config import Costs, MetricsConfig
from mlplatform.training.metrics import classification_metrics, cost_threshold, recall_at_fpr

# 10 negatives and 4 positives; sorted by score the sequence is
#   0.95 N | 0.9 P | 0.6 P | 0.5 N | 0.45 N | 0.4 P | 0.35 N | 0.3 N | 0.25 N | 0.2 P | 0.15 N ...
NEG = [0.95, 0.5, 0.45, 0.35, 0.3, 0.25, 0.15, 0.1, 0.05, 0.01]
POS = [0.9, 0.6, 0.4, 0.2]
Y = np.array([0] * len(NEG) + [1] * len(POS))
S = np.array(NEG + POS)


def brute_force_cost(y, scores, threshold, fn_cost, fp_cost) -> float:
    flagged = scores >= threshold
    return float(((~flagged) & (y == 1)).sum() * fn_cost + (flagged & (y == 0)).sum() * fp_cost) / len(y)


# --- recall at a fixed false-positive rate ----------------------------------------------------


@pytest.mark.parametrize(
    "max_fpr, expected",
    [
        (0.0, 0.0),    # the top score is a negative: any threshold that flags a positive costs a false alarm
        (0.05, 0.0),   # still less than one negative in ten
        (0.1, 0.5),    # one false alarm: flag 0.95, 0.9, 0.6
        (0.15, 0.5),   # no interpolation between reachable points
        (0.2, 0.5),    # flagging 0.5 adds a false alarm but no positive
        (0.3, 0.75),   # down to 0.4
        (0.6, 1.0),    # down to 0.2: 6 negatives above it
        (0.99, 1.0),
    ],
)
def test_recall_at_fpr_by_hand(max_fpr, expected):
    assert recall_at_fpr(Y, S, max_fpr) == pytest.approx(expected)


def test_recall_at_fpr_perfect_ranking():
    y = np.array([0, 0, 0, 1, 1])
    assert recall_at_fpr(y, np.array([0.1, 0.2, 0.3, 0.8, 0.9]), 0.0) == 1.0
    # reversed ranking: every positive sits below every negative
    assert recall_at_fpr(y, np.array([0.9, 0.8, 0.7, 0.2, 0.1]), 0.5) == 0.0


# --- the cost-based threshold -----------------------------------------------------------------


def test_cost_threshold_by_hand():
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.7, 0.1])
    # flag top 1: 1 miss (10); top 2: 1 miss + 1 alarm (11); top 3: 1 alarm (1); all: 2 alarms (2); none: 20
    threshold, cost = cost_threshold(y, s, fn_cost=10, fp_cost=1)
    assert threshold == pytest.approx(0.7)
    assert cost == pytest.approx(1 / 4)


def test_cost_threshold_flags_everything_when_alarms_are_free_enough():
    y = np.array([0, 1, 0, 0])
    s = np.array([0.9, 0.1, 0.5, 0.3])
    # the positive has the lowest score; flag all: 3 alarms (3) vs none: 1 miss (100)
    threshold, cost = cost_threshold(y, s, fn_cost=100, fp_cost=1)
    assert threshold == pytest.approx(0.1)
    assert cost == pytest.approx(3 / 4)


def test_cost_threshold_flags_nothing_when_positives_are_cheap():
    y = np.array([0, 1, 0, 0])
    s = np.array([0.9, 0.8, 0.2, 0.1])
    # top 1: 1 miss + 1 alarm (11); top 2: 1 alarm (10); none: 1 miss (1) -> flag nothing
    threshold, cost = cost_threshold(y, s, fn_cost=1, fp_cost=10)
    assert threshold > s.max()
    assert not (s >= threshold).any()
    assert cost == pytest.approx(1 / 4)


def test_cost_threshold_does_not_split_tied_scores():
    # positive and negative share 0.7: no threshold flags one without the other
    y = np.array([1, 0, 0])
    s = np.array([0.7, 0.7, 0.1])
    # flag {0.7, 0.7}: 1 alarm (3); all: 2 alarms (6); none: 1 miss (10). Flagging the positive alone (0)
    # would be reachable only by splitting the tie.
    threshold, cost = cost_threshold(y, s, fn_cost=10, fp_cost=3)
    assert threshold == pytest.approx(0.7)
    assert cost == pytest.approx(1.0)
    # the order of tied rows must not matter
    assert cost_threshold(y[::-1].copy(), s[::-1].copy(), 10, 3) == (threshold, cost)


def test_cost_threshold_prefers_flagging_nothing_on_equal_cost():
    y = np.array([1, 0])
    s = np.array([0.5, 0.9])
    # flag 0.9: 1 miss + 1 alarm (2); flag all: 1 alarm (1); none: 1 miss (1) -> tie, flag nothing
    threshold, cost = cost_threshold(y, s, fn_cost=1, fp_cost=1)
    assert threshold > 0.9 and cost == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(5))
def test_cost_threshold_is_the_brute_force_optimum(seed):
    rng = np.random.default_rng(seed)
    n = 60
    y = (rng.random(n) < 0.2).astype(int)
    s = np.round(rng.random(n) * 0.5 + 0.4 * y, 1)  # rounded: many ties; positives score higher on average
    fn_cost, fp_cost = float(rng.integers(1, 20)), float(rng.integers(1, 20))
    threshold, cost = cost_threshold(y, s, fn_cost, fp_cost)
    # the reported cost is what the threshold actually costs ...
    assert cost == pytest.approx(brute_force_cost(y, s, threshold, fn_cost, fp_cost))
    # ... and no threshold (each distinct score, or above all of them) does better
    candidates = list(np.unique(s)) + [s.max() + 1]
    best = min(brute_force_cost(y, s, t, fn_cost, fp_cost) for t in candidates)
    assert cost == pytest.approx(best)


# --- all metrics together ---------------------------------------------------------------------


def test_classification_metrics_keys_and_values():
    cfg = MetricsConfig(recall_at_fpr=0.1, costs=Costs(false_negative=10, false_positive=1))
    out = classification_metrics(Y, S, cfg)
    assert out["recall_at_fpr_0.1"] == pytest.approx(0.5)
    assert out["positive_rate"] == pytest.approx(4 / 14)
    assert out["rows"] == 14
    # ROC-AUC by counting: pairs (positive, negative) with the positive ranked higher
    wins = sum(p > n for p in POS for n in NEG)
    assert out["roc_auc"] == pytest.approx(wins / (len(POS) * len(NEG)))
    assert 0 < out["pr_auc"] < 1
    threshold, cost = cost_threshold(Y, S, 10, 1)
    assert out["threshold"] == threshold
    assert out["expected_cost_per_event"] == pytest.approx(cost)
    flagged = S >= threshold
    assert out["precision_at_threshold"] == pytest.approx(Y[flagged].mean())
    assert out["recall_at_threshold"] == pytest.approx(flagged[Y == 1].mean())


def test_classification_metrics_without_costs_uses_half():
    out = classification_metrics(Y, S, MetricsConfig())
    assert out["threshold"] == 0.5
    assert "expected_cost_per_event" not in out
    assert "recall_at_fpr_0.01" in out


def test_classification_metrics_threshold_flagging_nothing():
    cfg = MetricsConfig(costs=Costs(false_negative=1, false_positive=1000))
    out = classification_metrics(Y, S, cfg)
    assert out["threshold"] > S.max()
    assert out["precision_at_threshold"] == 0.0 and out["recall_at_threshold"] == 0.0


@pytest.mark.parametrize("label", [0, 1])
def test_classification_metrics_one_class_is_an_error(label):
    y = np.full(5, label)
    with pytest.raises(ValueError, match="one class only"):
        classification_metrics(y, np.linspace(0, 1, 5), MetricsConfig())


def test_bucketed_score_ks_is_what_the_prometheus_histograms_give():
    """The offline divergence (training) and the online check (PromQL over histogram buckets) must
    measure the same thing, or the rollout's allowance would be off."""
    from prometheus_client import CollectorRegistry, Histogram

    from mlplatform.serving.metrics import SCORE_BUCKETS, bucketed_score_ks

    rng = np.random.default_rng(0)
    a, b = rng.beta(0.5, 20, 3000), rng.beta(2, 8, 2000)  # rare-positive-like vs shifted scores
    cdfs = []
    for sample in (a, b):
        # a name of its own: once another test has put prometheus_client in multiprocess mode, values
        # live in per-process files keyed by name, and a fresh registry alone would not start at zero
        name = f"s_{uuid.uuid4().hex}"
        reg = CollectorRegistry()
        h = Histogram(name, "scores", buckets=SCORE_BUCKETS, registry=reg)
        for x in sample:
            h.observe(x)
        cum = {float(s.labels["le"]): s.value for m in reg.collect() for s in m.samples if s.name == f"{name}_bucket"}
        cdfs.append(np.array([cum[le] for le in SCORE_BUCKETS]) / len(sample))
    assert bucketed_score_ks(a, b) == pytest.approx(float(np.max(np.abs(cdfs[0] - cdfs[1]))))
    assert 0.3 < bucketed_score_ks(a, b) <= 1.0
    assert bucketed_score_ks(a, a[::-1]) == 0.0
    assert bucketed_score_ks(np.zeros(10), np.ones(10)) == 1.0
