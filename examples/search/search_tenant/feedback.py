"""Simulated users of the served search tenant: clicks on the result lists the predictor logged.

An embedded demo has no users, so nobody clicks what `mlplatform serve search` returns. This
module plays them, with the same position-based click model and the same ground-truth relevance
that produced the training click logs (search_tenant.data): a user examines position k with
probability (1 / k) ** eta (eta: the tenant's ranking.clicks.eta) and clicks an examined item with
probability CLICK_GIVEN_EXAMINED[relevance], where relevance is `true_relevance` of the query the
text belongs to (the queries table of the ingested snapshot). A list whose query text is not in
that table gets no feedback (the simulator does not know what the user meant).

The tenant file names `simulate_feedback` as ranking.feedback.simulator; the platform defines the
feedback files and validates them (mlplatform.monitoring.feedback), joins them with the logged
lists and computes click NDCG (mlplatform.monitoring.quality).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from search_tenant.data import CLICK_GIVEN_EXAMINED, true_relevance

MAX_DELAY_SECONDS = 60.0  # a click comes up to a minute after the list was served


def simulate_clicks(impressions: pd.DataFrame, catalog: pd.DataFrame, queries: pd.DataFrame, *, eta: float = 1.0,
                    seed: int = 0, now: datetime | None = None) -> pd.DataFrame:
    """Feedback rows (request_id, row, item_id, position, clicked, at) for every shown item of the
    lists in `impressions` (one row per shown item: request_id, row, logged_at, query, position,
    item_id) whose query text is a known query."""
    rng = np.random.default_rng(seed)
    now_ts = pd.Timestamp(now or datetime.now(timezone.utc))
    now_ts = now_ts.tz_localize("UTC") if now_ts.tzinfo is None else now_ts
    by_text = queries.drop_duplicates("query").set_index("query")
    row_of = pd.Index(catalog["item_id"])
    cols = ["request_id", "row", "item_id", "position", "clicked", "at"]
    known = impressions[impressions["query"].isin(by_text.index)]
    if known.empty:
        return pd.DataFrame(columns=cols)
    known = known.sort_values(["logged_at", "request_id", "row", "position"], kind="stable")
    relevance = np.zeros(len(known), dtype=np.int64)
    for text, idx in known.groupby("query", sort=False).indices.items():
        truth = true_relevance(by_text.loc[text], catalog)
        rows = row_of.get_indexer(known["item_id"].to_numpy()[idx])
        relevance[idx] = np.where(rows >= 0, truth[np.maximum(rows, 0)], 0)
    examine = (1.0 / known["position"].to_numpy(np.float64)) ** eta
    clicked = rng.random(len(known)) < examine * CLICK_GIVEN_EXAMINED[relevance]
    lists = known.groupby(["request_id", "row"], sort=False).ngroup().to_numpy()
    delay = pd.to_timedelta(rng.uniform(1, MAX_DELAY_SECONDS, size=lists.max() + 1)[lists], unit="s")
    at = (pd.to_datetime(known["logged_at"], utc=True) + delay).clip(upper=now_ts)
    return pd.DataFrame({"request_id": known["request_id"].astype(str).to_numpy(),
                         "row": known["row"].to_numpy(np.int64), "item_id": known["item_id"].to_numpy(),
                         "position": known["position"].to_numpy(np.int64),
                         "clicked": clicked.astype(np.int64), "at": at.to_numpy()})[cols]


def simulate_feedback(cfg, ws, *, role: str = "stable", seed: int = 0) -> dict[str, Any]:
    """ranking.feedback.simulator: feedback for every logged list of `role` that has none yet,
    written as one feedback file. Returns what it did."""
    from mlplatform.data.ingest import load_table
    from mlplatform.monitoring.feedback import read_feedback, write_feedback
    from mlplatform.monitoring.prediction_log import read_predictions

    log = read_predictions(ws, cfg.name, role)
    if log.empty:
        return {"lists": 0, "feedback_rows": 0, "clicks": 0, "file": None}
    done = read_feedback(ws, cfg.name)[["request_id", "row"]].drop_duplicates()
    todo = log.merge(done.assign(_done=True), on=["request_id", "row"], how="left")
    todo = todo[todo["_done"].isna()].drop(columns="_done")
    eta = cfg.ranking.clicks.eta if cfg.ranking.clicks else 1.0
    feedback = simulate_clicks(todo, load_table(cfg, ws, "catalog"), load_table(cfg, ws, "queries"),
                               eta=eta, seed=seed)
    path = write_feedback(ws, cfg.name, feedback)
    lists = int(len(feedback[["request_id", "row"]].drop_duplicates()))
    return {"lists": lists, "skipped_lists": int(len(todo[["request_id", "row"]].drop_duplicates())) - lists,
            "feedback_rows": int(len(feedback)), "clicks": int(feedback["clicked"].sum()) if len(feedback) else 0,
            "file": str(path) if path else None}
