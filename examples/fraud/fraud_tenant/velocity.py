"""Card velocity, declared once and executed twice (issue 14).

Stored state: per card, its payments bucketed by UTC hour (hour, count, amount sum) over the
longest window, one state row per payment (the card's buckets right after it). Feast serves that
state: offline joined point in time, online the latest row.

Windows: `windows(...)` turns a state and the time of the event being scored into each window's
count and mean amount. The same function runs offline (request transform over the joined state,
training) and online (the predictor's request transform, from the request's timestamp), so a
window is counted back from the scored event in both, not from the card's last payment.

A window of w days is the last 24*w hourly buckets ending with the event's hour (the current hour
counts the payments before the event; the oldest bucket counts whole). Hour granularity is the
definition, on both sides alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

HOUR_NS = 3_600 * 10**9


@dataclass(frozen=True)
class Velocity:
    """Windows, aggregations (count, mean) and key of one velocity family."""

    key: str  # entity join key
    value: str  # the summed request field
    prefix: str
    windows_days: tuple[int, ...]

    @property
    def state(self) -> list[str]:  # the stored (feature view) columns
        return [f"{self.prefix}_bucket_hour", f"{self.prefix}_bucket_count", f"{self.prefix}_bucket_{self.value}"]

    @property
    def features(self) -> list[str]:  # the computed windows (request-derived features)
        return ([f"{self.prefix}_nb_tx_{w}d" for w in self.windows_days]
                + [f"{self.prefix}_avg_{self.value}_{w}d" for w in self.windows_days])

    @property
    def horizon_hours(self) -> int:
        return 24 * max(self.windows_days)


CUSTOMER = Velocity(key="customer_id", value="amount", prefix="customer", windows_days=(1, 7, 30))
STATE_TYPES = [pa.list_(pa.int64()), pa.list_(pa.int64()), pa.list_(pa.float64())]


def _present(v) -> bool:
    """State is there: not None, NaN or pd.NA (what a join or an Arrow-backed column gives for none)."""
    return v is not None and v is not pd.NA and not (isinstance(v, float) and np.isnan(v))


def windows(spec: Velocity, hours: Sequence, counts: Sequence, sums: Sequence, event_ns: np.ndarray) -> dict[str, np.ndarray]:
    """Per row: state lists (None where the store has no state: a card never seen, or past the
    TTL) and the event time (ns since epoch, UTC) -> {window feature: float64 values}, NaN without
    state (count) or without payments in the window (mean)."""
    n = len(event_ns)
    has = np.fromiter((_present(h) for h in hours), dtype=bool, count=n)
    lens = np.fromiter((len(h) if ok else 0 for h, ok in zip(hours, has)), dtype=np.int64, count=n)
    if lens.sum():
        rows = np.repeat(np.arange(n), lens)
        flat = [(np.asarray(h, np.int64), np.asarray(c, np.int64), np.asarray(s, np.float64))
                for h, c, s, ok in zip(hours, counts, sums, has) if ok]
        hour = np.concatenate([f[0] for f in flat])
        count = np.concatenate([f[1] for f in flat]).astype(np.float64)
        total = np.concatenate([f[2] for f in flat])
    else:
        rows = hour = np.empty(0, np.int64)
        count = total = np.empty(0, np.float64)
    event_hour = np.asarray(event_ns, np.int64) // HOUR_NS
    age = event_hour[rows] - hour  # 0 = the event's own hour; state never holds later hours
    out: dict[str, np.ndarray] = {}
    means = {}
    for w in spec.windows_days:
        inside = age < 24 * w
        nb = np.bincount(rows[inside], count[inside], minlength=n)
        amount = np.bincount(rows[inside], total[inside], minlength=n)
        out[f"{spec.prefix}_nb_tx_{w}d"] = np.where(has, nb, np.nan)
        means[f"{spec.prefix}_avg_{spec.value}_{w}d"] = np.divide(amount, nb, out=np.full(n, np.nan), where=nb > 0)
    return {**out, **means}


def state_table(spec: Velocity, raw: pd.DataFrame, timestamp: str) -> pd.DataFrame:
    """One state row per payment time of each card: its hourly buckets (within the horizon) after
    every payment at or before that instant (payments at one instant share one row: Feast cannot
    tell them apart). Vectorised: buckets per (card, hour), then each row's bucket range."""
    ns = pd.to_datetime(raw[timestamp], utc=True).to_numpy("datetime64[ns]").view(np.int64)
    df = pd.DataFrame({"k": raw[spec.key].to_numpy(np.int64), "ns": ns,
                       "v": raw[spec.value].to_numpy(np.float64)}).sort_values(["k", "ns"], kind="stable")
    # one row per (card, instant): what arrived at that instant
    inst = df.groupby(["k", "ns"], sort=False).agg(c=("v", "size"), s=("v", "sum")).reset_index()
    inst["h"] = inst["ns"] // HOUR_NS
    # running totals within (card, hour): the partial bucket of the row's own hour
    grp = inst.groupby(["k", "h"], sort=False)
    inst["pc"], inst["ps"] = grp["c"].cumsum(), grp["s"].cumsum()
    buckets = grp.agg(c=("c", "sum"), s=("s", "sum")).reset_index()  # whole hours, sorted (k, h)
    b_k, b_h = buckets["k"].to_numpy(), buckets["h"].to_numpy()
    i_k, i_h = inst["k"].to_numpy(), inst["h"].to_numpy()
    # per row: whole buckets of the same card with h in (h_row - horizon, h_row), then the partial one
    key = np.stack([b_k, b_h], axis=1)
    lo = _searchsorted_pairs(key, i_k, i_h - spec.horizon_hours + 1)
    mid = _searchsorted_pairs(key, i_k, i_h)
    lens = mid - lo + 1
    offsets = np.concatenate([[0], np.cumsum(lens)])
    idx = np.repeat(lo - offsets[:-1], lens) + np.arange(offsets[-1])  # bucket index per list slot
    last = offsets[1:] - 1  # the partial bucket's slot
    is_last = np.zeros(offsets[-1], bool)
    is_last[last] = True
    idx = np.where(is_last, 0, idx)
    hours = np.where(is_last, np.repeat(i_h, lens), b_h[idx])
    counts = np.where(is_last, np.repeat(inst["pc"].to_numpy(), lens), buckets["c"].to_numpy()[idx])
    sums = np.where(is_last, np.repeat(inst["ps"].to_numpy(), lens), buckets["s"].to_numpy()[idx])
    off = pa.array(offsets, pa.int32())
    out = pd.DataFrame({spec.key: i_k, "event_timestamp": pd.to_datetime(inst["ns"].to_numpy(), utc=True)})
    for name, values, typ in zip(spec.state, (hours, counts, sums), STATE_TYPES):
        arr = pa.ListArray.from_arrays(off, pa.array(values, typ.value_type))
        out[name] = pd.arrays.ArrowExtensionArray(arr)
    return out


def _searchsorted_pairs(key: np.ndarray, k: np.ndarray, h: np.ndarray) -> np.ndarray:
    """First index of `key` (rows (k, h), sorted) not less than (k, h), per query pair."""
    packed = key[:, 0].astype(np.int64) * (1 << 32) + key[:, 1]
    return np.searchsorted(packed, k.astype(np.int64) * (1 << 32) + h, side="left")
