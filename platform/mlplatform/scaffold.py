"""Generic onboarding: scaffold a binary-classification tenant from any labelled CSV or parquet table.

`scaffold_tenant` (behind `mlplatform tenant new NAME --from-table PATH --label COL`) writes

    <out_dir>/<name>/tenant.yaml           loadable by `load_tenant`; data.source "table"
    <out_dir>/<name>/data/<table>.parquet  the prepared copy of the table (the tenant is self-contained)
    <out_dir>/<name>/README.md             what was inferred, and what to review

so that the pipeline steps (ingest, validate, features, train, register) run with no code written:
the features are the table's own columns (the platform's passthrough builder), the trainer is the
platform's XGBoost trainer.

What the copy changes (all of it recorded in the README):
- column names that are not identifiers (or clash with names the platform uses) are renamed;
- the label is mapped to 0/1 (bool, 0/1 numbers, or any two distinct values);
- rows without a label or a timestamp are dropped (reported: the CLI prints it, the README says it);
- a numeric `--timestamp` column stays numbers; `--timestamp-unit` (and `--timestamp-origin`) go into
  the tenant file as data.timestamp_unit / timestamp_origin, and ingest converts them to date/times;
- without `--timestamp`: an `event_time` column, one row per second from SYNTHETIC_EPOCH, in file order;
- without `--entity`: a `row_id` column, the row's position in the file (a stable integer per row);
- low-cardinality string columns get an integer-coded copy `<col>_code` used as a model input
  (code = position in the sorted list of values, -1 for a missing value); high-cardinality strings,
  datetimes and id-like integer columns are kept in the table but are not model inputs.
It is always written as parquet, so the types inferred here are the types ingest and validation see
(numeric time: as converted by ingest).

Bounds: numeric min/max are the observed range widened by BOUNDS_MARGIN of the range on each side
(never below 0 for a column that is never negative), so a fresh batch from the same source passes.
"""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mlplatform.config import NAME_RE, TenantConfigError, load_tenant, slug
from mlplatform.errors import UserError

BOUNDS_MARGIN = 0.10  # numeric bounds: observed range widened by 10% of the range on each side
MAX_CATEGORIES = 20  # string/int columns with at most this many distinct values get `values`
MIN_ROWS_FRACTION = 0.5  # expectations.min_rows: half the rows the table holds today
LABEL_RATE_FACTOR = 2.0  # expectations.label_rate: observed rate / 2 .. observed rate * 2
VALIDATION_FRACTIONS = (0.2, 0.3, 0.4, 0.5)  # newest share of rows held out, first that has both classes
SYNTHETIC_EPOCH = pd.Timestamp("2024-01-01T00:00:00Z")
MAX_DAILY_PARTITIONS = 400  # more distinct days than this: ingest writes one file instead
MIN_ROC_AUC = 0.55
MAX_REGRESSION = {"pr_auc": 0.05, "roc_auc": 0.02}
POSITIVE_WORDS = {"1", "true", "t", "yes", "y", "positive", "pos"}

TIME_UNITS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}

IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ID_NAME_RE = re.compile(r"(^id$|_id$|[a-z0-9]Id$|[a-z0-9]ID$)", re.IGNORECASE)
DATE_LIKE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}")
# names the platform uses next to the tenant's columns (Feast's timestamp column, its created column)
RESERVED = {"event_timestamp", "created", "created_timestamp"}


class ScaffoldError(ValueError, UserError):
    """The table and options cannot make a tenant; the message says why (nothing was written)."""


@dataclass
class _Plan:
    """Everything inferred from the table, before anything is written."""

    name: str
    source: Path
    df: pd.DataFrame
    label: str
    timestamp: str
    entity: str
    synthetic_timestamp: bool
    generated_entity: bool
    label_mapping: dict[str, int]
    rows_read: int = 0
    timestamp_unit: str | None = None  # the timestamp column holds numbers of this unit ...
    timestamp_origin: pd.Timestamp | None = None  # ... counted from this instant (ingest converts them)
    renamed: dict[str, str] = field(default_factory=dict)
    dropped_rows: dict[str, int] = field(default_factory=dict)
    codes: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # code column -> (source, values)
    converted: dict[str, str] = field(default_factory=dict)  # column -> note on a dtype change
    columns: list[dict[str, Any]] = field(default_factory=list)
    features: list[dict[str, Any]] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)  # column -> why it is not a model input
    validation_days: float = 0.0
    validation_fraction: float = 0.0
    split_rows: tuple[int, int] = (0, 0)
    duplicate_keys: int = 0

    def times(self) -> pd.Series:
        """The timestamp column as UTC date/times; numbers converted as ingest converts them."""
        from mlplatform.data.ingest import numeric_times

        ts = self.df[self.timestamp]
        return ts if self.timestamp_unit is None else numeric_times(ts, self.timestamp_unit, self.timestamp_origin)


# --- small helpers --------------------------------------------------------------------------------


def _fresh(base: str, taken: set[str]) -> str:
    name, i = base, 2
    while name in taken or name in RESERVED:
        name, i = f"{base}_{i}", i + 1
    return name


def _safe_names(columns: list[str]) -> dict[str, str]:
    """Original column name -> a name usable by Feast, DuckDB, XGBoost and Python (identity when fine)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for col in columns:
        s = str(col)
        if not IDENT_RE.match(s) or s in RESERVED:
            s = slug(s) or "column"
            if s[0].isdigit():
                s = f"c_{s}"
        s = _fresh(s, taken)
        out[col] = s
        taken.add(s)
    return out


class _Flow(dict):
    """A mapping written on one line in the tenant file (columns, features, entities)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Flow, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True))


def _native(v: Any) -> Any:
    """numpy scalars -> Python scalars (yaml.safe_dump knows only the latter)."""
    if isinstance(v, np.generic):
        return v.item()
    return v


def _round_out(lo: float, hi: float, is_int: bool, nonneg: bool) -> tuple[float | int, float | int]:
    """The observed range widened by BOUNDS_MARGIN, rounded outwards to a readable step."""
    span = hi - lo
    pad = span * BOUNDS_MARGIN if span > 0 else max(abs(hi) * BOUNDS_MARGIN, 1.0)
    new_lo, new_hi = lo - pad, hi + pad
    if nonneg:
        new_lo = max(new_lo, 0.0)
    if is_int:
        return int(math.floor(new_lo)), int(math.ceil(new_hi))
    exp = math.floor(math.log10(pad))
    step = 10.0**exp
    digits = max(0, -exp)
    return round(math.floor(new_lo / step) * step, digits), round(math.ceil(new_hi / step) * step, digits)


def _missing(kind: str, col: str, df: pd.DataFrame, table: Path) -> ScaffoldError:
    return ScaffoldError(f"{kind} column {col!r} is not in {table}; available columns: {', '.join(map(str, df.columns))}")


# --- the steps of inference -------------------------------------------------------------------------


def _normalise_dtypes(df: pd.DataFrame, keep: set[str], plan_converted: dict[str, str]) -> pd.DataFrame:
    """Bring each column to one of the dtypes validation knows: int64, float64, bool, object str, datetime.

    `keep` names columns handled elsewhere (label, timestamp).
    """
    for col in df.columns:
        if col in keep:
            continue
        s = df[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            df[col] = s.astype(object).where(s.notna(), None)
            df[col] = df[col].map(lambda v: v if v is None else str(v))
            plan_converted[col] = "categorical dtype stored as strings"
        elif pd.api.types.is_bool_dtype(s.dtype):
            if s.isna().any():  # pandas "boolean" with nulls: 1.0 / 0.0 / NaN
                df[col] = s.astype("float64")
                plan_converted[col] = "bool with missing values stored as float (1.0/0.0/NaN)"
            else:
                df[col] = s.astype(bool)
        elif pd.api.types.is_integer_dtype(s.dtype):
            if s.isna().any():
                df[col] = s.astype("float64")
                plan_converted[col] = "int with missing values stored as float"
            else:
                df[col] = s.astype("int64")
        elif pd.api.types.is_float_dtype(s.dtype):
            df[col] = s.astype("float64")
        elif pd.api.types.is_datetime64_any_dtype(s.dtype):
            df[col] = pd.to_datetime(s, utc=True)
        elif pd.api.types.is_timedelta64_dtype(s.dtype):
            df[col] = s.dt.total_seconds()
            plan_converted[col] = "duration stored as float seconds"
        else:  # object / string: strings, bools with gaps (CSV), date-like strings, anything else
            nonnull = s.dropna()
            if len(nonnull) and nonnull.map(lambda v: isinstance(v, (bool, np.bool_))).all():
                df[col] = s.map(lambda v: float(v) if isinstance(v, (bool, np.bool_)) else np.nan)
                plan_converted[col] = "bool with missing values stored as float (1.0/0.0/NaN)"
                continue
            as_str = s.map(lambda v: v if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
            nonnull = as_str.dropna()
            if len(nonnull) and nonnull.map(lambda v: bool(DATE_LIKE_RE.match(v))).all():
                try:
                    df[col] = pd.to_datetime(as_str, utc=True, format="ISO8601")
                    plan_converted[col] = "ISO-8601 strings parsed as datetimes"
                    continue
                except (ValueError, TypeError):
                    pass
            df[col] = as_str.astype(object).where(as_str.notna(), None)
    return df


def _map_label(s: pd.Series, col: str) -> tuple[pd.Series, dict[str, int]]:
    """The label as int 0/1 and the mapping applied (original value, as text -> 0/1)."""
    values = pd.unique(s.dropna())
    if len(values) != 2:
        shown = ", ".join(repr(_native(v)) for v in values[:10]) + (" ..." if len(values) > 10 else "")
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


def _plan(name: str, table: Path, label: str, timestamp: str | None, entity: str | None,
          timestamp_unit: str | None = None, timestamp_origin: str | None = None) -> _Plan:
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

    renamed = _safe_names(list(df.columns))
    df = df.rename(columns=renamed)
    label, timestamp, entity = renamed[label], timestamp and renamed[timestamp], entity and renamed[entity]
    renamed = {str(k): v for k, v in renamed.items() if str(k) != v}
    taken = set(df.columns)

    plan = _Plan(name=name, source=table, df=df, label=label, timestamp=timestamp or "", entity=entity or "",
                 synthetic_timestamp=timestamp is None, generated_entity=entity is None, label_mapping={},
                 renamed=renamed, rows_read=len(df), timestamp_unit=timestamp_unit, timestamp_origin=origin)

    # generated columns first, so they number the rows as the file holds them
    if entity is None:
        plan.entity = _fresh("row_id", taken)
        taken.add(plan.entity)
        df[plan.entity] = np.arange(len(df), dtype="int64")
    if timestamp is None:
        plan.timestamp = _fresh("event_time", taken)
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

    df = _normalise_dtypes(df, {plan.label, plan.timestamp, plan.entity}, plan.converted)
    if pd.api.types.is_integer_dtype(df[plan.entity].dtype):
        df[plan.entity] = df[plan.entity].astype("int64")

    plan.df = df
    _infer_columns(plan, taken)
    if not plan.features:
        raise ScaffoldError(
            f"{table}: no column is usable as a model input (numbers, booleans or low-cardinality strings "
            f"besides the label, timestamp and entity); excluded: {plan.excluded}"
        )
    plan.validation_days, plan.validation_fraction, plan.split_rows = _choose_split(plan.times(), plan.df[plan.label])
    return plan


def _infer_columns(plan: _Plan, taken: set[str]) -> None:
    df, n = plan.df, len(plan.df)
    code_columns: dict[str, pd.Series] = {}
    for col in list(df.columns):
        s = df[col]
        nullable = bool(s.isna().any())
        spec: dict[str, Any] = {"name": col}
        if col == plan.timestamp:
            spec["type"] = "datetime"
        elif col == plan.label:
            spec |= {"type": "int", "values": [0, 1]}
        elif pd.api.types.is_bool_dtype(s.dtype):
            spec["type"] = "bool"
        elif pd.api.types.is_integer_dtype(s.dtype) or pd.api.types.is_float_dtype(s.dtype):
            is_int = pd.api.types.is_integer_dtype(s.dtype)
            spec["type"] = "int" if is_int else "float"
            finite = s[np.isfinite(s.astype(float))] if not is_int else s
            distinct = finite.nunique()
            if col == plan.entity:
                if plan.generated_entity:
                    spec |= {"unique": True, "min": 0}
            elif is_int and distinct <= MAX_CATEGORIES and 2 * distinct <= n:
                spec["values"] = sorted(int(v) for v in finite.unique())
            elif len(finite):
                lo, hi = float(finite.min()), float(finite.max())
                spec["min"], spec["max"] = _round_out(lo, hi, is_int, nonneg=lo >= 0)
        elif pd.api.types.is_datetime64_any_dtype(s.dtype):
            spec["type"] = "datetime"
        else:
            spec["type"] = "str"
            distinct = s.dropna().nunique()
            if col != plan.entity and 0 < distinct <= MAX_CATEGORIES and 2 * distinct <= n:
                values = sorted(str(v) for v in s.dropna().unique())
                spec["values"] = values
                code = _fresh(f"{col}_code", taken | set(code_columns))
                taken.add(code)
                lookup = {v: i for i, v in enumerate(values)}
                code_columns[code] = s.map(lambda v: lookup.get(v, -1) if v is not None else -1).astype("int64")
                plan.codes[code] = (col, values)
        if nullable:
            spec["nullable"] = True
        plan.columns.append(spec)

        role = _feature_role(plan, col, spec)
        if role is None:
            plan.features.append({"name": col, "dtype": _feature_dtype(spec["type"])})
        else:
            plan.excluded[col] = role

    for code, series in code_columns.items():
        df[code] = series
        source, values = plan.codes[code]
        codes = list(range(len(values))) + ([-1] if (series == -1).any() else [])
        plan.columns.append({"name": code, "type": "int", "values": sorted(codes)})
        plan.features.append({"name": code, "dtype": "int64",
                              "description": f"integer code of {source} (see README)"})


def _feature_role(plan: _Plan, col: str, spec: dict[str, Any]) -> str | None:
    """Why a column is not a model input, or None when it is one."""
    if col == plan.label:
        return "label"
    if col == plan.timestamp:
        return "timestamp" + (" (synthetic)" if plan.synthetic_timestamp else "")
    if col == plan.entity:
        return "entity key" + (" (generated)" if plan.generated_entity else "")
    if spec["type"] == "datetime":
        return "a date/time (derive numeric features from it in a feature builder)"
    if spec["type"] == "str":
        if "values" in spec:
            return "string category: the model uses its integer code column instead"
        return "high-cardinality string (more than %d distinct values)" % MAX_CATEGORIES
    if spec["type"] == "int" and ID_NAME_RE.search(col):
        return "looks like an identifier (its number carries no meaning)"
    return None


def _feature_dtype(col_type: str) -> str:
    return {"int": "int64", "float": "float64", "bool": "bool"}[col_type]


# --- writing ------------------------------------------------------------------------------------------


def _tenant_dict(plan: _Plan, data_path: str) -> dict[str, Any]:
    df, n = plan.df, len(plan.df)
    rate = float(df[plan.label].mean())
    ts = plan.times()
    span_days = (ts.max() - ts.min()).total_seconds() / 86400
    distinct_days = ts.dt.strftime("%Y-%m-%d").nunique()
    entity_name = re.sub(r"_id$", "", plan.entity) or plan.entity
    if entity_name in {plan.entity, ""} and plan.generated_entity:
        entity_name = "row"
    view = f"{slug(plan.name)}_features"
    columns = [_Flow({k: _native(v) for k, v in c.items()}) for c in plan.columns]
    for c in columns:
        if "values" in c:
            c["values"] = [_native(v) for v in c["values"]]
    return {
        "name": plan.name,
        "description": f"Scaffolded by `mlplatform tenant new` from {plan.source.name}: "
        f"predict {plan.label} ({n} rows, positive rate {rate:.4f}). Review README.md.",
        "task": "binary_classification",
        "data": {
            "source": "table",
            "path": data_path,
            "timestamp": plan.timestamp,
            **({"timestamp_unit": plan.timestamp_unit, "timestamp_origin": plan.timestamp_origin.isoformat()}
               if plan.timestamp_unit else {}),
            "label": plan.label,
            "partition_by_day": bool(distinct_days <= MAX_DAILY_PARTITIONS),
            "columns": columns,
            "expectations": {
                "min_rows": max(1, int(n * MIN_ROWS_FRACTION)),
                "label_rate": {
                    "min": math.floor(rate / LABEL_RATE_FACTOR * 1e4) / 1e4,
                    "max": min(1.0, math.ceil(rate * LABEL_RATE_FACTOR * 1e4) / 1e4),
                },
            },
        },
        "features": {
            "as_of": "at_event",
            "entities": [_Flow(name=entity_name, join_key=plan.entity,
                                description="one row of the table" if plan.generated_entity else "")],
            "feature_views": [{
                "name": view,
                "description": f"columns of {plan.source.name}, as of each row's time",
                "entities": [entity_name],
                "ttl_days": float(max(30, math.ceil(span_days) + 1)),
                "features": [_Flow({k: _native(v) for k, v in f.items()}) for f in plan.features],
            }],
        },
        "model": {
            "features": [f["name"] for f in plan.features],
            "params": {"max_depth": 4, "eta": 0.1, "subsample": 0.9, "colsample_bytree": 0.9},
            "num_boost_round": 200,
            "early_stopping_rounds": 20,
            "imbalance": "scale_pos_weight",
            "split": {"validation_days": plan.validation_days, "gap_days": 0},
            "ray": {"num_cpus": 2, "num_workers": 1},
        },
        "metrics": {
            "primary": "pr_auc",
            "gates": {"minimum": {"roc_auc": MIN_ROC_AUC}, "max_regression": dict(MAX_REGRESSION)},
        },
    }


def _notes(plan: _Plan) -> list[str]:
    """What the user must know before running the tenant: rows left out, and how time was read.
    The CLI prints these; the README carries them too."""
    notes = []
    why = {
        "missing label": f"have no label (`{plan.label}` is empty): they are dropped from the tenant's table, so "
                         "neither training nor validation sees them (nor the online store; scaffold the table "
                         "again once they are labelled)",
        "missing timestamp": f"have no timestamp (`{plan.timestamp}` is empty): they are dropped from the tenant's "
                             "table (a row without a time has no place in the time split)",
    }
    for reason, count in plan.dropped_rows.items():
        notes.append(f"{count} of {plan.rows_read} rows {why[reason]}.")
    if plan.timestamp_unit:
        ts = plan.times()
        notes.append(
            f"`{plan.timestamp}` holds numbers, read as {TIME_UNITS[plan.timestamp_unit]} since "
            f"{plan.timestamp_origin.isoformat()} (`data.timestamp_unit`, `data.timestamp_origin`): the table keeps "
            f"the numbers and ingest converts them, so the rows run from {ts.min().isoformat()} to "
            f"{ts.max().isoformat()} (UTC). If those dates are wrong, scaffold again with the right "
            "--timestamp-unit / --timestamp-origin."
        )
    return notes


def _readme(plan: _Plan, tenant: dict[str, Any], data_path: str) -> str:
    df, n = plan.df, len(plan.df)
    data, model = tenant["data"], tenant["model"]
    rate = float(df[plan.label].mean())
    lines = [
        f"# Tenant `{plan.name}` (scaffolded)",
        "",
        f"Generated by `mlplatform tenant new {plan.name} --from-table {plan.source}` "
        f"from `{plan.source.name}`: a binary classifier of `{plan.label}` over {n} rows "
        f"(positive rate {rate:.4f}). Nothing here is code: every choice below lives in `tenant.yaml`; "
        "review it, edit it, then run `mlplatform run " + plan.name + "`.",
        "",
        "## The data",
        f"- The table is copied, prepared, to `{data_path}` (parquet, so the types below are the types "
        "ingest and validation see). `data.path` is relative to this folder: the tenant is self-contained. "
        "To retrain on new data, replace that file with a table prepared the same way (the columns below, "
        "including the generated ones), or scaffold the new export again with `--overwrite` (which re-infers "
        "the checks from it).",
    ]
    if plan.renamed:
        renames = ", ".join(f"`{a}` -> `{b}`" for a, b in plan.renamed.items())
        lines.append(f"- Columns renamed to identifiers: {renames}.")
    lines += [f"- **{note}**" for note in _notes(plan)]
    for col, note in plan.converted.items():
        lines.append(f"- `{col}`: {note}.")
    mapping = ", ".join(f"`{k}` -> {v}" for k, v in plan.label_mapping.items())
    lines.append(f"- Label `{plan.label}` mapped to 0/1: {mapping}. Check that 1 is the class to detect; "
                 "if not, invert the label in the copied table and regenerate the expectations.")
    if plan.synthetic_timestamp:
        lines.append(
            f"- **No timestamp was given**: `{plan.timestamp}` is synthetic, one row per second from "
            f"{SYNTHETIC_EPOCH.isoformat()} in file order. The time split therefore holds out the *last rows of "
            "the file*; if the file is not in time order, that split is not a test of the future. "
            "Pass `--timestamp` when the table has event times."
        )
    elif not plan.timestamp_unit:  # numeric times: in the notes above
        lines.append(f"- Timestamp: `{plan.timestamp}` (stored as UTC).")
    if plan.generated_entity:
        lines.append(
            f"- **No entity was given**: `{plan.entity}` numbers the rows of the original file (0, 1, ...), "
            "so each row is its own entity and online features are fetched by that number."
        )
    else:
        lines.append(f"- Entity: `{plan.entity}`; each row's columns are its features as of the row's time.")
        if plan.duplicate_keys:
            lines.append(
                f"  **{plan.duplicate_keys} row(s) share an entity and a timestamp with another row**: the "
                "point-in-time join gives such rows one of the rows' features. Make timestamps finer or the key unique."
            )
    lines += ["", "## Columns", "", "| column | type | checks | model input |", "|---|---|---|---|"]
    feats = set(model["features"])
    for c in data["columns"]:
        checks = []
        if c.get("nullable"):
            checks.append("nullable")
        if c.get("unique"):
            checks.append("unique")
        if "min" in c and "max" in c:
            checks.append(f"{c['min']} .. {c['max']}")
        elif "min" in c:
            checks.append(f">= {c['min']}")
        if "values" in c:
            vals = c["values"]
            checks.append("values " + ", ".join(map(str, vals[:8])) + (" ..." if len(vals) > 8 else ""))
        role = "yes" if c["name"] in feats else f"no: {plan.excluded.get(c['name'], '')}"
        lines.append(f"| `{c['name']}` | {c['type']} | {'; '.join(checks) or '-'} | {role} |")
    lines += [
        "",
        "How the checks were inferred (the validation gate stops a run whose batch breaks one):",
        f"- numeric `min`/`max`: the observed range widened by {BOUNDS_MARGIN:.0%} of the range on each side "
        "(never below 0 when no value is negative), rounded outwards, so a fresh batch from the same source passes;",
        f"- `values`: string and integer columns with at most {MAX_CATEGORIES} distinct values (and at most half "
        "as many as rows). A new category (or a new integer) fails validation: widen the list, or drop `values` "
        "and set `min`/`max` for counts that may grow;",
        "- `nullable`: columns with missing values today; the others must stay complete;",
        f"- `expectations.min_rows` = {data['expectations']['min_rows']} ({MIN_ROWS_FRACTION:.0%} of today's rows); "
        f"`label_rate` = observed rate / {LABEL_RATE_FACTOR:g} .. x {LABEL_RATE_FACTOR:g}.",
    ]
    if plan.codes:
        lines += ["", "## Categories",
                  "String columns with few values are model inputs through an integer code column added to the "
                  "copied table (code = position in the sorted values, -1 when missing or unknown). A new batch "
                  "must carry the code column too (or write a `features.builder`)."]
        for code, (source, values) in plan.codes.items():
            lines.append(f"- `{code}` codes `{source}`: " + ", ".join(f"{i} = `{v}`" for i, v in enumerate(values)))
    regression = ", ".join(f"{v:g} {k}" for k, v in MAX_REGRESSION.items())
    lines += [
        "",
        "## Training and promotion",
        f"- Features: one entity, one feature view `{tenant['features']['feature_views'][0]['name']}` with the "
        f"{len(feats)} model inputs, joined point-in-time `as_of: at_event`.",
        f"- Time split: the newest {plan.validation_fraction:.0%} of rows are held out "
        f"(`model.split.validation_days: {model['split']['validation_days']}`; {plan.split_rows[0]} train, "
        f"{plan.split_rows[1]} validation rows today, both with positives).",
        f"- Trainer: the platform's XGBoost trainer (`{model['num_boost_round']}` rounds, early stopping), "
        "positives weighted by the class ratio.",
        f"- Gates: `roc_auc` >= {MIN_ROC_AUC} to be registered as champion/challenger; a challenger may not fall "
        f"below the champion by more than {regression}. These are deliberately modest: raise them, and add a "
        "`pr_auc` minimum, once you know what a useful model scores.",
        "",
        "## To review",
        "- the label mapping and the positive rate above;",
        "- the columns that are model inputs: drop any that are only known *after* the label (leakage);",
        "- `values` lists and numeric bounds: are they what any future batch will hold?",
        "- `metrics.costs` (cost of a missed positive vs. a false alarm) to get a cost-based decision threshold;",
        "- `serving`, `drift` and `cluster` settings use the platform defaults.",
        "",
    ]
    return "\n".join(lines)


def scaffold_tenant(name: str, table: Path, label: str, *, timestamp: str | None = None,
                    timestamp_unit: str | None = None, timestamp_origin: str | None = None,
                    entity: str | None = None, out_dir: Path, overwrite: bool = False,
                    on_note: Callable[[str], None] | None = None) -> Path:
    """Scaffold `<out_dir>/<name>/` (tenant.yaml, data copy, README.md) and return the tenant file's path.

    A numeric `timestamp` column needs `timestamp_unit` (s, ms, us, ns): its numbers count from
    `timestamp_origin` (ISO 8601; default the Unix epoch); the copy keeps them and ingest converts.
    `on_note` receives what the user must know before running it (rows dropped, how time was read).

    Raises ScaffoldError (a ValueError) for an invalid name or option, a table that cannot be read,
    unknown column names (listing the available ones), a label that is not binary, a table that
    cannot be split by time with both classes on each side, or an existing tenant folder when
    `overwrite` is false.
    """
    out_dir = Path(out_dir)
    target = out_dir / name
    if target.exists() and not overwrite:
        raise ScaffoldError(f"{target} already exists; pass overwrite=True (--overwrite) to replace it")
    plan = _plan(name, Path(table), label, timestamp, entity, timestamp_unit, timestamp_origin)

    stem = slug(plan.source.stem if plan.source.is_file() else plan.source.name) or "table"
    data_path = f"data/{stem}.parquet"
    tenant = _tenant_dict(plan, data_path)

    staging = out_dir / f".{name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "data").mkdir(parents=True)
    try:
        plan.df.to_parquet(staging / data_path, index=False)
        header = (f"# Tenant {name}: scaffolded by `mlplatform tenant new` from {plan.source.name}.\n"
                  "# Inferred, not designed: read README.md, then review and edit this file.\n")
        (staging / "tenant.yaml").write_text(
            header + yaml.dump(tenant, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=110)
        )
        (staging / "README.md").write_text(_readme(plan, tenant, data_path))
        try:
            load_tenant(staging / "tenant.yaml")
        except TenantConfigError as err:  # a scaffold that does not load is a bug here, not the user's
            raise RuntimeError(f"the scaffolded tenant file does not load: {err}") from err
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if on_note is not None:
        for note in _notes(plan):
            on_note(note)
    return target / "tenant.yaml"
