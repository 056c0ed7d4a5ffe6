"""Feedback of ranking tenants: what users did with the result lists the predictor logged.

    <home>/tenants/<name>/feedback/part-*.parquet        (any number of files, any time later)

One row per shown result (clicked or not), or at least one row per result list that got
feedback; a list with no row at all is "awaiting feedback" and is not counted by the quality job,
so report the shown-but-not-clicked results too (clicked = 0), or a list nobody clicked is never
seen. Columns:

    request_id  string     the id the predictor logged for the list: the `X-Request-ID` header (the
                           embedded nginx sets one and returns it in the response), else the V2
                           request id, else the id the V1 response carries in `request_id`
    row         int >= 0   optional (default 0): the query's index in a batched request
    item_id     int | str  the item shown (the tenant's item ids)
    position    int >= 1   where it was shown (1 = top); must match the logged position
    clicked     0/1        (booleans are accepted)
    at          datetime   when it happened (naive = UTC); rows later than the job's `as_of` wait

`validate_feedback` checks a table and says exactly what is wrong (`FeedbackError`, a ValueError);
`write_feedback` validates before writing (atomic: temporary name, then rename), and
`read_feedback` validates every file it reads, naming the file. The join with the prediction log
and the metrics are in mlplatform.monitoring.quality.

Where the prediction log is a database (MLPLATFORM_PREDICTION_LOG: a cluster, the services profile),
feedback is the table `feedback_<slug>` beside it, with the same columns, in the tenant's own schema
and written as the tenant's role (docs/security.md): the search frontend that shows the lists
appends to it (or calls `write_feedback` with the same settings), and the quality CronJob reads it,
so no pod's disk holds it. Rows are validated when read, as files are.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from mlplatform.errors import UserError
from mlplatform.workspace import Workspace

REQUIRED = ("request_id", "item_id", "position", "clicked", "at")
OPTIONAL = ("row",)
COLUMNS = ["request_id", "row", "item_id", "position", "clicked", "at"]


class FeedbackError(ValueError, UserError):
    """Feedback that cannot be used; the message names the file or table and the column."""


def feedback_dir(ws: Workspace, tenant: str) -> Path:
    return ws.tenant(tenant) / "feedback"


def _examples(values: pd.Series, n: int = 5) -> list:
    return [v.item() if isinstance(v, np.generic) else v for v in pd.unique(values)[:n]]


def _integers(df: pd.DataFrame, col: str, where: str, minimum: int) -> pd.Series:
    s = df[col]
    if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
        raise FeedbackError(f"{where}: column {col!r} must hold integers, got {s.dtype} "
                            f"(e.g. {_examples(s)})")
    if pd.api.types.is_float_dtype(s):
        fractional = s[s != np.floor(s)]
        if len(fractional):
            raise FeedbackError(f"{where}: column {col!r} must hold integers, got {_examples(fractional)}")
    s = s.astype(np.int64)
    low = s[s < minimum]
    if len(low):
        raise FeedbackError(f"{where}: column {col!r} must be >= {minimum}, got {_examples(low)}")
    return s


def validate_feedback(df: pd.DataFrame, where: str = "feedback") -> pd.DataFrame:
    """The feedback table in its canonical form (COLUMNS, `at` as UTC); raises FeedbackError."""
    if not isinstance(df, pd.DataFrame):
        raise FeedbackError(f"{where}: expected a table (DataFrame), got {type(df).__name__}")
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise FeedbackError(f"{where}: missing column(s) {missing}; feedback needs {list(REQUIRED)} "
                            f"(and optionally {list(OPTIONAL)})")
    if df.empty:
        return _empty()
    present = [c for c in COLUMNS if c in df.columns]
    nulls = {c: int(n) for c, n in df[present].isna().sum().items() if n}
    if nulls:
        raise FeedbackError(f"{where}: missing values in {nulls} (rows: {len(df)})")
    out = pd.DataFrame(index=df.index)
    rid = df["request_id"]
    if not (pd.api.types.is_string_dtype(rid) or pd.api.types.is_object_dtype(rid)) \
            or not rid.map(lambda v: isinstance(v, str)).all():
        raise FeedbackError(f"{where}: column 'request_id' must hold strings (the logged request id), "
                            f"got {rid.dtype} (e.g. {_examples(rid)})")
    if (rid.str.len() == 0).any():
        raise FeedbackError(f"{where}: column 'request_id' has empty strings")
    out["request_id"] = rid.astype(str)
    out["row"] = _integers(df, "row", where, 0) if "row" in df.columns else np.zeros(len(df), dtype=np.int64)
    item = df["item_id"]
    if pd.api.types.is_bool_dtype(item) or not (pd.api.types.is_integer_dtype(item) or pd.api.types.is_float_dtype(item)
                                                or item.map(lambda v: isinstance(v, str)).all()):
        raise FeedbackError(f"{where}: column 'item_id' must hold item ids (integers or strings), got {item.dtype} "
                            f"(e.g. {_examples(item)})")
    out["item_id"] = _integers(df, "item_id", where, np.iinfo(np.int64).min) if pd.api.types.is_numeric_dtype(item) \
        else item.astype(str)
    out["position"] = _integers(df, "position", where, 1)
    clicked = df["clicked"]
    if pd.api.types.is_bool_dtype(clicked):
        clicked = clicked.astype(np.int64)
    elif pd.api.types.is_numeric_dtype(clicked):
        bad = clicked[~clicked.isin([0, 1])]
        if len(bad):
            raise FeedbackError(f"{where}: column 'clicked' must be 0 or 1, got {_examples(bad)}")
        clicked = clicked.astype(np.int64)
    else:
        raise FeedbackError(f"{where}: column 'clicked' must be 0/1 or boolean, got {clicked.dtype} "
                            f"(e.g. {_examples(clicked)})")
    out["clicked"] = clicked
    at = df["at"]
    if not pd.api.types.is_datetime64_any_dtype(at):
        try:
            at = pd.to_datetime(at, utc=True, format="ISO8601")
        except (ValueError, TypeError) as err:
            raise FeedbackError(f"{where}: column 'at' must hold timestamps, got {df['at'].dtype} "
                                f"(e.g. {_examples(df['at'])}): {err}") from None
    at = at.dt.tz_localize("UTC") if at.dt.tz is None else at.dt.tz_convert("UTC")
    out["at"] = at.astype("datetime64[us, UTC]")
    return out[COLUMNS].reset_index(drop=True)


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"request_id": pd.Series(dtype=object), "row": pd.Series(dtype=np.int64),
                         "item_id": pd.Series(dtype=np.int64), "position": pd.Series(dtype=np.int64),
                         "clicked": pd.Series(dtype=np.int64), "at": pd.Series(dtype="datetime64[us, UTC]")})


def feedback_table(tenant: str) -> str:
    from mlplatform.config import slug

    return f"feedback_{slug(tenant)}"


def _database(environ=None) -> str | None:
    from mlplatform.services import PREDICTION_LOG

    return ((os.environ if environ is None else environ).get(PREDICTION_LOG) or "").strip() or None


def write_feedback(ws: Workspace, tenant: str, df: pd.DataFrame) -> Path | str | None:
    """Validate and write one feedback file, or append to the feedback table (see the module
    docstring); returns where (None for an empty table)."""
    table = validate_feedback(df, f"feedback for {tenant}")
    if table.empty:
        return None
    url = _database()
    if url is not None:
        from sqlalchemy import create_engine

        engine = create_engine(url)
        try:
            table.to_sql(feedback_table(tenant), engine, if_exists="append", index=False, method="multi", chunksize=1000)
        finally:
            engine.dispose()
        return f"table {feedback_table(tenant)}"
    folder = feedback_dir(ws, tenant)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    path = folder / f"part-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = path.with_suffix(".tmp")
    table.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def read_feedback(ws: Workspace, tenant: str, as_of: datetime | pd.Timestamp | None = None) -> pd.DataFrame:
    """Every feedback row of a tenant that happened at or before `as_of` (default: now), validated
    file by file (FeedbackError names the file). Empty when there is none."""
    frames = []
    url = _database()
    if url is not None:
        frames.append(_read_table(url, tenant))
    for path in sorted(feedback_dir(ws, tenant).glob("*.parquet")) if url is None else ():
        try:
            raw = pd.read_parquet(path)
        except Exception as err:  # noqa: BLE001 - any reader error: not a usable parquet file
            raise FeedbackError(f"feedback file {path}: cannot be read as parquet "
                                f"({type(err).__name__}: {err})") from None
        frames.append(validate_feedback(raw, f"feedback file {path}"))
    frames = [f for f in frames if len(f)]
    if not frames:
        return _empty()
    kinds = {pd.api.types.is_numeric_dtype(f["item_id"]) for f in frames}
    if len(kinds) > 1:
        raise FeedbackError(f"feedback of {tenant}: some files hold numeric item ids, others strings")
    df = pd.concat(frames, ignore_index=True)
    cutoff = pd.Timestamp(as_of or datetime.now(timezone.utc))
    cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff
    return df[df["at"] <= cutoff].reset_index(drop=True)


def _read_table(url: str, tenant: str) -> pd.DataFrame:
    from sqlalchemy import create_engine, inspect

    name = feedback_table(tenant)
    engine = create_engine(url)
    try:
        if not inspect(engine).has_table(name):
            return _empty()
        with engine.connect() as conn:
            raw = pd.read_sql_table(name, conn)
    finally:
        engine.dispose()
    return validate_feedback(raw, f"feedback table {name}")
