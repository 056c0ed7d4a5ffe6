"""The champion scored on the candidate's validation rows, so the promotion gate compares two models
on the same data.

Metrics recorded when the champion was trained come from *its* validation window. A retrained
candidate is validated on a newer window, and on rare-positive data the two windows alone move
PR-AUC by more than any tolerance (the demo loop saw 0.76 vs 0.84 for two models of the same
recipe). So the training step also scores the current champion on its own validation rows
(training/champion.py) and logs those metrics as `champion_<metric>` with the run tag
`champion_evaluated=<version>`; the registry gate uses them when they belong to the champion it
compares with (mlflow_registry.register), and falls back to the champion's recorded metrics, saying
so in a tag, when they do not (no champion at training time, a champion trained on features this
data does not have, or promoted since).
"""

from __future__ import annotations

PREFIX = "champion_"
TAG = "champion_evaluated"
# classification: KS distance between candidate and champion scores on the same rows (logged as
# champion_score_ks); the rollout's score check allows this much divergence from that champion
SCORE_KS = "score_ks"


def as_run_metrics(metrics: dict[str, float]) -> dict[str, float]:
    return {f"{PREFIX}{k}": v for k, v in metrics.items()}


def from_run(run_metrics: dict[str, float], run_tags: dict[str, str], champion_version: str) -> dict[str, float] | None:
    """The champion's metrics on the run's own validation rows, when the run scored that version."""
    if run_tags.get(TAG) != str(champion_version):
        return None
    return {k[len(PREFIX):]: v for k, v in run_metrics.items() if k.startswith(PREFIX)} or None
