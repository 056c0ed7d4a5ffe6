"""Delayed labels: join labels that arrived later with the logged predictions; rolling quality.

The join (binary tenants): a logged prediction carries the entity join keys and the event time the
request sent (`data.timestamp` as a request field; fraud: customer_id, terminal_id, tx_datetime).
The tenant's ingested data carries the same columns with the label and `data.label_available_at`.
A prediction is labelled when exactly one labelled event has the same keys and timestamp (to the
microsecond) and its label was available at `as_of`; ambiguous matches (two events with the same
keys and time) are dropped, not guessed. No transaction id is needed in the request, so the
request contract stays what the feature store needs; a tenant whose events can collide on
(keys, time) should add an id column to its request fields and keys.

Quality is computed over the newest `window` labelled predictions per model version (default
5000): PR-AUC (average precision; the fraud tenant's primary metric), ROC-AUC, the positive rate.
The job is the task's (`mlplatform.tasks.task_for(cfg).quality_job`: label_quality here for binary
tenants, ranking_quality for ranking ones). The result is written to
`<home>/tenants/<name>/quality/latest.json`; the monitor process (the webhook) exports it as
`mlplatform_model_quality{tenant, model, version, metric}` on scrape, and alert
MLPlatformModelQualityDecay compares it with the tenant's gate minimum. When the record was
computed is `mlplatform_model_quality_computed_timestamp_seconds{tenant, role}`: a quality job that
stopped running (or never ran) fires MLPlatformQualityJobStale (`quality.max_age_hours`), since a
decay alert cannot fire on quality nobody computes.

Ranking tenants (`task: ranking`): the label is user feedback on the served result lists. The
predictor logs every list it returns (prediction_log.RankingLog); feedback files (clicks, see
monitoring.feedback) are joined on (request_id, row, item_id); a feedback row whose position
differs from the logged one, or that names no logged item, is counted and dropped. A list counts
once any feedback row for it has arrived (the others of its items: not clicked). Over the newest
`ranking.feedback.window` lists with feedback per model version:

  ndcg_at_<k>   (k in ranking.k_values) from clicks, debiased by inverse propensity weighting. Per
                (query, item), the IPW click-through rate sum(clicked / P(examine position)) /
                impressions, with P(examine k) = (1/k)^eta (ranking.clicks.eta; mlplatform.ranking.
                clicks), estimates P(click | examined): relevance, free of the position the item was
                shown at. It is graded by ranking.clicks.grade_thresholds (the cut-offs training uses
                for click labels). Each list's DCG@k of those grades (gain 2^grade - 1, as offline) is
                divided by the ideal DCG@k of the grades of every item shown for the query; the mean
                over lists, leaving out queries with no graded item (as offline NDCG leaves out queries
                without a relevant document). Comparable with the offline NDCG@k the gate uses.
  click_mrr     mean over lists of 1 / position of the first click (0: no click)
  ctr_at_<k>    clicks at positions <= k / results shown at positions <= k (raw: position-biased)
  labelled_rows lists with feedback; also impressions (shown results), clicks, queries (in NDCG)
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prometheus_client.core import GaugeMetricFamily

from mlplatform.config import TenantConfig
from mlplatform.monitoring.prediction_log import read_predictions
from mlplatform.workspace import Workspace

WINDOW = 5000


def quality_file(ws: Workspace, tenant: str) -> Path:
    return ws.tenant(tenant) / "quality" / "latest.json"


def _utc(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, utc=True).astype("datetime64[us, UTC]")


def join_labels(cfg: TenantConfig, predictions: pd.DataFrame, events: pd.DataFrame,
                as_of: datetime | None = None) -> pd.DataFrame:
    """Predictions with a `label` column, for those whose label is known at `as_of`."""
    keys = cfg.features.join_keys
    ts, label, avail = cfg.data.timestamp, cfg.data.label, cfg.data.label_available_at
    if "event_time" not in predictions.columns:
        raise ValueError(f"{cfg.name}: the prediction log has no event time ({ts} is not a request field); "
                         f"labels cannot be joined")
    ev = events[[*keys, ts, label] + ([avail] if avail else [])].copy()
    ev[ts] = _utc(ev[ts])
    if avail:
        cutoff = pd.Timestamp(as_of or datetime.now(timezone.utc))
        cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff
        ev = ev[_utc(ev[avail]) <= cutoff]
    ev = ev.drop_duplicates([*keys, ts], keep=False)  # ambiguous (keys, time): no label
    p = predictions.copy()
    p["event_time"] = _utc(p["event_time"])
    for k in keys:
        p[k] = p[k].astype(ev[k].dtype)
    joined = p.merge(ev.rename(columns={ts: "event_time", label: "label"}), on=[*keys, "event_time"], how="inner")
    return joined.drop(columns=[avail] if avail else [])


def quality_metrics(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    out = {"labelled_rows": float(len(y)), "positive_rate": float(np.mean(y)) if len(y) else float("nan")}
    if len(y) and 0 < y.sum() < len(y):
        out["pr_auc"] = float(average_precision_score(y, scores))
        out["roc_auc"] = float(roc_auc_score(y, scores))
    return out


def new_record(cfg: TenantConfig, role: str) -> dict[str, Any]:
    """The head of a quality record; the task's quality job adds its part (tasks/*.py quality_job)."""
    return {"tenant": cfg.name, "role": role, "computed_at": datetime.now(timezone.utc).isoformat(), "versions": {}}


def write_record(ws: Workspace, record: dict[str, Any]) -> dict[str, Any]:
    """Write quality/latest.json atomically (the webhook's collector reads it); returns the record."""
    path = quality_file(ws, record["tenant"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)
    return record


def labelled_events(cfg: TenantConfig, ws: Workspace) -> pd.DataFrame:
    """The workspace's snapshot; a quality job in a pod of its own (the cluster's CronJob, whose
    workspace is an empty /tmp) first ingests one from the tenant's data source, where labels arrive."""
    from mlplatform.data.ingest import ingest, load_raw

    if not ws.raw_dir(cfg.name).exists():
        ingest(cfg, ws)
    return load_raw(cfg, ws)


def label_quality(cfg: TenantConfig, ws: Workspace, *, role: str = "stable", window: int | None = None,
                  as_of: datetime | None = None, events: pd.DataFrame | None = None) -> dict[str, Any]:
    """{"versions", "predictions", "labelled"} of a binary tenant: per model version over its newest
    `window` labelled predictions (default WINDOW). `events`: the labelled data (default: the snapshot)."""
    out: dict[str, Any] = {"versions": {}}
    preds = read_predictions(ws, cfg.name, role)
    if len(preds):
        if events is None:
            events = labelled_events(cfg, ws)
        joined = join_labels(cfg, preds, events, as_of)
        out["predictions"], out["labelled"] = len(preds), len(joined)
        for version, g in joined.groupby("model_version"):
            g = g.sort_values("event_time").tail(window or WINDOW)
            out["versions"][str(version)] = quality_metrics(g["label"].to_numpy(), g["score"].to_numpy())
    return out


# --- ranking tenants: clicks on the logged result lists -------------------------------------------

LIST = ["request_id", "row"]  # one served result list


def _click_spec(cfg: TenantConfig) -> tuple[float, list[float]]:
    """(eta, grade thresholds) of the tenant's click model (defaults of ranking.clicks)."""
    from mlplatform.config import ClickLabels

    spec = cfg.ranking.clicks if cfg.ranking and cfg.ranking.clicks else None
    if spec is None:
        return ClickLabels.model_fields["eta"].default, list(ClickLabels.model_fields["grade_thresholds"].default)
    return spec.eta, list(spec.grade_thresholds)


def join_feedback(predictions: pd.DataFrame, feedback: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The logged items of every list that has feedback, with `clicked` (0 for items without a
    feedback row); and counts of feedback rows that were dropped."""
    need = {"query", "position", "item_id"}
    if not need <= set(predictions.columns):
        raise ValueError(f"the prediction log has no result lists (columns {sorted(predictions.columns)}); "
                         f"is this a ranking tenant's log?")
    from mlplatform.monitoring.feedback import FeedbackError

    fb = feedback.copy()
    logged_numeric = pd.api.types.is_numeric_dtype(predictions["item_id"])
    if len(fb) and logged_numeric != pd.api.types.is_numeric_dtype(fb["item_id"]):
        kind = "integers" if logged_numeric else "strings"
        raise FeedbackError(f"feedback item_id values are {fb['item_id'].dtype}, but the logged item ids are {kind}")
    if logged_numeric:
        fb["item_id"] = fb["item_id"].astype(predictions["item_id"].dtype)
    # one verdict per shown item: reported twice -> a click is a click
    fb = fb.groupby([*LIST, "item_id"], as_index=False, sort=False).agg(
        clicked=("clicked", "max"), fb_position=("position", "first"))
    items = predictions[[*LIST, "logged_at", "model_version", "query", "position", "item_id"]]
    m = items.merge(fb, on=[*LIST, "item_id"], how="right", indicator=True)
    unmatched = int((m["_merge"] == "right_only").sum())
    m = m[m["_merge"] == "both"]
    moved = m["fb_position"] != m["position"]
    keep = m.loc[~moved, [*LIST, "item_id", "clicked"]]
    lists = keep[LIST].drop_duplicates()
    joined = items.merge(lists, on=LIST).merge(keep, on=[*LIST, "item_id"], how="left")
    joined["clicked"] = joined["clicked"].fillna(0).astype(np.int64)
    return joined, {"unmatched_feedback": unmatched, "position_mismatch": int(moved.sum())}


def click_quality(impressions: pd.DataFrame, k_values: list[int], eta: float,
                  grade_thresholds: list[float]) -> dict[str, float]:
    """Click metrics of result lists: one row per shown item with request_id, row, query, position,
    item_id, clicked (see the module docstring for the definitions)."""
    from mlplatform.ranking.clicks import ipw_ctr
    from mlplatform.ranking.metrics import dcg

    df = impressions.sort_values([*LIST, "position"], kind="stable")
    n_lists = int(len(df[LIST].drop_duplicates()))
    out: dict[str, float] = {"labelled_rows": float(n_lists), "impressions": float(len(df)),
                             "clicks": float(df["clicked"].sum())}
    if not n_lists:
        return out
    est = ipw_ctr(df, ["query", "item_id"], eta=eta)
    est["grade"] = np.searchsorted(np.asarray(grade_thresholds), est["ctr_ipw"].to_numpy(), side="right")
    df = df.merge(est[["query", "item_id", "grade"]], on=["query", "item_id"], how="left")
    ideal = {q: np.sort(g["grade"].to_numpy())[::-1] for q, g in est.groupby("query", sort=False)}
    ndcg: dict[int, list[float]] = {k: [] for k in k_values}
    rr = []
    queries = set()
    for (_, _), g in df.groupby(LIST, sort=False):
        clicked = np.flatnonzero(g["clicked"].to_numpy())
        rr.append(1.0 / g["position"].to_numpy()[clicked[0]] if len(clicked) else 0.0)
        best = ideal[g["query"].iat[0]]
        if best[0] <= 0:
            continue
        queries.add(g["query"].iat[0])
        grades = g["grade"].to_numpy()
        for k in k_values:
            ndcg[k].append(dcg(grades, k) / dcg(best, k))
    for k in k_values:
        top = df[df["position"] <= k]
        if len(top):
            out[f"ctr_at_{k}"] = float(top["clicked"].mean())
        if ndcg[k]:
            out[f"ndcg_at_{k}"] = float(np.mean(ndcg[k]))
    out["click_mrr"] = float(np.mean(rr))
    out["queries"] = float(len(queries))
    return out


def ranking_quality(cfg: TenantConfig, ws: Workspace, *, role: str = "stable", window: int | None = None,
                    as_of: datetime | None = None) -> dict[str, Any]:
    """{"versions", "predictions", "labelled", ...} of a ranking tenant: per model version over its
    newest `window` result lists with feedback (default ranking.feedback.window). Counts are of
    result lists (logged / with feedback)."""
    from mlplatform.monitoring.feedback import read_feedback

    window = window or cfg.ranking.feedback.window
    eta, thresholds = _click_spec(cfg)
    preds = read_predictions(ws, cfg.name, role)
    out: dict[str, Any] = {"versions": {}, "predictions": 0, "labelled": 0}
    if preds.empty:
        return out
    joined, dropped = join_feedback(preds, read_feedback(ws, cfg.name, as_of))
    out["predictions"] = int(len(preds[LIST].drop_duplicates()))
    out["labelled"] = int(len(joined[LIST].drop_duplicates()))
    out |= dropped
    for version, g in joined.groupby("model_version"):
        newest = (g.groupby(LIST, as_index=False)["logged_at"].first()
                  .sort_values("logged_at", kind="stable").tail(window)[LIST])
        out["versions"][str(version)] = click_quality(g.merge(newest, on=LIST), cfg.ranking.k_values, eta, thresholds)
    return out


class QualityCollector:
    """`mlplatform_model_quality` from every tenant's quality/latest.json in a workspace (on scrape)."""

    # counts (labelled_rows has its own gauge) are not quality; everything else numeric is exported:
    # pr_auc, roc_auc, positive_rate (binary); ndcg_at_<k>, click_mrr, ctr_at_<k> (ranking)
    COUNTS = {"labelled_rows", "impressions", "clicks", "queries"}

    def __init__(self, ws: Workspace):
        self.ws = ws

    def describe(self):
        return []

    def collect(self):
        q = GaugeMetricFamily("mlplatform_model_quality", "Model quality on delayed labels (rolling window)",
                              labels=["tenant", "model", "version", "metric"])
        n = GaugeMetricFamily("mlplatform_model_quality_labelled_rows", "Labelled predictions behind the quality",
                              labels=["tenant", "model", "version"])
        at = GaugeMetricFamily("mlplatform_model_quality_computed_timestamp_seconds",
                               "When the quality job last wrote the tenant's quality record", labels=["tenant", "role"])
        for path in sorted((self.ws.home / "tenants").glob("*/quality/latest.json")):
            try:
                rec = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            tenant = rec.get("tenant", path.parents[1].name)
            try:
                at.add_metric([tenant, str(rec.get("role", "stable"))], datetime.fromisoformat(rec["computed_at"]).timestamp())
            except (KeyError, TypeError, ValueError):
                pass  # an older record without a time: no timestamp, so the staleness alert sees none
            for version, metrics in rec.get("versions", {}).items():
                for m, value in metrics.items():
                    if m not in self.COUNTS and isinstance(value, (int, float)) and value == value:  # not NaN
                        q.add_metric([tenant, tenant, version, m], float(value))
                n.add_metric([tenant, tenant, version], metrics.get("labelled_rows", 0))
        yield q
        yield n
        yield at
