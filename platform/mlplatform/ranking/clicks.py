"""Click logs as relevance labels, debiased by inverse propensity weighting (IPW).

Position-based click model: a user examines position k with probability P(k) = (1 / k) ** eta and
clicks an examined result with a probability that grows with its relevance. A raw click-through
rate mixes both; dividing each click by P(k) (Joachims et al., "Unbiased Learning-to-Rank with
Biased Feedback", 2017) gives an unbiased estimate of P(click | examined), comparable across
positions. `eta` comes from a randomisation experiment (e.g. swapping results between positions);
the tenant file states it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlplatform.config import ClickLabels


def propensity(position: np.ndarray, eta: float) -> np.ndarray:
    """P(examine) of 1-based positions."""
    return (1.0 / np.asarray(position, dtype=np.float64)) ** eta


def ipw_ctr(clicks: pd.DataFrame, keys: list[str], position: str = "position", clicked: str = "clicked",
            eta: float = 1.0) -> pd.DataFrame:
    """Per key: impressions, clicks, raw CTR and IPW CTR (sum of clicked / propensity over impressions)."""
    df = clicks[keys + [position, clicked]].copy()
    df["_w"] = df[clicked] / propensity(df[position].to_numpy(), eta)
    out = df.groupby(keys, sort=False).agg(impressions=(clicked, "size"), clicks=(clicked, "sum"), _w=("_w", "sum"))
    out["ctr_raw"] = out["clicks"] / out["impressions"]
    out["ctr_ipw"] = out["_w"] / out["impressions"]
    return out.drop(columns="_w").reset_index()


def click_labels(clicks: pd.DataFrame, spec: ClickLabels, group: str, item: str) -> pd.DataFrame:
    """(group, item, label, weight) from clicks: graded IPW CTR of pairs shown often enough."""
    stats = ipw_ctr(clicks, [group, item], spec.position, spec.clicked, spec.eta)
    stats = stats[stats["impressions"] >= spec.min_impressions]
    label = np.searchsorted(np.asarray(spec.grade_thresholds), stats["ctr_ipw"].to_numpy(), side="right")
    return pd.DataFrame({group: stats[group].to_numpy(), item: stats[item].to_numpy(),
                         "label": label.astype(np.int64), "weight": spec.weight})
