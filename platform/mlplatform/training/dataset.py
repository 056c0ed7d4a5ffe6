"""Which events a model may learn from, and the time-based train/validation split."""

from __future__ import annotations

import pandas as pd

from mlplatform.config import TenantConfig


def labelled_as_of(cfg: TenantConfig, raw: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Events whose label was known at `as_of`: a label that arrives later cannot be trained on."""
    ts = pd.to_datetime(raw[cfg.data.timestamp], utc=True)
    keep = ts <= as_of
    if cfg.data.label_available_at:
        keep &= pd.to_datetime(raw[cfg.data.label_available_at], utc=True) <= as_of
    return raw[keep].reset_index(drop=True)


def time_split(cfg: TenantConfig, df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on older events, validate on the newest `validation_days` (after an optional gap)."""
    ts = pd.to_datetime(df[cfg.data.timestamp], utc=True)
    end = ts.max()
    valid_start = end - pd.Timedelta(days=cfg.model.split.validation_days)
    train_end = valid_start - pd.Timedelta(days=cfg.model.split.gap_days)
    train, valid = df[ts < train_end], df[ts >= valid_start]
    if train.empty or valid.empty:
        raise ValueError(
            f"time split left an empty set (train {len(train)} rows, validation {len(valid)} rows) "
            f"for data from {ts.min()} to {end}; adjust model.split"
        )
    return train.reset_index(drop=True), valid.reset_index(drop=True)
