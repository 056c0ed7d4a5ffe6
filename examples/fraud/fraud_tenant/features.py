"""Feature tables and request-time features for the fraud tenant.

Point-in-time convention: a payment at time t is scored with features as of t - 1 ms, so a row
stamped at `event_timestamp` may only use information known at that instant:
- customer_velocity: one row per payment, the card's hourly buckets right after it (its own
  amount is in the row, but the row is stamped at t, so scoring that payment never sees it); the
  windows are counted from those buckets at the scored event's time by the request transform
  (fraud_tenant.velocity.windows), the same code offline and online;
- terminal_risk: one row per terminal per day D (00:00 UTC) from payments in [D - w, D) and
  only the labels already available at D, since chargebacks arrive days after the payment.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from mlplatform.config import TenantConfig

from fraud_tenant import velocity

WINDOWS_DAYS = (1, 7, 30)
_DAY_NS = 86_400 * 10**9
CUSTOMER_FEATURES = velocity.CUSTOMER.state  # stored; the windows are request-derived
TERMINAL_FEATURES = [f"terminal_nb_tx_{w}d" for w in WINDOWS_DAYS] + [f"terminal_risk_{w}d" for w in WINDOWS_DAYS]


_LIST_DTYPES = {"int64_list": pd.ArrowDtype(velocity.STATE_TYPES[0]),
                "float64_list": pd.ArrowDtype(velocity.STATE_TYPES[2])}


def _utc_ns(values: pd.Series) -> np.ndarray:
    """Nanoseconds since the epoch (UTC) of tz-aware, naive-UTC or string timestamps."""
    if not pd.api.types.is_datetime64_any_dtype(values):
        values = pd.to_datetime(values, utc=True)
    # to_numpy converts tz-aware values to UTC and keeps naive ones (taken to be UTC) as they are.
    return values.to_numpy("datetime64[ns]").view(np.int64)


def _declared(cfg: TenantConfig, view: str) -> dict[str, str]:
    fv = next((v for v in cfg.features.feature_views if v.name == view), None)
    if fv is None:
        raise ValueError(f"tenant {cfg.name!r} declares no feature view {view!r}")
    # list features (bucket state) stay Arrow lists; parquet and Feast take them as arrays
    return {f.name: _LIST_DTYPES.get(f.dtype, f.dtype) for f in fv.features}


def customer_velocity(raw: pd.DataFrame) -> pd.DataFrame:
    """Per payment time: the card's hourly buckets right after it (fraud_tenant.velocity)."""
    return velocity.state_table(velocity.CUSTOMER, raw, "tx_datetime")


def _window_counts(term: np.ndarray, start: np.ndarray, end: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """counts[terminal, D] = number of rows whose day range [start, end] (inclusive) holds D.

    Difference array: +1 at start, -1 after end, cumulative sum over days. Dense
    (terminals x days), which is small for this tenant (2000 x 62)."""
    keep = start <= end
    width = shape[1] + 1
    size = shape[0] * width
    diff = np.bincount(term[keep] * width + start[keep], minlength=size) - np.bincount(
        term[keep] * width + end[keep] + 1, minlength=size
    )
    return np.cumsum(diff.reshape(shape[0], width), axis=1)[:, : shape[1]]


def terminal_risk(raw: pd.DataFrame) -> pd.DataFrame:
    """Per terminal per day D: payments in [D - w, D) and fraud share among those labelled by D."""
    t_ns, l_ns = _utc_ns(raw["tx_datetime"]), _utc_ns(raw["label_available_at"])
    day0 = t_ns.min() // _DAY_NS * _DAY_NS  # midnight (UTC) of the first payment
    tday = (t_ns - day0) // _DAY_NS
    kday = -((day0 - l_ns) // _DAY_NS)  # first midnight D with label_available_at <= D (ceil)
    n_days = int(tday.max()) + 2  # D = 1 .. last payment day + 1 (index 0 is never emitted)
    terms, term = np.unique(raw["terminal_id"].to_numpy(np.int64), return_inverse=True)
    fraud = raw["is_fraud"].to_numpy(np.int64) == 1
    shape = (terms.size, n_days)

    cols: dict[str, np.ndarray] = {}
    for w in WINDOWS_DAYS:
        last = np.minimum(tday + w, n_days - 1)  # a payment on day d counts for D in d+1 .. d+w
        cols[f"terminal_nb_tx_{w}d"] = _window_counts(term, tday + 1, last, shape)
        known_from = np.maximum(tday + 1, kday)  # ... and its label only from D >= label day
        labelled = _window_counts(term, known_from, last, shape)
        frauds = _window_counts(term[fraud], known_from[fraud], last[fraud], shape)
        cols[f"terminal_risk_{w}d"] = np.divide(frauds, labelled, out=np.zeros(shape), where=labelled > 0)

    active = cols["terminal_nb_tx_30d"] > 0
    active[:, 0] = False  # D = day0 has no history; the first row is the day after the first payment
    t_idx, d_idx = np.nonzero(active)
    out = pd.DataFrame({
        "terminal_id": terms[t_idx].astype(np.int64),
        "event_timestamp": pd.to_datetime(day0 + d_idx.astype(np.int64) * _DAY_NS, utc=True),
    })
    for name in TERMINAL_FEATURES:
        out[name] = cols[name][t_idx, d_idx]
    return out.sort_values(["event_timestamp", "terminal_id"], ignore_index=True)


def build_feature_tables(raw: pd.DataFrame, cfg: TenantConfig,
                         tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The two feature views of tenant.yaml, each: join key, event_timestamp, declared features.
    `tables` (auxiliary tables) is empty: the fraud tenant declares none."""
    out = {"customer_velocity": customer_velocity(raw), "terminal_risk": terminal_risk(raw)}
    for view, df in out.items():
        declared = _declared(cfg, view)
        produced = [c for c in df.columns if c not in ("customer_id", "terminal_id", "event_timestamp")]
        # The tenant file is the source of truth: fail loudly if code and file drift apart.
        assert produced == list(declared), f"{view}: code produces {produced}, tenant declares {list(declared)}"
        out[view] = df.astype(declared)
    return out


def request_features(df: pd.DataFrame | dict[str, np.ndarray]) -> pd.DataFrame | dict[str, np.ndarray]:
    """Request-time features. Pure numpy on the columns; training uses the same function, so both
    sides cannot drift. Takes a DataFrame (training) or, online, a dict of column arrays with
    datetimes as UTC datetime64[ns] (`columnar` below): the online predictor then builds no
    DataFrame at all, which was most of a one-row request's cost."""
    columns = not isinstance(df, pd.DataFrame)
    ts = df["tx_datetime"]
    ns = np.asarray(ts, dtype="datetime64[ns]").view(np.int64) if columns else _utc_ns(ts)
    hour = (ns // 3_600_000_000_000) % 24
    weekday = (ns // _DAY_NS + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    amount = np.asarray(df["amount"], dtype=np.float64)
    spec = velocity.CUSTOMER
    state = [df[c] if columns else list(df[c]) for c in spec.state]
    counted = velocity.windows(spec, *state, ns)  # windows at this event's time
    avg = counted["customer_avg_amount_30d"]
    usable = np.isfinite(avg) & (avg != 0)  # no history -> neutral ratio 1.0
    derived = {
        **counted,
        "tx_hour": hour.astype(np.int64),
        "tx_is_weekend": (weekday >= 5).astype(np.int64),
        "tx_is_night": ((hour < 6) | (hour >= 22)).astype(np.int64),
        "amount_to_avg_30d": np.divide(amount, avg, out=np.ones_like(amount), where=usable),
    }
    if columns:
        return {**df, **derived}
    # One frame construction instead of df.copy() plus four column inserts: ~3x faster on a
    # single row (each insert costs ~0.15 ms).
    out = pd.DataFrame({**{c: s.array for c, s in df.items() if c not in derived}, **derived}, copy=True)
    out.index = df.index
    return out


request_features.columnar = True  # the predictor may pass columns (mlplatform.serving.predictor)
