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
The result is written to `<home>/tenants/<name>/quality/latest.json`; the monitor process (the
webhook) exports it as `mlplatform_model_quality{tenant, model, version, metric}` on scrape, and
alert MLPlatformModelQualityDecay compares it with the tenant's gate minimum.
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


def run_quality_job(cfg: TenantConfig, ws: Workspace, *, role: str = "stable", window: int = WINDOW,
                    as_of: datetime | None = None, events: pd.DataFrame | None = None) -> dict[str, Any]:
    """Join, compute per model version, write quality/latest.json; returns the record."""
    record: dict[str, Any] = {"tenant": cfg.name, "role": role,
                              "computed_at": datetime.now(timezone.utc).isoformat(), "versions": {}}
    if cfg.task != "binary_classification":
        record["skipped"] = f"task {cfg.task}: quality from delayed labels is implemented for binary tenants"
    else:
        preds = read_predictions(ws, cfg.name, role)
        if len(preds):
            if events is None:
                from mlplatform.data.ingest import load_raw

                events = load_raw(cfg, ws)
            joined = join_labels(cfg, preds, events, as_of)
            record["predictions"], record["labelled"] = len(preds), len(joined)
            for version, g in joined.groupby("model_version"):
                g = g.sort_values("event_time").tail(window)
                record["versions"][str(version)] = quality_metrics(g["label"].to_numpy(), g["score"].to_numpy())
    path = quality_file(ws, cfg.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)
    return record


class QualityCollector:
    """`mlplatform_model_quality` from every tenant's quality/latest.json in a workspace (on scrape)."""

    METRICS = ("pr_auc", "roc_auc", "positive_rate")

    def __init__(self, ws: Workspace):
        self.ws = ws

    def describe(self):
        return []

    def collect(self):
        q = GaugeMetricFamily("mlplatform_model_quality", "Model quality on delayed labels (rolling window)",
                              labels=["tenant", "model", "version", "metric"])
        n = GaugeMetricFamily("mlplatform_model_quality_labelled_rows", "Labelled predictions behind the quality",
                              labels=["tenant", "model", "version"])
        for path in sorted((self.ws.home / "tenants").glob("*/quality/latest.json")):
            try:
                rec = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            tenant = rec.get("tenant", path.parents[1].name)
            for version, metrics in rec.get("versions", {}).items():
                for m in self.METRICS:
                    if m in metrics and metrics[m] == metrics[m]:  # not NaN
                        q.add_metric([tenant, tenant, version, m], metrics[m])
                n.add_metric([tenant, tenant, version], metrics.get("labelled_rows", 0))
        yield q
        yield n
