"""Rollout analysis: PromQL checks against Prometheus, and the pure decision function.

`query(url, promql)` asks Prometheus' HTTP API for one number (None: no data). `evaluate` runs a
policy's checks for one phase; `decide` turns check results into the next action. `decide` is pure
(no I/O, no clock), so it is unit-tested on recorded metric series.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from string import Template

import httpx

from mlplatform.config import RolloutCheck, RolloutConfig


class PrometheusError(RuntimeError):
    """Prometheus is unreachable or rejected the query (not the same as "no data")."""


def query(url: str, promql: str, timeout: float = 10) -> float | None:
    """Instant query; the single sample's value, or None when the result is empty or not a number
    (NaN: e.g. a rate ratio of 0/0 when there was no traffic). Several series: an error."""
    try:
        resp = httpx.get(f"{url.rstrip('/')}/api/v1/query", params={"query": promql}, timeout=timeout)
    except httpx.HTTPError as err:
        raise PrometheusError(f"Prometheus at {url} unreachable: {err}") from err
    try:
        body = resp.json()
    except ValueError:
        raise PrometheusError(f"Prometheus answered {resp.status_code} without JSON: {resp.text[:200]}") from None
    if body.get("status") != "success":
        raise PrometheusError(f"query failed ({body.get('errorType')}): {body.get('error')}: {promql}")
    data = body["data"]
    if data["resultType"] == "scalar":
        value = float(data["result"][1])
    elif data["resultType"] == "vector":
        if not data["result"]:
            return None
        if len(data["result"]) > 1:
            raise PrometheusError(f"check returned {len(data['result'])} series, expected one: {promql}")
        value = float(data["result"][0]["value"][1])
    else:
        raise PrometheusError(f"unexpected result type {data['resultType']}: {promql}")
    return None if math.isnan(value) or math.isinf(value) else value


def render_promql(check: RolloutCheck, **variables: str) -> str:
    """Substitute $tenant, $role, $window, $stable_version, $challenger_version, $offline_score_ks
    (a typo: KeyError)."""
    return Template(check.promql).substitute(variables)


@dataclass
class CheckResult:
    name: str
    value: float | None
    passed: bool
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def judge(check: RolloutCheck, value: float | None) -> CheckResult:
    if value is None:
        return CheckResult(check.name, None, False, f"{check.name}: no data")
    if check.min is not None and value < check.min:
        return CheckResult(check.name, value, False, f"{check.name} {value:.4g} < min {check.min:g}")
    if check.max is not None and value > check.max:
        return CheckResult(check.name, value, False, f"{check.name} {value:.4g} > max {check.max:g}")
    return CheckResult(check.name, value, True, "ok")


def evaluate(policy: RolloutConfig, prometheus_url: str, *, tenant: str, role: str,
             stable_version: str | None = None, challenger_version: str | None = None,
             offline_score_ks: float = 0.0) -> list[CheckResult]:
    """Run every check for the challenger in `role` (shadow or canary); unreachable Prometheus or a
    rejected query is a failed check too (reason says which). `offline_score_ks`: the score KS
    distance between challenger and stable measured at training time on the same rows (0: unknown)."""
    out = []
    for check in policy.checks:
        promql = render_promql(check, tenant=tenant, role=role, window=policy.window,
                               stable_version=stable_version or "", challenger_version=challenger_version or "",
                               offline_score_ks=f"{offline_score_ks:.6g}")
        try:
            out.append(judge(check, query(prometheus_url, promql)))
        except PrometheusError as err:
            out.append(CheckResult(check.name, None, False, f"{check.name}: {err}"))
    return out


def window_seconds(window: str) -> float:
    """A PromQL duration of one unit ("30s", "1m", "500ms") in seconds."""
    for unit, factor in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
        if window.endswith(unit) and window[:-len(unit)].isdigit():
            return int(window[:-len(unit)]) * factor
    raise ValueError(f"not a PromQL duration: {window!r}")


@dataclass(frozen=True)
class Decision:
    action: str  # hold | advance | promote | rollback
    weight: int  # canary weight after the action
    failed_checks: int
    reason: str


def decide(policy: RolloutConfig, phase: str, weight: int, failed_checks: int, results: list[CheckResult],
           seconds_in_phase: float) -> Decision:
    """The next step of a rollout in `phase` (shadow | canary) given one analysis' results.

    - within the first `window` of a phase, checks failing only for lack of data: hold, not counted
      (a challenger just started or just given traffic has no rate over the window yet);
    - any check failed: one more failed analysis; at `failed_checks_limit` in a row -> rollback;
    - all passed, shadow: after `shadow_seconds` -> advance to the first step weight, else hold;
    - all passed, canary: the next step weight, or promote after passing at the last step /
      max_weight.
    """
    failed = [r for r in results if not r.passed]
    if failed and all(r.value is None for r in failed) and seconds_in_phase < window_seconds(policy.window):
        return Decision("hold", weight, failed_checks,
                        f"waiting for data ({seconds_in_phase:.0f}s of a {policy.window} window): "
                        + "; ".join(r.reason for r in failed))
    if failed:
        n = failed_checks + 1
        reason = "; ".join(r.reason for r in failed)
        if n >= policy.failed_checks_limit:
            return Decision("rollback", 0, n, f"{n} failed analyses in a row: {reason}")
        return Decision("hold", weight, n, f"failed analysis {n}/{policy.failed_checks_limit}: {reason}")
    if phase == "shadow":
        if seconds_in_phase >= policy.shadow_seconds:
            w = policy.step_weights[0]
            return Decision("advance", w, 0, f"shadow passed for {seconds_in_phase:.0f}s: canary at {w}%")
        return Decision("hold", 0, 0, f"shadow passing ({seconds_in_phase:.0f}/{policy.shadow_seconds:g}s)")
    if phase != "canary":
        raise ValueError(f"decide() is for the shadow and canary phases, not {phase!r}")
    later = [w for w in policy.step_weights if w > weight]
    if weight >= policy.max_weight or not later:
        return Decision("promote", weight, 0, f"all checks passed at {weight}%: promote")
    return Decision("advance", later[0], 0, f"checks passed at {weight}%: canary at {later[0]}%")
