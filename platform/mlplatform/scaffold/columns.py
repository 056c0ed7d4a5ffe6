"""The columns of a scaffolded table: identifier names, the dtypes validation knows, and per column its
checks (type, nullable, bounds, values) and whether it is a model input (string categories get a code column).

Bounds: numeric min/max are the observed range widened by BOUNDS_MARGIN of the range on each side
(never below 0 for a column that is never negative), so a fresh batch from the same source passes.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from mlplatform.config import slug
from mlplatform.scaffold.plan import Plan

BOUNDS_MARGIN = 0.10  # numeric bounds: observed range widened by 10% of the range on each side
MAX_CATEGORIES = 20  # string/int columns with at most this many distinct values get `values`

IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ID_NAME_RE = re.compile(r"(^id$|_id$|[a-z0-9]Id$|[a-z0-9]ID$)", re.IGNORECASE)
DATE_LIKE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}")
# names the platform uses next to the tenant's columns (Feast's timestamp column, its created column)
RESERVED = {"event_timestamp", "created", "created_timestamp"}


def fresh_name(base: str, taken: set[str]) -> str:
    """`base`, or `base_2`, `base_3`, ... : the first that is neither taken nor reserved."""
    name, i = base, 2
    while name in taken or name in RESERVED:
        name, i = f"{base}_{i}", i + 1
    return name


def safe_names(columns: list[str]) -> dict[str, str]:
    """Original column name -> a name usable by Feast, DuckDB, XGBoost and Python (identity when fine)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for col in columns:
        s = str(col)
        if not IDENT_RE.match(s) or s in RESERVED:
            s = slug(s) or "column"
            if s[0].isdigit():
                s = f"c_{s}"
        s = fresh_name(s, taken)
        out[col] = s
        taken.add(s)
    return out


def native(v: Any) -> Any:
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


def normalise_dtypes(df: pd.DataFrame, keep: set[str], plan_converted: dict[str, str]) -> pd.DataFrame:
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


def infer_columns(plan: Plan, taken: set[str]) -> None:
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
                code = fresh_name(f"{col}_code", taken | set(code_columns))
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


def _feature_role(plan: Plan, col: str, spec: dict[str, Any]) -> str | None:
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
