"""The analysis checks a rollout runs when the tenant file names none (`rollout.checks`).

Each is `{name, promql, min and/or max}` (the fields of mlplatform.config.RolloutCheck), as plain
data: the schema takes its default from here, so this module imports nothing from mlplatform.
PromQL templates: $tenant, $role (the challenger's role: shadow, then canary), $window,
$stable_version, $challenger_version and $offline_score_ks are substituted by
mlplatform.rollout.analysis.render_promql (string.Template; PromQL never uses `$`).
"""

from __future__ import annotations

from typing import Any

# Every series is the challenger's own (role and version) or the stable's (role and version): after a
# rollback the next challenger takes the same role within the window, and a role-only selector
# charged it with its predecessor's errors (a good v3 was rolled back on v2's 5xx).
CHALLENGER = 'role="$role",version="$challenger_version"'
STABLE = 'role="stable",version="$stable_version"'
SUCCESS_RATE = (
    'sum(rate(mlplatform_requests_total{tenant="$tenant",%s,status!~"5.."}[$window]))'
    ' / sum(rate(mlplatform_requests_total{tenant="$tenant",%s}[$window]))') % (CHALLENGER, CHALLENGER)
P99 = ('histogram_quantile(0.99, sum by (le) (rate(mlplatform_request_duration_seconds_bucket'
       '{tenant="$tenant",%s}[$window])))')
CDF = ('(sum by (le) (rate(mlplatform_prediction_score_bucket{tenant="$tenant",%s}[$window]))'
       ' / on() group_left() sum(rate(mlplatform_prediction_score_count{tenant="$tenant",%s}[$window])))')


def default_checks() -> list[dict[str, Any]]:
    return [
        {"name": "success_rate", "promql": SUCCESS_RATE, "min": 0.99},
        {"name": "p99_latency_ratio", "promql": f"{P99 % CHALLENGER} / {P99 % STABLE}", "max": 1.5},
        # Kolmogorov-Smirnov distance between the score histograms (largest CDF gap over the buckets),
        # beyond the distance the two models showed offline on the same rows: a retrain after drift
        # may rightly disagree with a stale champion (the gate judged that); diverging *more* online
        # than offline means training/serving skew or a broken challenger
        {"name": "score_ks", "promql": f"max(abs({CDF % (CHALLENGER, CHALLENGER)} - {CDF % (STABLE, STABLE)}))"
                                       " - $offline_score_ks", "max": 0.2},
    ]
