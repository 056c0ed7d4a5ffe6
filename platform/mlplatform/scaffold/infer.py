"""Read a labelled table and infer a tenant's plan: names, label mapping, timestamp, entity, time split.

What the copy changes, and why, is listed in table.py (and in the README each scaffold writes).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from mlplatform.config import NAME_RE
from mlplatform.scaffold.columns import fresh_name, infer_columns, native, normalise_dtypes, safe_names
from mlplatform.scaffold.errors import ScaffoldError
from mlplatform.scaffold.plan import Plan

VALIDATION_FRACTIONS = (0.2, 0.3, 0.4, 0.5)  # newest share of rows held out, first that has both classes
SYNTHETIC_EPOCH = pd.Timestamp("2024-01-01T00:00:00Z")
POSITIVE_WORDS = {"1", "true", "t", "yes", "y", "positive", "pos"}

TIME_UNITS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}


def _missing(kind: str, col: str, df: pd.DataFrame, table: Path) -> ScaffoldError:
    return ScaffoldError(f"{kind} column {col!r} is not in {table}; available columns: {', '.join(map(str, df.columns))}")


def _map_label(s: pd.Series, col: str) -> tuple[pd.Series, dict[str, int]]:
    """The label as int 0/1 and the mapping applied (original value, as text -> 0/1)."""
    values = pd.unique(s.dropna())
    if len(values) != 2:
        shown = ", ".join(repr(native(v)) for v in values[:10]) + (" ..." if len(values) > 10 else "")
        raise ScaffoldError(
            f"label column {col!r} must be binary (0/1, bool, or exactly two distinct values); "
            f"it holds {len(values)} distinct value(s): {shown}"
        )
    if pd.api.types.is_bool_dtype(s.dtype) or all(isinstance(v, (bool, np.bool_)) for v in values):
        return s.map({True: 1, False: 0}).astype("int64"), {"False": 0, "True": 1}
    if pd.api.types.is_numeric_dtype(s.dtype):
        lo, hi = sorted(float(v) for v in values)
        mapping = {_fmt_num(lo): 0, _fmt_num(hi): 1}
        return (s.astype(float) == hi).astype("int64"), mapping
    # two distinct non-numeric values: a known "positive" word wins, else the rarer value is the positive
    text = s.map(str)
    a, b = sorted(str(v) for v in values)
    words = {v: v.strip().lower() in POSITIVE_WORDS for v in (a, b)}
    if words[a] != words[b]:
        positive = a if words[a] else b
    else:
        counts = text.value_counts()
        positive = b if counts[b] <= counts[a] else a
    negative = b if positive == a else a
    return (text == positive).astype("int64"), {negative: 0, positive: 1}


def _parse_times(ts: pd.Series, col: str) -> pd.Series:
    """A timestamp column as UTC datetimes (naive values are taken as UTC)."""
    if pd.api.types.is_datetime64_any_dtype(ts.dtype):
        return pd.to_datetime(ts, utc=True)
    try:
        return pd.to_datetime(ts, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        pass
    try:
        return pd.to_datetime(ts, utc=True)
    except (ValueError, TypeError) as err:
        raise ScaffoldError(f"timestamp column {col!r} cannot be read as date/times: {err}") from None


def _fmt_num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)


def _choose_split(ts: pd.Series, y: pd.Series) -> tuple[float, float, tuple[int, int]]:
    """validation_days holding out the newest rows, so that train and validation both hold both classes.

    Uses the same rule as mlplatform.training.dataset.time_split: validation = ts >= end - days.
    """
    end = ts.max()
    distinct = np.sort(ts.unique())
    if len(distinct) < 2:
        raise ScaffoldError("every row has the same timestamp: a time-based train/validation split is impossible")
    for frac in VALIDATION_FRACTIONS:
        start = ts.quantile(1 - frac)
        if start >= end:  # many rows at the last instant: start at the previous distinct timestamp
            start = pd.Timestamp(distinct[-2])
        days = math.floor((end - start).total_seconds() / 86400 * 1e6) / 1e6  # never later than `start`
        if days <= 0:
            days = 1e-6
        valid = ts >= end - pd.Timedelta(days=days)
        train = ~valid
        if y[valid].nunique() == 2 and y[train].nunique() == 2:
            return days, frac, (int(train.sum()), int(valid.sum()))
    raise ScaffoldError(
        "no time split leaves both classes in training and in validation (tried holding out the newest "
        f"{', '.join(f'{f:.0%}' for f in VALIDATION_FRACTIONS)} of rows); the table may be sorted by its label "
        "(shuffle it, or pass --timestamp) or have too few positives"
    )


def _time_options(timestamp: str | None, unit: str | None, origin: str | None) -> pd.Timestamp | None:
    """Check --timestamp-unit / --timestamp-origin; the origin as a UTC instant (None without a unit)."""
    if unit is None:
        if origin is not None:
            raise ScaffoldError("--timestamp-origin needs --timestamp-unit (s, ms, us or ns)")
        return None
    if timestamp is None:
        raise ScaffoldError("--timestamp-unit needs --timestamp COL (the numeric time column)")
    if unit not in TIME_UNITS:
        raise ScaffoldError(f"--timestamp-unit must be one of {', '.join(TIME_UNITS)}, not {unit!r}")
    try:
        start = pd.Timestamp(origin or "1970-01-01T00:00:00Z")
    except ValueError:
        raise ScaffoldError(f"--timestamp-origin {origin!r} is not a date/time (e.g. 2024-01-01T00:00:00Z)") from None
    return start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")


def _read(table: Path) -> pd.DataFrame:
    from mlplatform.data.ingest import read_table

    if not table.exists():
        raise ScaffoldError(f"{table}: no such table")
    try:
        return read_table(table)
    except (ValueError, OSError) as err:  # pandas and pyarrow parse errors are ValueErrors
        raise ScaffoldError(f"{table}: cannot be read as a table: {err}") from None


def infer_plan(name: str, table: Path, label: str, timestamp: str | None, entity: str | None,
               timestamp_unit: str | None = None, timestamp_origin: str | None = None) -> Plan:
    """Read `table` and infer everything the tenant needs; raises ScaffoldError before anything is written."""
    if not re.match(NAME_RE, name):
        raise ScaffoldError(f"tenant name {name!r} must match {NAME_RE} (lower case, digits, '-'; 3-32 characters)")
    origin = _time_options(timestamp, timestamp_unit, timestamp_origin)
    table = Path(table)
    df = _read(table)
    if df.empty:
        raise ScaffoldError(f"{table}: the table holds no rows")
    for kind, col in (("label", label), ("timestamp", timestamp), ("entity", entity)):
        if col is not None and col not in df.columns:
            raise _missing(kind, col, df, table)
    given = [c for c in (label, timestamp, entity) if c is not None]
    if len(set(given)) != len(given):
        raise ScaffoldError(f"label, timestamp and entity must be different columns (got {given})")

    renamed = safe_names(list(df.columns))
    df = df.rename(columns=renamed)
    label, timestamp, entity = renamed[label], timestamp and renamed[timestamp], entity and renamed[entity]
    renamed = {str(k): v for k, v in renamed.items() if str(k) != v}
    taken = set(df.columns)

    plan = Plan(name=name, source=table, df=df, label=label, timestamp=timestamp or "", entity=entity or "",
                 synthetic_timestamp=timestamp is None, generated_entity=entity is None, label_mapping={},
                 renamed=renamed, rows_read=len(df), timestamp_unit=timestamp_unit, timestamp_origin=origin)

    # generated columns first, so they number the rows as the file holds them
    if entity is None:
        plan.entity = fresh_name("row_id", taken)
        taken.add(plan.entity)
        df[plan.entity] = np.arange(len(df), dtype="int64")
    if timestamp is None:
        plan.timestamp = fresh_name("event_time", taken)
        taken.add(plan.timestamp)
        df[plan.timestamp] = SYNTHETIC_EPOCH + pd.to_timedelta(np.arange(len(df)), unit="s")
    else:
        ts = df[plan.timestamp]
        numeric = pd.api.types.is_numeric_dtype(ts.dtype) and not pd.api.types.is_bool_dtype(ts.dtype)
        if timestamp_unit is None and (numeric or pd.api.types.is_bool_dtype(ts.dtype)):
            raise ScaffoldError(
                f"timestamp column {timestamp!r} is numeric ({ts.dtype}); say what its numbers count with "
                "--timestamp-unit s|ms|us|ns (and --timestamp-origin ISO_TIME when they count from another instant "
                "than the Unix epoch, e.g. seconds since the first row), store it as a date/time, or leave "
                "--timestamp out for a synthetic one"
            )
        if timestamp_unit is None:
            df[plan.timestamp] = _parse_times(ts, timestamp)
        elif not numeric:
            raise ScaffoldError(f"--timestamp-unit is for a numeric time column; {timestamp!r} holds {ts.dtype} values")
        else:  # the copy keeps the numbers: ingest converts them (data.timestamp_unit), as plan.times() does
            try:
                plan.times()
            except ValueError as err:
                raise ScaffoldError(f"timestamp column {timestamp!r}: {err}") from None

    # rows that cannot be trained on
    for col, why in ((plan.label, "missing label"), (plan.timestamp, "missing timestamp")):
        bad = df[col].isna()
        if bad.any():
            plan.dropped_rows[why] = int(bad.sum())
            df = df[~bad]
    df = df.reset_index(drop=True)
    if df.empty:
        raise ScaffoldError(f"{table}: no row has both a label and a timestamp")

    df[plan.label], plan.label_mapping = _map_label(df[plan.label], plan.label)

    # the entity: a join key Feast can use (int or str), never missing
    key = df[plan.entity]
    if key.isna().any():
        raise ScaffoldError(f"entity column {entity!r} has missing values; an entity key must be set on every row")
    if pd.api.types.is_float_dtype(key.dtype) and (key == key.round()).all():
        df[plan.entity] = key.astype("int64")
    elif pd.api.types.is_bool_dtype(key.dtype) or pd.api.types.is_float_dtype(key.dtype):
        raise ScaffoldError(f"entity column {entity!r} must hold integers or strings, not {key.dtype}")
    elif not pd.api.types.is_integer_dtype(key.dtype):
        df[plan.entity] = key.map(str)
    plan.duplicate_keys = int(df.duplicated([plan.entity, plan.timestamp]).sum())

    df = normalise_dtypes(df, {plan.label, plan.timestamp, plan.entity}, plan.converted)
    if pd.api.types.is_integer_dtype(df[plan.entity].dtype):
        df[plan.entity] = df[plan.entity].astype("int64")

    plan.df = df
    infer_columns(plan, taken)
    if not plan.features:
        raise ScaffoldError(
            f"{table}: no column is usable as a model input (numbers, booleans or low-cardinality strings "
            f"besides the label, timestamp and entity); excluded: {plan.excluded}"
        )
    plan.validation_days, plan.validation_fraction, plan.split_rows = _choose_split(plan.times(), plan.df[plan.label])
    return plan
