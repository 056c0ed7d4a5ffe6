"""The row predictor (`task: binary_classification`): a `kserve.Model` serving any such tenant from
its config, nothing tenant-specific.

load()     MLflow version by alias (`serving.model_alias`, or the one given) -> the trainer named in
           the version's `trainer` tag loads the model (serving/served_model.py); the `threshold`
           tag is the decision threshold; the Feast online store is opened. `ready` becomes True only when all worked;
           otherwise `ModelLoadError` says what is missing (the server then refuses to start).
predict()  V1 {"instances": [...]} or V2 (Open Inference Protocol) -> validated columns
           (mlplatform.serving.inputs) -> online features for the entity keys -> the tenant's request
           transform -> model scores -> per row {"score", "decision" (score >= threshold), "model_version"}.

The pandas-free request path: serving/fast_path.py.

Cold start (policy, issue 14): every well-formed row is scored. An entity the online store has no
row for (never seen, or older than the view's TTL) gets its view's features as missing values, as
training saw a card's first payment; the row's response says so (V1 `"cold_start": true` and
`"missing": [view, ...]`; V2 a `cold_start` BOOL output and a `missing` BYTES output, the views
per row comma-joined), and `mlplatform_cold_start_rows_total{view}` counts such rows. Every row
scored with a view's row observes that row's age in `mlplatform_feature_age_seconds{view}`: the
scored event's time (the tenant's `data.timestamp` request field; now without it) minus the row's
event time, 0 when the row is newer (a replay of old events). Malformed requests are
400. 422 is kept only for a row that cannot be scored: the model returns a non-finite score for it
(a model that takes no missing values), named by row and missing views, never a NaN passed on.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np
import pandas as pd
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from mlplatform.plugins import resolve
from mlplatform.registry.loading import ModelLoadError
from mlplatform.serving.fast_path import COLUMN_DTYPES, matrix_scorer, same_scores, utc_datetime64, utc_index
from mlplatform.serving.inputs import RequestSchema
from mlplatform.serving.served_model import ServedModel


REOPEN_SECONDS = 1.0


class FeatureStoreUnavailable(RuntimeError):
    """The online store failed a lookup (missing, locked, unreachable). A server-side fault, not the
    caller's: `server.install_http_hooks` answers 503 {"error": ...} (retryable), the process stays up,
    and the next request reopens the store, so serving recovers when the store comes back."""


class UnknownEntity(InvalidInput):
    """A row cannot be scored (a non-finite score, see the policy above). A subclass of
    InvalidInput, so a plain kserve server still answers 400; `server.install_http_hooks` maps it
    to 422."""


class TenantPredictor(ServedModel):
    """The predictor of `task: binary_classification` (mlplatform.tasks.classification)."""

    ERROR_STATUSES = {422: "a row the model gives no score for (UnknownEntity)",
                      503: "the online feature store is unavailable (FeatureStoreUnavailable); retry"}

    def __init__(self, cfg, ws, **kwargs):
        super().__init__(cfg, ws, **kwargs)
        self.schema = RequestSchema(cfg)
        self.threshold: float | None = None
        self.monitor = None  # drift histograms and prediction log (mlplatform.monitoring.serving), set by load()
        # views as (name, feature names): the unit of the cold-start check
        self.views = [(v.name, [f.name for f in v.features]) for v in cfg.features.feature_views]
        # list features (bucketed state) go to the transform as lists; scalars as float64
        self._lists = {f.name for v in cfg.features.feature_views for f in v.features if f.dtype.endswith("_list")}
        self._cold_start: dict = {}  # per view, set by started()
        self._feature_age: dict = {}  # per view, set by started()
        self._reopened_at = float("-inf")  # monotonic time of the last reopen of the online store

    # --- lifecycle ------------------------------------------------------------------------------

    def prepare(self, mv) -> None:
        name = self.cfg.name
        tags = dict(mv.tags)
        try:
            self.threshold = float(tags["threshold"])
        except (KeyError, ValueError):
            raise ModelLoadError(f"{name} v{mv.version}: tag 'threshold' missing or not a number "
                                 f"({tags.get('threshold')!r}); the decision needs it") from None
        self._predict_fn = self.trainer.predict
        # the model's own input list when it records one (xgboost does); else the tenant's
        self.features = list(getattr(self.model, "feature_names", None) or self.cfg.model.features)
        unknown = sorted(set(self.features) - set(self.cfg.available_features))
        if unknown:
            raise ModelLoadError(f"{name} v{mv.version} needs inputs the tenant file does not provide: {unknown}")
        # a tenant whose inputs are all request fields has no feature views: no online store then.
        # Feast is imported only now (4 s), after the model is found: without one, start-up fails at once
        from mlplatform.features.store import OnlineFeatures

        self.online = OnlineFeatures(self.cfg, self.ws) if self.views else None
        if self.online is not None:  # one lookup now: a missing or broken store refuses start-up
            try:
                self.online.lookup({k.name: [0 if k.type == "int" else ""] for k in self.schema.keys})
            except Exception as err:
                raise ModelLoadError(f"{name}: the online feature store cannot be read "
                                     f"({type(err).__name__}: {err})") from err
        self._transform = resolve(self.cfg.features.request.transform) if self.cfg.features.request.transform else None
        self._score_matrix = matrix_scorer(self.trainer, self.model, self.features)
        if self._score_matrix is not None and not same_scores(self._score_matrix, self.trainer.predict, self.model,
                                                              self.features):
            self._score_matrix = None
        # no pandas per request: a matrix scorer, and a transform that takes columns (or none)
        self._columnar = self._score_matrix is not None and (
            self._transform is None or bool(getattr(self._transform, "columnar", False)))

    def started(self, mv) -> None:
        from mlplatform.monitoring.prediction_log import row_log
        from mlplatform.monitoring.serving import PredictionMonitor

        from mlplatform.monitoring.health import health_metrics

        # the child is looked up once: labels(**...) per scored row cost more than observe()
        self._score_metric = self.metrics.score.labels(**self._labels)
        self._online_errors = health_metrics().online_store_errors.labels(**self._labels)
        self._cold_start = {view: self.metrics.cold_start.labels(**self._labels, view=view) for view, _ in self.views}
        self._feature_age = {view: self.metrics.feature_age.labels(**self._labels, view=view) for view, _ in self.views}
        self.monitor = PredictionMonitor.for_model(self.cfg, self.ws, mv.run_id, self._labels,
                                                   log=row_log(self.cfg, self.ws, self.role))

    # --- inference ------------------------------------------------------------------------------

    def get_input_types(self) -> list[dict]:
        return self.schema.input_types()

    def request_schemas(self) -> dict[str, dict]:
        return self.schema.json_schemas()

    def get_output_types(self) -> list[dict]:
        return [{"name": "score", "datatype": "FP64", "shape": [-1]},
                {"name": "decision", "datatype": "BOOL", "shape": [-1]},
                {"name": "cold_start", "datatype": "BOOL", "shape": [-1]},
                {"name": "missing", "datatype": "BYTES", "shape": [-1]}]

    def predict(self, payload: Any, headers: dict[str, str] | None = None, response_headers=None):
        cols = self.schema.columns(payload, headers)
        scores, inputs, missing = self.score_rows(cols)
        decisions = scores >= self.threshold
        if self.monitor is not None:
            self.monitor.observe(inputs, self.features, scores, decisions, cols, headers, getattr(payload, "id", None))
        observe = self._score_metric.observe
        score_list, decision_list = scores.tolist(), decisions.tolist()
        for s in score_list:
            observe(s)
        if isinstance(payload, InferRequest):
            return InferResponse(
                response_id=payload.id or str(uuid.uuid4()), model_name=self.name, model_version=self.model_version,
                infer_outputs=[InferOutput("score", [len(scores)], "FP64", data=score_list),
                               InferOutput("decision", [len(scores)], "BOOL", data=decision_list),
                               InferOutput("cold_start", [len(scores)], "BOOL", data=[bool(m) for m in missing]),
                               # V2 parameters are scalars: the missing views per row as a BYTES tensor
                               InferOutput("missing", [len(scores)], "BYTES", data=[",".join(m) for m in missing])],
                parameters={"threshold": self.threshold},
            )
        return {"predictions": [_row(s, d, self.model_version, m) for s, d, m in zip(score_list, decision_list, missing)]}

    def score(self, cols: dict[str, list]) -> np.ndarray:
        """Validated request columns -> scores (float64), through the same transform as training."""
        return self.score_inputs(cols)[0]

    def score_inputs(self, cols: dict[str, list]) -> tuple[np.ndarray, np.ndarray]:
        """Scores and the model's inputs (rows x `self.features`, float64: the drift histograms bin them)."""
        return self.score_rows(cols)[:2]

    def score_rows(self, cols: dict[str, list]) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        """`score_inputs` and, per row, the views it was scored without (cold start); a row whose
        score is not finite cannot be scored: UnknownEntity (422)."""
        scores, x, missing = self._score(cols)
        bad = np.flatnonzero(~np.isfinite(scores))
        if bad.size:
            i = int(bad[0])
            raise UnknownEntity(f"row {i}: the model gives no score (non-finite) for it; missing views: "
                                f"{missing[i] or 'none'}")
        return scores, x, missing

    def _score(self, cols: dict[str, list]) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        n = len(next(iter(cols.values())))
        missing: list[list[str]] = [[] for _ in range(n)]
        feats: dict[str, list] = {}
        if self.online is not None:
            # the scored events' times (the tenant's timestamp request field; now without it): rows
            # past a view's TTL at that time are dropped, as the offline join drops them
            ts = self.cfg.data.timestamp
            at = [v.timestamp() for v in cols[ts]] if ts in cols else None
            try:  # the key columns as they are: Feast takes columns, no per-row dicts
                feats, times = self.online.lookup_at({k.name: cols[k.name] for k in self.schema.keys}, at)
            except Exception as err:
                self._online_errors.inc()  # mlplatform_online_store_errors_total (monitoring/health.py)
                self._reopen_online_store()
                raise FeatureStoreUnavailable(f"online feature store unavailable: {type(err).__name__}: "
                                              f"{str(err)[:200]}") from err
            missing = self._cold_start_views(feats, n)
            self._observe_ages(times, at)
        columns: dict[str, Any] = {}
        for spec in self.schema.specs:
            values = cols[spec.name]
            if spec.type == "datetime":
                columns[spec.name] = utc_datetime64(values) if self._columnar else utc_index(values)
            else:
                columns[spec.name] = np.array(values, dtype=COLUMN_DTYPES[spec.type])
        for _, names in self.views:
            for f in names:  # None (a missing value) -> NaN; lists stay lists (None where missing)
                columns[f] = feats[f] if f in self._lists else np.array(feats[f], dtype=np.float64)
        if self._columnar:
            frame = self._transform(columns) if self._transform is not None else columns
            x = np.empty((n, len(self.features)))
            for j, f in enumerate(self.features):
                x[:, j] = frame[f]
            return np.asarray(self._score_matrix(x), dtype=np.float64), x, missing
        df = pd.DataFrame(columns)
        if self._transform is not None:
            df = self._transform(df)
        # as training builds the drift reference (monitoring.drift.drift_reference)
        x = np.column_stack([df[f].to_numpy(dtype=np.float64, na_value=np.nan) for f in self.features])
        if self._score_matrix is not None:
            return np.asarray(self._score_matrix(x), dtype=np.float64), x, missing
        # the whole frame, as training does (training/classification.py): the trainer selects its inputs itself
        return np.asarray(self._predict_fn(self.model, df), dtype=np.float64), x, missing

    def _reopen_online_store(self) -> None:
        """A fresh store object (the SQLite store keeps its connection open, so a replaced database
        file would never be seen again); failures here surface on the next request. At most once a
        second: opening a store rewrites its repo files and reads Feast's registry, on the event
        loop, and an outage fails every request (100 a second under load). Not for Redis: redis-py's
        pool reconnects by itself, and a reopen would only add registry reads to an outage."""
        from mlplatform.features.store import OnlineFeatures

        if self.cfg.features.online_store.type != "sqlite":
            return
        now = time.monotonic()
        if now - self._reopened_at < REOPEN_SECONDS:
            return
        self._reopened_at = now
        try:
            self.online = OnlineFeatures(self.cfg, self.ws)
        except Exception:  # noqa: BLE001 - keep the old one; the next request tries again
            pass

    def _observe_ages(self, times: dict[str, list], at: list[float] | None) -> None:
        """mlplatform_feature_age_seconds{view}, one observation per row the view had a row for."""
        if not self._feature_age:
            return
        now = time.time()
        for view, stamps in times.items():
            hist = self._feature_age.get(view)
            if hist is None:
                continue
            for i, t in enumerate(stamps):
                if t is not None:
                    hist.observe(max(0.0, (at[i] if at is not None else now) - t))

    def _cold_start_views(self, feats: dict[str, list], n: int) -> list[list[str]]:
        """Per row, the views with every feature missing (counted: mlplatform_cold_start_rows_total)."""
        missing: list[list[str]] = [[] for _ in range(n)]
        for view, names in self.views:
            cold = [i for i in range(n) if all(feats[f][i] is None for f in names)]
            for i in cold:
                missing[i].append(view)
            if cold and view in self._cold_start:
                self._cold_start[view].inc(len(cold))
        return missing


def _row(score: float, decision: bool, version, missing: list[str]) -> dict:
    row = {"score": score, "decision": decision, "model_version": version, "cold_start": bool(missing)}
    if missing:
        row["missing"] = missing
    return row
