"""Where the prediction log's rows are kept, and read back from.

- embedded (`make demo`): parquet segments in the workspace,
  `<home>/tenants/<name>/predictions/<role>/part-<utc stamp>-<pid>-<seq>.parquet`, immutable once
  written (temporary name, then rename: readers never see half a file);
- services profile and cluster (MLPLATFORM_PREDICTION_LOG, an SQLAlchemy URL): a PostgreSQL table
  per tenant, `prediction_log_<slug>`, which every predictor (stable, canary, shadow) appends to
  and the quality job reads. On a cluster each is its own pod: a file in one pod's /tmp is nothing
  to the quality CronJob, so the log lives where both reach it.

The table is created by the first write (pandas infers its columns from the rows: the tenant's join
keys are part of them). Two predictors making it at once: one insert fails, its rows stay in the
log's buffer and go in with the next flush (prediction_log.PredictionLog counts the error).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlplatform.services import PREDICTION_LOG
from mlplatform.workspace import Workspace

EMPTY = ["request_id", "row", "logged_at", "role", "model_version", "score", "decision"]


class PredictionSink(Protocol):
    def write(self, frame: pd.DataFrame) -> str:
        """Append the rows (of the sink's role); where they went, for logs."""

    def read(self, role: str | None, since: pd.Timestamp | None) -> pd.DataFrame:
        """Every row (of one role, or all), logged at or after `since` when given, in no set order
        (prediction_log.read_predictions sorts them by logged_at)."""


def predictions_dir(ws: Workspace, tenant: str, role: str | None = None) -> Path:
    base = ws.tenant(tenant) / "predictions"
    return base / role if role else base


class SegmentSink:
    """Parquet segments under <home>/tenants/<name>/predictions/<role>/ (writes: `folder`, the role's)."""

    def __init__(self, ws: Workspace, tenant: str, role: str | None = None):
        self.base = predictions_dir(ws, tenant)
        self.folder = predictions_dir(ws, tenant, role) if role else None
        self._seq = itertools.count()

    def write(self, frame: pd.DataFrame) -> str:
        folder = self.folder
        if folder is None:
            raise ValueError("this sink was opened for reading (no role)")
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        path = folder / f"part-{stamp}-{os.getpid()}-{next(self._seq):06d}.parquet"
        tmp = path.with_suffix(".tmp")
        # one thread: pyarrow's parallel conversion needs an executor, which refuses work during
        # interpreter shutdown (the final flush at exit)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False, nthreads=1), tmp)
        tmp.replace(path)
        return str(path)

    def read(self, role: str | None, since: pd.Timestamp | None) -> pd.DataFrame:
        folders = [self.base / role] if role else sorted(p for p in self.base.glob("*") if p.is_dir())
        files = [f for folder in folders for f in sorted(folder.glob("part-*.parquet"))]
        if not files:
            return pd.DataFrame(columns=EMPTY)
        df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        return df[df["logged_at"] >= since] if since is not None else df


class SqlSink:
    """Table prediction_log_<slug> of the database at `url` (PostgreSQL)."""

    def __init__(self, url: str, tenant: str):
        from sqlalchemy import create_engine

        from mlplatform.config import slug

        self.table = f"prediction_log_{slug(tenant)}"
        self.engine = create_engine(url, pool_pre_ping=True)

    def write(self, frame: pd.DataFrame) -> str:
        frame.to_sql(self.table, self.engine, if_exists="append", index=False, method="multi", chunksize=1000)
        return f"table {self.table}"

    def read(self, role: str | None, since: pd.Timestamp | None) -> pd.DataFrame:
        from sqlalchemy import inspect, text

        if not inspect(self.engine).has_table(self.table):
            return pd.DataFrame(columns=EMPTY)
        where, params = [], {}
        if role:
            where.append("role = :role")
            params["role"] = role
        if since is not None:
            where.append("logged_at >= :since")
            params["since"] = since.to_pydatetime()
        query = f"SELECT * FROM {self.table}" + (f" WHERE {' AND '.join(where)}" if where else "")  # noqa: S608 - a slug
        with self.engine.connect() as conn:
            df = pd.read_sql_query(text(query), conn, params=params)
        df["logged_at"] = pd.to_datetime(df["logged_at"], utc=True)
        return df


def sink_for(ws: Workspace, tenant: str, role: str | None = None,
             environ: Mapping[str, str] = os.environ) -> SegmentSink | SqlSink:
    """The tenant's sink as this process's settings say (`role`: the writer's; None: reading)."""
    url = environ.get(PREDICTION_LOG, "").strip()
    return SqlSink(url, tenant) if url else SegmentSink(ws, tenant, role)
