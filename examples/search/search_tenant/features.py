"""Feature tables of the search tenant (Feast: item features) and its click-log statistics.

item_stats, one row per item per day D (stamped D 00:00 UTC), from what was known before D:
  item_popularity   the catalog's popularity score
  item_log_price    log(1 + price)
  item_impressions  log(1 + impressions of the item in the click log before D)
  item_ctr_raw      clicks / impressions before D: biased towards items the old ranker put on top
  item_ctr_ipw      the same, inverse-propensity weighted (position-based model, eta from the
                    tenant file): an estimate of P(click | examined), which is what relevance drives

Query-item features (BM25, embedding similarity, attribute matches) are computed at request time
by the retriever (search_tenant.retrieval), offline and online by the same code.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from mlplatform.config import TenantConfig
from mlplatform.ranking.clicks import propensity

ITEM_FEATURES = ["item_popularity", "item_log_price", "item_impressions", "item_ctr_raw", "item_ctr_ipw"]
PRIOR_IMPRESSIONS = 5.0  # shrink CTRs of rarely shown items towards the overall rate


def item_stats(catalog: pd.DataFrame, clicks: pd.DataFrame, eta: float) -> pd.DataFrame:
    clicks = clicks.copy()
    clicks["day"] = pd.to_datetime(clicks["shown_at"], utc=True).dt.floor("D")
    clicks["ipw"] = clicks["clicked"] / propensity(clicks["position"].to_numpy(), eta)
    start = min(clicks["day"].min(), pd.to_datetime(catalog["listed_at"], utc=True).max().floor("D"))
    days = pd.date_range(start, clicks["day"].max() + pd.Timedelta(days=1), freq="D")
    daily = clicks.groupby(["item_id", "day"]).agg(n=("clicked", "size"), c=("clicked", "sum"), w=("ipw", "sum"))
    # cumulative totals up to and excluding day D, for every item and day (dense: items x days)
    items = catalog["item_id"].to_numpy(np.int64)
    grid = pd.MultiIndex.from_product([items, days], names=["item_id", "day"])
    daily = daily.reindex(grid, fill_value=0).groupby(level="item_id").cumsum()
    before = daily.groupby(level="item_id").shift(1, fill_value=0)
    n, c, w = (before[k].to_numpy(np.float64) for k in ("n", "c", "w"))
    base_raw = clicks["clicked"].mean()
    base_ipw = clicks["ipw"].mean()
    cat = catalog.set_index("item_id").loc[before.index.get_level_values("item_id")]
    out = pd.DataFrame({
        "item_id": before.index.get_level_values("item_id").astype(np.int64),
        "event_timestamp": before.index.get_level_values("day"),
        "item_popularity": cat["popularity"].to_numpy(np.float64),
        "item_log_price": np.log1p(cat["price"].to_numpy(np.float64)),
        "item_impressions": np.log1p(n),
        "item_ctr_raw": (c + PRIOR_IMPRESSIONS * base_raw) / (n + PRIOR_IMPRESSIONS),
        "item_ctr_ipw": np.minimum((w + PRIOR_IMPRESSIONS * base_ipw) / (n + PRIOR_IMPRESSIONS), 1.0),
    })
    return out


def build_feature_tables(raw: pd.DataFrame, cfg: TenantConfig,
                         tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    eta = cfg.ranking.clicks.eta if cfg.ranking and cfg.ranking.clicks else 1.0
    return {"item_stats": item_stats(tables["catalog"], tables["clicks"], eta)}
