"""The decision logic on recorded metric series (no Prometheus: values are passed in)."""

from __future__ import annotations

import pytest

from mlplatform.config import RolloutCheck, RolloutConfig
from mlplatform.rollout.analysis import decide, judge, render_promql, window_seconds

POLICY = RolloutConfig(interval_seconds=1, shadow_seconds=10, step_weights=[10, 25, 50], max_weight=50,
                       failed_checks_limit=2)
CHECKS = {c.name: c for c in POLICY.checks}


def results(success_rate, latency_ratio, ks):
    return [judge(CHECKS["success_rate"], success_rate), judge(CHECKS["p99_latency_ratio"], latency_ratio),
            judge(CHECKS["score_ks"], ks)]


def replay(series, phase="shadow", seconds_per_step=5.0):
    """Feed (success_rate, latency_ratio, ks) samples through decide() like the controller does."""
    weight, failed, in_phase, actions = 0, 0, 0.0, []
    for sample in series:
        in_phase += seconds_per_step
        d = decide(POLICY, phase, weight, failed, results(*sample), in_phase)
        actions.append((d.action, d.weight))
        weight, failed = d.weight, d.failed_checks
        if d.action == "advance" and phase == "shadow":
            phase, in_phase = "canary", 0.0
        if d.action in ("promote", "rollback"):
            break
    return actions


GOOD = (0.999, 1.05, 0.03)


def test_a_good_challenger_goes_through_shadow_and_every_step_to_promotion():
    assert replay([GOOD] * 10) == [("hold", 0), ("advance", 10), ("advance", 25), ("advance", 50), ("promote", 50)]


def test_errors_at_the_first_canary_step_roll_back_after_the_limit():
    series = [GOOD, GOOD, (0.93, 1.0, 0.02), (0.91, 1.0, 0.02)]
    assert replay(series) == [("hold", 0), ("advance", 10), ("hold", 10), ("rollback", 0)]


def test_one_failed_analysis_is_forgiven_when_the_next_passes():
    series = [GOOD, GOOD, (0.95, 1.0, 0.02), GOOD, GOOD, GOOD]
    assert replay(series) == [("hold", 0), ("advance", 10), ("hold", 10), ("advance", 25), ("advance", 50),
                              ("promote", 50)]


def test_shifted_scores_are_caught_in_shadow_before_any_caller_sees_them():
    assert replay([(1.0, 1.0, 0.45), (1.0, 1.0, 0.5)]) == [("hold", 0), ("rollback", 0)]


def test_slow_canary_rolls_back():
    assert replay([GOOD, GOOD, (1.0, 2.4, 0.01), (1.0, 3.0, 0.01)])[-1] == ("rollback", 0)


def test_no_data_counts_as_a_failed_check():
    r = judge(CHECKS["success_rate"], None)
    assert not r.passed and "no data" in r.reason
    d = decide(POLICY, "canary", 10, 1, results(None, None, None), 61)  # past the 1m window
    assert d.action == "rollback" and "no data" in d.reason


def test_reasons_name_the_failing_check_and_value():
    d = decide(POLICY, "canary", 25, 0, results(0.9, 1.0, 0.01), 30)
    assert d.action == "hold" and d.failed_checks == 1
    assert "success_rate 0.9 < min 0.99" in d.reason


def test_promql_templates_are_filled():
    q = render_promql(CHECKS["success_rate"], tenant="fraud", role="canary", window="30s",
                      stable_version="1", challenger_version="2")
    assert 'tenant="fraud",role="canary"' in q and "[30s]" in q and "$" not in q
    ks = render_promql(CHECKS["score_ks"], tenant="fraud", role="shadow", window="30s", stable_version="1",
                       challenger_version="2", offline_score_ks="0.45")
    assert ks.endswith(" - 0.45") and 'role="shadow"' in ks and 'role="stable"' in ks
    with pytest.raises(KeyError):
        render_promql(RolloutCheck(name="x", promql="up{job=\"$typo\"}", max=1), tenant="t", role="canary",
                      window="1m", stable_version="", challenger_version="")


def test_policy_validation():
    with pytest.raises(ValueError, match="step_weights"):
        RolloutConfig(step_weights=[50, 25], max_weight=50)
    with pytest.raises(ValueError, match="min or a max"):
        RolloutCheck(name="x", promql="up")


def test_no_data_in_the_first_window_of_a_phase_waits_without_counting():
    """A challenger just started (or just given canary traffic) has no rate over the window yet."""
    d = decide(POLICY, "canary", 25, 0, results(None, None, None), 12)
    assert d.action == "hold" and d.failed_checks == 0 and "waiting for data" in d.reason
    # a real failure counts at once, even next to missing data
    d = decide(POLICY, "canary", 25, 0, results(0.5, None, None), 12)
    assert d.action == "hold" and d.failed_checks == 1 and "success_rate 0.5" in d.reason
    # silence that outlasts the window is a failure (a dead challenger is rolled back)
    d = decide(POLICY, "canary", 25, 1, results(None, None, None), 60)
    assert d.action == "rollback" and "no data" in d.reason


@pytest.mark.parametrize("text,seconds", [("30s", 30), ("1m", 60), ("500ms", 0.5), ("2h", 7200)])
def test_window_seconds(text, seconds):
    assert window_seconds(text) == seconds
