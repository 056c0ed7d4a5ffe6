"""The promotion gate: a pure decision, so it is tested on numbers alone.

A candidate passes when every `minimum` is met and, if a champion exists, no metric in
`max_regression` falls below the champion's by more than its tolerance. Each check reads as the
comparison that held: `roc_auc 0.8100 >= minimum 0.5500` when it passed, `... < minimum ...` when not.

The champion's figures should come from the candidate's own validation rows (champion_eval.py).
When they could not (`recorded_because` says why), the comparison is with the figures recorded when
the champion was trained, on another window; that fails the gate unless the tenant file sets
`metrics.gates.allow_recorded_champion_metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlplatform.config import Gates


@dataclass
class Decision:
    passed: bool
    reasons: list[str] = field(default_factory=list)  # why it failed, one line per failed check
    checks: list[str] = field(default_factory=list)  # every check, passed or not

    def summary(self) -> str:
        return "passed: " + "; ".join(self.checks) if self.passed else "rejected: " + "; ".join(self.reasons)


def evaluate_gate(candidate: dict[str, float], champion: dict[str, float] | None, gates: Gates,
                  recorded_because: str | None = None) -> Decision:
    """`recorded_because`: set when `champion` holds the champion's recorded figures (not its scores on
    the candidate's rows), saying why."""
    decision = Decision(passed=True)

    def check(ok: bool, text: str) -> None:
        decision.checks.append(("ok " if ok else "FAIL ") + text)
        if not ok:
            decision.passed = False
            decision.reasons.append(text)

    for metric, floor in gates.minimum.items():
        if metric not in candidate:
            check(False, f"{metric} missing from candidate metrics")
            continue
        ok = candidate[metric] >= floor
        check(ok, f"{metric} {candidate[metric]:.4f} {_holds(ok)} minimum {floor:.4f}")
    if champion is not None:
        for metric, tolerance in gates.max_regression.items():
            if metric not in candidate or metric not in champion:
                check(False, f"{metric} missing from candidate or champion metrics")
                continue
            ok = candidate[metric] >= champion[metric] - tolerance
            check(ok, f"{metric} {candidate[metric]:.4f} {_holds(ok)} champion {champion[metric]:.4f} - {tolerance:g}")
        if recorded_because is not None and gates.max_regression:
            allowed = gates.allow_recorded_champion_metrics
            check(allowed, f"champion compared on its recorded figures (another validation window), not on this "
                           f"run's rows: {recorded_because}; "
                           + ("allowed by metrics.gates.allow_recorded_champion_metrics" if allowed else
                              "refused: retrain so the champion is scored on the same rows, or set "
                              "metrics.gates.allow_recorded_champion_metrics: true"))
    return decision


def _holds(ok: bool) -> str:
    """The comparison as it came out: a rejection reads as the failed inequality (0.50 < minimum 0.55)."""
    return ">=" if ok else "<"
