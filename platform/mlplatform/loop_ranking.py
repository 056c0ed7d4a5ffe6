"""The ranking tenant's half of `make demo-loop` (mlplatform.loop): query traffic, simulated users
clicking the served lists (`ranking.feedback.simulator`), the delayed-feedback quality job (click
NDCG@10, IPW) every few seconds, `mlplatform_model_quality` scraped by Prometheus and
MLPlatformModelQualityDecay evaluated against the gate minimum."""

from __future__ import annotations

import time
from typing import Any

from mlplatform.workspace import Workspace

# ranking tenants: simulated clicks + the quality job every FEEDBACK_SECONDS, for QUALITY_SECONDS at most
FEEDBACK_SECONDS = 10.0
QUALITY_SECONDS = 120.0
QUALITY_MIN_LISTS = 300  # result lists with feedback before the quality figure is reported


def traffic_rows(cfg, ws: Workspace, n: int = 100, seed: int = 0) -> list[dict]:
    """Queries for a ranking tenant's traffic: `n` distinct query texts of its data (the traffic
    repeats them, as real search traffic repeats its head queries, so clicks accumulate per query)."""
    import numpy as np

    from mlplatform.data.ingest import load_raw

    texts = load_raw(cfg, ws)[cfg.ranking.query_text].dropna().astype(str).unique()
    rng = np.random.default_rng(seed)
    return [{"query": str(q)} for q in rng.permutation(texts)[:n]]


def quality_round(cfg, ws: Workspace, seed: int) -> dict[str, Any]:
    """One round of the ranking quality loop: the tenant's simulated users give feedback on the
    lists logged since the last round, then the quality job runs (writes quality/latest.json)."""
    from mlplatform.plugins import resolve
    from mlplatform.tasks import task_for

    simulator = cfg.ranking.feedback.simulator
    if not simulator:
        raise RuntimeError(f"tenant {cfg.name!r} names no ranking.feedback.simulator: in embedded mode nobody "
                           f"clicks the served lists, so there is no feedback to measure quality on")
    feedback = resolve(simulator)(cfg, ws, role="stable", seed=seed)
    return {"feedback": feedback, "quality": task_for(cfg).quality_job(cfg, ws)}


def online_quality(cfg, ws: Workspace, stack, traffic, log, result: dict[str, Any]) -> None:
    """Rounds of feedback and the quality job until Prometheus has the quality figure from enough
    lists (or QUALITY_SECONDS pass); the figure, the gate minimum and the decay alert go to `result`."""
    primary = cfg.metrics.primary
    minimum = cfg.metrics.gates.minimum.get(primary)
    deadline = time.monotonic() + QUALITY_SECONDS
    seen = None
    rnd = 0
    while True:
        time.sleep(FEEDBACK_SECONDS)
        rnd += 1
        out = quality_round(cfg, ws, seed=rnd)
        rec = out["quality"]
        exported = stack.query(f'max(mlplatform_model_quality{{tenant="{cfg.name}", metric="{primary}"}})')
        log("feedback and quality", lists_with_feedback=rec.get("labelled"), clicks=out["feedback"].get("clicks"),
            exported=None if exported is None else round(exported, 3))
        seen = exported if exported is not None else seen
        if (seen is not None and rec.get("labelled", 0) >= QUALITY_MIN_LISTS) or time.monotonic() > deadline:
            break
    if seen is None:
        raise RuntimeError(f"Prometheus never saw mlplatform_model_quality{{metric={primary!r}}} for {cfg.name}; "
                           f"see {ws.tenant(cfg.name) / 'quality' / 'latest.json'}")
    decay = [a for a in stack.alerts() if a["labels"].get("alertname") == "MLPlatformModelQualityDecay"]
    result["quality"] = {"metric": primary, "exported": seen, "gate_minimum": minimum,
                         "versions": rec["versions"], "lists": rec.get("predictions"),
                         "lists_with_feedback": rec.get("labelled"),
                         "decay_alert": decay[0]["state"] if decay else None}
    below = minimum is not None and seen < minimum
    result["decision"] = {"outcome": "quality below the gate" if below else "quality measured",
                          "reason": f"{primary} {seen:.3f} from clicks vs gate minimum {minimum}; a ranking tenant "
                                    f"has no drift detector: MLPlatformModelQualityDecay (for 30m) starts retraining"}
    log("online quality", metric=primary, value=round(seen, 3), gate_minimum=minimum,
        decay_alert=result["quality"]["decay_alert"])
    result["traffic"] = {"requests": traffic.sent, "errors": traffic.errors}
