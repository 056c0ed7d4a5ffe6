"""The promotion gate: a pure decision, so it is tested on numbers alone.

A candidate passes when every `minimum` is met and, if a champion exists, no metric in
`max_regression` falls below the champion's by more than its tolerance.
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


def evaluate_gate(candidate: dict[str, float], champion: dict[str, float] | None, gates: Gates) -> Decision:
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
        check(candidate[metric] >= floor, f"{metric} {candidate[metric]:.4f} >= minimum {floor:.4f}")
    if champion is not None:
        for metric, tolerance in gates.max_regression.items():
            if metric not in candidate or metric not in champion:
                check(False, f"{metric} missing from candidate or champion metrics")
                continue
            floor = champion[metric] - tolerance
            check(candidate[metric] >= floor,
                  f"{metric} {candidate[metric]:.4f} >= champion {champion[metric]:.4f} - {tolerance:g}")
    return decision
