"""The champion scored on the candidate's validation rows, so the promotion gate compares two models
on the same data.

Metrics recorded when the champion was trained come from *its* validation window. A retrained
candidate is validated on a newer window, and on rare-positive data the two windows alone move
PR-AUC by more than any tolerance (the demo loop saw 0.76 vs 0.84 for two models of the same
recipe). So the training step also scores the current champion on its own validation rows
(training/champion.py) and logs those metrics as `champion_<metric>` with the run tag
`champion_evaluated=<version>`; the registry gate uses them when they belong to the champion it
compares with (mlflow_registry.register).

When they do not (no champion at training time, a champion trained on inputs this data does not
have, scoring it raised, or another version promoted since), the only figures left are the
champion's recorded ones, from another window. The training run records a failed re-scoring as
the metric `champion_rescore_failed` (1; 0 when it worked) and the reason as the tag
`champion_rescore_error`; the gate then refuses to promote unless the tenant file sets
`metrics.gates.allow_recorded_champion_metrics: true` (registry/gate.py), and says why.
"""

from __future__ import annotations

PREFIX = "champion_"
TAG = "champion_evaluated"
FAILED = "champion_rescore_failed"  # run metric: 1 when the champion could not be scored on the run's rows
ERROR_TAG = "champion_rescore_error"  # run tag: why
# classification: KS distance between candidate and champion scores on the same rows (logged as
# champion_score_ks); the rollout's score check allows this much divergence from that champion
SCORE_KS = "score_ks"


def as_run_metrics(metrics: dict[str, float]) -> dict[str, float]:
    return {f"{PREFIX}{k}": v for k, v in metrics.items()}


def run_fields(version: str, metrics: dict[str, float] | None, error: str | None) -> tuple[dict[str, str], dict[str, float]]:
    """(tags, metrics) the training run records about the champion `version`: its metrics on the
    run's rows, or that they could not be computed and why."""
    if metrics is not None:
        return {TAG: str(version)}, as_run_metrics(metrics) | {FAILED: 0.0}
    return {ERROR_TAG: (error or "the champion could not be scored")[:5000]}, {FAILED: 1.0}


def from_run(run_metrics: dict[str, float], run_tags: dict[str, str], champion_version: str) -> dict[str, float] | None:
    """The champion's metrics on the run's own validation rows, when the run scored that version."""
    if run_tags.get(TAG) != str(champion_version):
        return None
    return {k[len(PREFIX):]: v for k, v in run_metrics.items() if k.startswith(PREFIX) and k != FAILED} or None


def rescore_error(run_metrics: dict[str, float], run_tags: dict[str, str]) -> str | None:
    """Why the run could not score the champion, when it tried and failed."""
    if run_metrics.get(FAILED, 0.0) < 1:
        return None
    return run_tags.get(ERROR_TAG, "the training run could not score the champion")
