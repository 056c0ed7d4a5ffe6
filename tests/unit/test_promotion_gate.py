"""The promotion gate as a pure decision on numbers."""

from __future__ import annotations

import pytest

from mlplatform.config import Gates
from mlplatform.registry.gate import evaluate_gate

GATES = Gates(minimum={"pr_auc": 0.3, "roc_auc": 0.8}, max_regression={"pr_auc": 0.02, "roc_auc": 0.01})
CHAMPION = {"pr_auc": 0.60, "roc_auc": 0.95}


def test_first_model_only_needs_the_minimums():
    d = evaluate_gate({"pr_auc": 0.31, "roc_auc": 0.81}, None, GATES)
    assert d.passed and d.reasons == []
    assert len(d.checks) == 2 and all(c.startswith("ok ") for c in d.checks)
    assert d.summary().startswith("passed: ")


def test_first_model_below_a_minimum_fails():
    d = evaluate_gate({"pr_auc": 0.29, "roc_auc": 0.99}, None, GATES)
    assert not d.passed
    # the rejection reads as the comparison that failed
    assert d.reasons == ["pr_auc 0.2900 < minimum 0.3000"]
    assert d.summary() == "rejected: pr_auc 0.2900 < minimum 0.3000"
    assert "FAIL pr_auc 0.2900 < minimum 0.3000" in d.checks and "ok roc_auc 0.9900 >= minimum 0.8000" in d.checks


def test_minimum_is_inclusive():
    assert evaluate_gate({"pr_auc": 0.3, "roc_auc": 0.8}, None, GATES).passed


def test_every_failed_check_is_reported():
    d = evaluate_gate({"pr_auc": 0.1, "roc_auc": 0.5}, None, GATES)
    assert not d.passed
    assert [r.split()[0] for r in d.reasons] == ["pr_auc", "roc_auc"]


def test_regression_within_tolerance_passes():
    d = evaluate_gate({"pr_auc": 0.585, "roc_auc": 0.945}, CHAMPION, GATES)
    assert d.passed, d.reasons
    assert len(d.checks) == 4  # 2 minimums + 2 comparisons with the champion


def test_regression_beyond_tolerance_fails():
    d = evaluate_gate({"pr_auc": 0.57, "roc_auc": 0.945}, CHAMPION, GATES)
    assert not d.passed
    assert len(d.reasons) == 1
    assert d.reasons == ["pr_auc 0.5700 < champion 0.6000 - 0.02"]
    assert "ok roc_auc 0.9450 >= champion 0.9500 - 0.01" in d.checks


def test_better_than_champion_passes():
    assert evaluate_gate({"pr_auc": 0.7, "roc_auc": 0.97}, CHAMPION, GATES).passed


def test_champion_is_ignored_without_regression_gates():
    gates = Gates(minimum={"pr_auc": 0.3})
    assert evaluate_gate({"pr_auc": 0.31}, {"pr_auc": 0.9}, gates).passed


def test_no_gates_pass_anything():
    assert evaluate_gate({}, None, Gates()).passed
    assert evaluate_gate({"pr_auc": 0.0}, {"pr_auc": 1.0}, Gates()).passed


def test_missing_metric_in_candidate_fails():
    d = evaluate_gate({"roc_auc": 0.99}, None, GATES)
    assert not d.passed
    assert "pr_auc missing from candidate metrics" in d.reasons


@pytest.mark.parametrize("side", ["candidate", "champion"])
def test_missing_metric_for_the_comparison_fails(side):
    gates = Gates(max_regression={"recall_at_fpr_0.01": 0.05})
    cand = {"pr_auc": 0.7, "recall_at_fpr_0.01": 0.8}
    champ = {"pr_auc": 0.6, "recall_at_fpr_0.01": 0.8}
    (cand if side == "candidate" else champ).pop("recall_at_fpr_0.01")
    d = evaluate_gate(cand, champ, gates)
    assert not d.passed
    assert d.reasons == ["recall_at_fpr_0.01 missing from candidate or champion metrics"]


def test_recorded_champion_figures_are_refused_unless_allowed():
    """The champion could not be scored on the candidate's rows: its recorded figures come from
    another window, so the gate refuses, saying why and how to allow it."""
    d = evaluate_gate({"pr_auc": 0.7, "roc_auc": 0.97}, CHAMPION, GATES, recorded_because="scoring raised KeyError")
    assert not d.passed and len(d.reasons) == 1
    assert "scoring raised KeyError" in d.reasons[0] and "allow_recorded_champion_metrics: true" in d.reasons[0]
    allowed = GATES.model_copy(update={"allow_recorded_champion_metrics": True})
    d = evaluate_gate({"pr_auc": 0.7, "roc_auc": 0.97}, CHAMPION, allowed, recorded_because="scoring raised KeyError")
    assert d.passed and any("allowed by" in c for c in d.checks)
    # no champion, or no comparison with it: nothing to refuse
    assert evaluate_gate({"pr_auc": 0.7, "roc_auc": 0.97}, None, GATES, recorded_because="x").passed
    assert evaluate_gate({"pr_auc": 0.7}, CHAMPION, Gates(minimum={"pr_auc": 0.3}), recorded_because="x").passed
