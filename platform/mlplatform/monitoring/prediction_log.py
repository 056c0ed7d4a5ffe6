"""The prediction log: one row per scored row, appended per tenant and role to a sink
(monitoring/prediction_sinks.py): parquet segments in the workspace (embedded), or a PostgreSQL
table that the predictors and the quality job share (MLPLATFORM_PREDICTION_LOG: services, cluster).

Columns: request_id (the `X-Request-ID` header, else the V2 request id, else a generated uuid4),
row (index within the request), logged_at (UTC), role, model_version, the entity join keys, the
event timestamp when the request carries it (`data.timestamp`, e.g. fraud's tx_datetime), score,
decision.

Ranking tenants (`RankingLog`) log one row per returned item of each served result list:
request_id, row (the query's index in a batched request), logged_at, role, model_version, query
(the text as served), position (1 = top), item_id, score. User feedback on those lists (clicks)
arrives later and is joined on (request_id, row, item_id) by mlplatform.monitoring.quality.

Cheap on the request path: `record()` appends to an in-memory list under a lock; a daemon thread
hands them to the sink every `flush_seconds` (and at exit). A failed write keeps its rows
for the next try (bounded: beyond 2 x MAX_BUFFER the oldest are dropped) and is never silent: write
errors, dropped rows, buffered rows and the time of the last successful flush are Prometheus
metrics (monitoring/health.py), and the first error of a run of failures is logged. Shadow and stable servers
that receive the same mirrored request log the same request_id when the proxy sets X-Request-ID
(nginx: `proxy_set_header X-Request-ID $request_id;`), which is the join key for comparing them.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import uuid
from datetime import datetime, timezone

import pandas as pd
# imported now, not by the first conversion: at exit that lazy import registers an atexit hook,
# which Python refuses during shutdown, and the final flush in close() lost its buffered rows
import pyarrow.pandas_compat  # noqa: F401

from mlplatform.monitoring.health import health_metrics
from mlplatform.monitoring.prediction_sinks import predictions_dir, sink_for  # noqa: F401 - predictions_dir: its old home
from mlplatform.workspace import Workspace

log = logging.getLogger(__name__)
FLUSH_SECONDS = 1.0
MAX_BUFFER = 50_000  # rows; beyond this a flush is forced (bounded memory if the writer stalls)


def request_id(headers: dict[str, str] | None, fallback: str | None = None) -> str:
    if headers:
        rid = headers.get("x-request-id") or headers.get("X-Request-ID")
        if rid:
            return rid[:128]
    return fallback or uuid.uuid4().hex


class PredictionLog:
    def __init__(self, ws: Workspace, tenant: str, role: str, key_columns: list[str],
                 time_column: str | None = None, flush_seconds: float = FLUSH_SECONDS,
                 max_buffer: int = MAX_BUFFER):
        self.sink = sink_for(ws, tenant, role)
        self.role = role
        self.key_columns = list(key_columns)
        self.time_column = time_column
        self.flush_seconds = flush_seconds
        self.max_buffer = max_buffer
        self._rows: list[tuple] = []
        self.dropped = 0  # rows given up after writes kept failing with a full buffer
        self.failing = False  # the last write failed (the first failure of a run is logged)
        m = health_metrics()
        self._dropped_metric = m.log_dropped.labels(tenant, role)
        self._errors_metric = m.log_errors.labels(tenant, role)
        self._flushed_metric = m.log_flushed.labels(tenant, role)
        self._flushed_metric.set(time.time())  # an empty buffer: healthy from the start
        m.log_buffered.labels(tenant, role).set_function(lambda: len(self._rows))
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="prediction-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    @property
    def columns(self) -> list[str]:
        return (["request_id", "row", "logged_at", "role", "model_version", *self.key_columns]
                + (["event_time"] if self.time_column else []) + ["score", "decision"])

    def record(self, rid: str, version: str, cols: dict[str, list], scores, decisions) -> None:
        """Append one request's rows (cols: the validated request columns)."""
        now = datetime.now(timezone.utc)
        keys = [cols[k] for k in self.key_columns]
        times = cols.get(self.time_column) if self.time_column else None
        rows = []
        for i, (s, d) in enumerate(zip(scores.tolist(), decisions.tolist())):
            rows.append((rid, i, now, self.role, version, *(k[i] for k in keys),
                         *((times[i],) if times is not None else ()), s, d))
        self._append(rows)

    def _append(self, rows: list[tuple]) -> None:
        with self._lock:
            self._rows.extend(rows)
            full = len(self._rows) >= self.max_buffer
        if full:
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - serving goes on; the rows stay buffered for the next try
                with self._lock:
                    overflow = len(self._rows) - 2 * self.max_buffer
                    if overflow > 0:  # bounded memory while the writer fails: the oldest go, counted
                        del self._rows[:overflow]
                        self.dropped += overflow
                        self._dropped_metric.inc(overflow)

    def flush(self) -> str | None:
        """Hand the buffered rows to the sink; where they went (None: there were none)."""
        with self._write_lock:
            with self._lock:
                rows, self._rows = self._rows, []
            if not rows:
                self._flushed_metric.set(time.time())
                return None
            try:
                where = self.sink.write(pd.DataFrame.from_records(rows, columns=self.columns))
            except BaseException as err:
                with self._lock:  # not written (a full disk, ...): back in front, for the next flush
                    self._rows[:0] = rows
                self._errors_metric.inc()
                if not self.failing:
                    log.error("prediction log of %s: write failed, %d rows kept in memory: %s: %s",
                              self.role, len(rows), type(err).__name__, err)
                self.failing = True
                raise
            if self.failing:
                log.warning("prediction log of %s: writing again", self.role)
            self.failing = False
            self._flushed_metric.set(time.time())
            return where

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - a full disk must not kill serving; counted, logged, retried next tick
                pass

    def close(self) -> None:
        self._stop.set()
        self.flush()


class RankingLog(PredictionLog):
    """The log of a ranking predictor: one row per returned item of each served result list."""

    COLUMNS = ["request_id", "row", "logged_at", "role", "model_version", "query", "position", "item_id", "score"]

    def __init__(self, ws: Workspace, tenant: str, role: str, flush_seconds: float = FLUSH_SECONDS):
        super().__init__(ws, tenant, role, [], None, flush_seconds)

    @property
    def columns(self) -> list[str]:
        return list(self.COLUMNS)

    def record(self, rid: str, version: str, lists: list[tuple[str, list, list]], *_) -> None:  # type: ignore[override]
        """Append one request's result lists: (query, item ids best first, scores) per query."""
        now = datetime.now(timezone.utc)
        rows = [(rid, i, now, self.role, version, query, pos, item, score)
                for i, (query, items, scores) in enumerate(lists)
                for pos, (item, score) in enumerate(zip(items, scores), 1)]
        self._append(rows)


def read_predictions(ws: Workspace, tenant: str, role: str | None = None,
                     since: datetime | pd.Timestamp | None = None) -> pd.DataFrame:
    """Every logged prediction of a tenant (one role, or all), optionally logged at or after `since`,
    from the sink this process's settings name."""
    if since is not None:
        since = pd.Timestamp(since)
        since = since.tz_localize("UTC") if since.tzinfo is None else since
    df = sink_for(ws, tenant).read(role, since)
    return df.sort_values("logged_at", kind="stable").reset_index(drop=True)


def row_log(cfg, ws: Workspace, role: str) -> PredictionLog:
    """The log of a row predictor (tasks.classification): its join keys and, when requested, the
    event time."""
    fields = {c.name for c in cfg.features.request.fields}
    time_col = cfg.data.timestamp if cfg.data.timestamp in fields else None
    return PredictionLog(ws, cfg.name, role, cfg.features.join_keys, time_col)
