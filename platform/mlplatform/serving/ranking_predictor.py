"""The ranking predictor: a `kserve.Model` for `task: ranking` tenants with a retriever.

load()     MLflow version by alias -> the trainer module (tag `trainer`) loads the ranker; the
           tenant's retriever (ranking.retrieval.retriever) loads the index logged with the version's
           MLflow run (ranking/index.py), downloaded into scratch space;
           item features of the whole catalog are read once from the Feast online store into a
           matrix aligned with the retriever's catalog (refreshed in the background every
           `REFRESH_SECONDS`), so a request touches no store. A failed refresh keeps the last good
           features, counted and logged: mlplatform_feature_refresh_errors_total and
           mlplatform_item_features_age_seconds (monitoring/health.py).
predict()  query -> stage 1: retrieve `retrieval.candidates` (fused sparse + dense) -> stage 2:
           features of the best `retrieval.rerank` (query-item features from the retriever, item
           features from the matrix) -> ranker scores -> the top n with scores and the model version.
           Each served list goes to the prediction log (monitoring.prediction_log.RankingLog: request
           id, query, item ids, positions, scores), which clicks are joined with later
           (monitoring.quality); the V1 response carries the `request_id` to report them with.

Requests (JSON; V1 style):
    {"query": "black wireless earbuds", "n": 10}
    {"instances": [{"query": "...", "n": 5}, ...]}          (at most MAX_QUERIES queries)
V2 (Open Inference Protocol): input "query" (BYTES, shape [1]) and optionally "n" (INT*, shape [1]).
Bad input (no or empty query, a query over MAX_QUERY_CHARS, n not an integer or outside
1..ranking.max_n, wrong types, malformed JSON) raises InvalidInput: HTTP 400 {"error": ...}.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any

import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from mlplatform.plugins import resolve
from mlplatform.ranking import index
from mlplatform.registry.loading import ModelLoadError  # one error type: the server exits 2 on it
from mlplatform.serving.inputs import decode_json
from mlplatform.serving.served_model import ServedModel

log = logging.getLogger(__name__)
MAX_QUERIES = 16
MAX_QUERY_CHARS = 256
REFRESH_SECONDS = 300.0
QUERY_CACHE = 10_000
# the stages of rank(), in order (its `timings` argument): embed the query, retrieve and fuse the
# candidates, assemble the features of the re-ranked ones, score them, take the top n
STAGES = ("embed", "retrieve", "features", "score", "top_n")


def parse_query(row: Any, where: str, default_n: int, max_n: int) -> tuple[str, int]:
    if not isinstance(row, dict):
        raise InvalidInput(f"{where}: expected an object {{\"query\": str, \"n\": int}}, got {type(row).__name__}")
    query = row.get("query")
    if query is None:
        raise InvalidInput(f"{where}: missing field 'query'")
    if not isinstance(query, str):
        raise InvalidInput(f"{where}: 'query' must be a string, got {type(query).__name__}")
    if not query.strip():
        raise InvalidInput(f"{where}: 'query' is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"{where}: 'query' has {len(query)} characters, more than {MAX_QUERY_CHARS}")
    n = row.get("n", default_n)
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    if isinstance(n, bool) or not isinstance(n, int):
        raise InvalidInput(f"{where}: 'n' must be an integer, got {type(n).__name__} {n!r}")
    if not 1 <= n <= max_n:
        raise InvalidInput(f"{where}: 'n' must be between 1 and {max_n}, got {n}")
    return query.strip(), n


class RankingPredictor(ServedModel):
    """The predictor of `task: ranking` (mlplatform.tasks.ranking)."""

    def __init__(self, cfg, ws, **kwargs):
        super().__init__(cfg, ws, **kwargs)
        if not cfg.ranking or not cfg.ranking.retrieval:
            raise ValueError(f"tenant {cfg.name!r}: the ranking predictor needs a ranking section with ranking.retrieval")
        self._lock = threading.Lock()
        self._qcache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.log = None  # the result lists served (monitoring.prediction_log.RankingLog), opened by load()
        self._stopping = threading.Event()  # ends the item-feature refresher (stop())

    # --- lifecycle ------------------------------------------------------------------------------

    def prepare(self, mv) -> None:
        name = self.cfg.name
        self._predict_fn = self.trainer.predict
        retrieval = self.cfg.ranking.retrieval
        try:  # the index this version was trained with, from its MLflow run (not a workspace folder)
            self.retriever = resolve(retrieval.retriever).load(self.cfg, index.fetch(self.ws, mv.run_id, name))
        except FileNotFoundError as err:
            raise ModelLoadError(f"{name} v{mv.version}: retrieval index: {err}") from None
        names = getattr(self.model, "feature_name", None)
        self.features = list(names() if callable(names) else self.cfg.model.features)
        self.pair_names = {f.name for f in retrieval.query_features}
        self.item_names = [f.name for v in self.cfg.features.feature_views for f in v.features]
        unknown = sorted(set(self.features) - self.pair_names - set(self.item_names))
        if unknown:
            raise ModelLoadError(f"{name} v{mv.version} needs inputs neither the retriever nor a feature view "
                                 f"provides: {unknown}")
        self.item_ids = np.asarray(self.retriever.catalog[self.cfg.ranking.item].to_numpy())
        self.titles = (self.retriever.catalog["title"].astype(str).tolist()
                       if "title" in self.retriever.catalog.columns else None)
        try:
            self._refresh_items()
        except Exception as err:  # a store that cannot be read: the server refuses to start, saying why
            raise ModelLoadError(f"{name}: item features cannot be read from the online store "
                                 f"({type(err).__name__}: {err})") from err
        if "torch" in sys.modules:  # one query at a time: one intra-op thread (as limit_native_threads for BLAS)
            sys.modules["torch"].set_num_threads(1)
        self.retriever.search("warm up", 10)  # first-call costs (tokenizer, BLAS) before the first request

    def started(self, mv) -> None:
        from mlplatform.monitoring.prediction_log import RankingLog

        from mlplatform.monitoring.health import health_metrics

        self.log = RankingLog(self.ws, self.cfg.name, self.role)
        m = health_metrics()
        self._refresh_errors = m.refresh_errors.labels(**self._labels)
        m.features_age.set(self._labels, lambda: time.time() - self.items_refreshed)
        self._schedule_refresh()

    def _refresh_items(self) -> None:
        """Item features of the whole catalog from the online store, as a matrix (items x features)."""
        if not self.item_names:
            self.item_matrix = np.zeros((len(self.item_ids), 0))
            self.items_refreshed = time.time()
            return
        from mlplatform.features.store import OnlineFeatures

        key = self.cfg.features.entities[0].join_key
        rows = [{key: int(i) if isinstance(i, (np.integer, int)) else i} for i in self.item_ids]
        online = OnlineFeatures(self.cfg, self.ws)
        feats = online.store.get_online_features(features=online.refs, entity_rows=rows).to_dict()
        matrix = np.column_stack([np.asarray(feats[f], dtype=np.float64) for f in self.item_names])
        with self._lock:
            self.item_matrix = matrix
            self.items_refreshed = time.time()

    def refresh(self) -> bool:
        """One background refresh: False when it failed, in which case the last good features stay
        in service, the failure is counted (mlplatform_feature_refresh_errors_total) and logged, and
        mlplatform_item_features_age_seconds keeps growing."""
        try:
            self._refresh_items()
            return True
        except Exception as err:  # noqa: BLE001 - keep serving the last good features, visibly
            self._refresh_errors.inc()
            log.error("%s (%s): item feature refresh failed, serving features %.0f s old: %s: %s", self.name,
                      self.role, time.time() - self.items_refreshed, type(err).__name__, err)
            return False

    def _schedule_refresh(self) -> None:
        def loop() -> None:
            while not self._stopping.wait(REFRESH_SECONDS):
                self.refresh()

        threading.Thread(target=loop, name=f"{self.name}-item-features", daemon=True).start()

    def stop(self) -> None:
        """kserve's teardown hook (ModelRepository.unload, ModelServer.stop): the refresher ends and the
        served result lists are flushed, so an unloaded predictor reads no store and leaves no rows behind."""
        self._stopping.set()
        if self.log is not None:
            self.log.close()
        super().stop()

    # --- inference ------------------------------------------------------------------------------

    def get_input_types(self) -> list[dict]:
        return [{"name": "query", "datatype": "BYTES", "shape": [1]}, {"name": "n", "datatype": "INT64", "shape": [1]}]

    def request_schemas(self) -> dict[str, dict]:
        """What parse() accepts (a query with at least one non-space character); V2 as one query."""
        r = self.cfg.ranking
        query = {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS, "pattern": r"\S"}
        n = {"type": "integer", "minimum": 1, "maximum": r.max_n}
        row = {"type": "object", "required": ["query"], "properties": {"query": query, "n": n}}
        v1 = {"anyOf": [{"type": "object", "required": ["instances"], "properties": {
            "instances": {"type": "array", "items": row, "minItems": 1, "maxItems": MAX_QUERIES}}},
            row | {"not": {"required": ["instances"]}}]}  # a body with "instances" is read as a batch
        one = {"type": "array", "items": {"const": 1}, "minItems": 1, "maxItems": 1}
        tensors = [{"type": "object", "required": ["name", "datatype", "shape", "data"], "properties": {
            "name": {"const": name}, "datatype": datatype, "shape": one,
            "data": {"type": "array", "items": item, "minItems": 1, "maxItems": 1}}}
            for name, datatype, item in (("query", {"const": "BYTES"}, query),
                                         ("n", {"enum": ["INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16",
                                                         "UINT32", "UINT64"]}, n))]
        v2 = {"type": "object", "required": ["inputs"], "properties": {
            "id": {"type": "string"}, "inputs": {"type": "array", "prefixItems": tensors, "items": False,
                                                 "minItems": 1, "maxItems": 2}}}
        return {"v1": v1, "v2": v2}

    def get_output_types(self) -> list[dict]:
        return [{"name": "item_id", "datatype": "INT64", "shape": [-1]},
                {"name": "score", "datatype": "FP64", "shape": [-1]}]

    def parse(self, payload: Any, headers: dict[str, str] | None) -> list[tuple[str, int]]:
        r = self.cfg.ranking
        if isinstance(payload, InferRequest):
            given = {inp.name: inp for inp in payload.inputs}
            names = [inp.name for inp in payload.inputs]
            extra = sorted({n for n in names if n not in ("query", "n") or names.count(n) > 1})
            if extra:  # a tensor the model does not take, or one given twice: a client's mistake
                raise InvalidInput(f"unknown or repeated input(s) {extra}; inputs are 'query' and optionally 'n'")
            if "query" not in given:
                raise InvalidInput("missing input 'query' (BYTES, shape [1])")
            q = given["query"]
            if q.datatype != "BYTES" or len(q.data or []) != 1:
                raise InvalidInput("input 'query' must be BYTES with exactly one value")
            query = q.data[0].decode("utf-8", "replace") if isinstance(q.data[0], bytes) else q.data[0]
            row: dict[str, Any] = {"query": query}
            if "n" in given:
                n = given["n"]
                if not n.datatype.startswith(("INT", "UINT")) or len(n.data or []) != 1:
                    raise InvalidInput("input 'n' must be an integer tensor with one value")
                row["n"] = n.data[0]
            return [parse_query(row, "request", r.top_n, r.max_n)]
        body = decode_json(payload, headers)
        if isinstance(body, dict) and "instances" in body:
            rows = body["instances"]
            if not isinstance(rows, list) or not rows:
                raise InvalidInput("'instances' must be a non-empty list of {\"query\": ..., \"n\": ...}")
            if len(rows) > MAX_QUERIES:
                raise InvalidInput(f"{len(rows)} queries is more than the limit of {MAX_QUERIES} per request")
            return [parse_query(row, f"instance {i}", r.top_n, r.max_n) for i, row in enumerate(rows)]
        return [parse_query(body, "request", r.top_n, r.max_n)]

    def query_vector(self, query: str) -> np.ndarray | None:
        """The query's embedding, cached (LRU, QUERY_CACHE entries): encoding a query is most of a
        request's time, and search traffic repeats its head queries. None: the retriever has no
        `embed_queries` and embeds inside `search`."""
        vec = self._qcache.get(query)
        if vec is not None:
            self._qcache.move_to_end(query)
            return vec
        embed = getattr(self.retriever, "embed_queries", None)
        if embed is None:
            return None
        vec = embed([query], cache=False)[0]
        self._qcache[query] = vec
        if len(self._qcache) > QUERY_CACHE:
            self._qcache.popitem(last=False)
        return vec

    def rank(self, query: str, n: int, qvec: np.ndarray | None = None,
             timings: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Positions (catalog rows) and scores of the top n for one query, best first.

        `timings`, when a dict, receives the seconds of each stage of this call (STAGES: the query
        embedding, retrieval and fusion of the candidates, features of the re-ranked ones, the
        ranker's scores, the top n); the benchmark (bench/search_bench.py) reads them."""
        clock = time.perf_counter
        t0 = clock()
        retrieval = self.cfg.ranking.retrieval
        qvec = self.query_vector(query) if qvec is None else qvec
        t1 = clock()
        fused, scores = self.retriever.search(query, retrieval.candidates, qvec)
        cand = fused[: retrieval.rerank]
        t2 = t3 = t4 = clock()
        if len(cand) == 0:
            positions, top_scores = cand, np.zeros(0)
        else:
            x = self.feature_matrix(query, cand, qvec, scores)
            t3 = clock()
            s = np.asarray(self._predict_fn(self.model, x), dtype=np.float64)
            t4 = clock()
            top = np.argsort(-s, kind="stable")[:n]
            positions, top_scores = cand[top], s[top]
        if timings is not None:
            t5 = clock()
            timings.update(zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)))
        return positions, top_scores

    def feature_matrix(self, query: str, cand: np.ndarray, qvec: np.ndarray | None,
                       scores: Any) -> np.ndarray:
        """The ranker's inputs for the candidates (rows) in the model's feature order: query-item
        features from the retriever, item features from the in-memory matrix."""
        pair = self.retriever.pair_features(query, cand, qvec, scores)
        with self._lock:
            items = self.item_matrix[cand]
        cols = {name: items[:, i] for i, name in enumerate(self.item_names)}
        cols.update(pair)
        return np.column_stack([cols[f] for f in self.features])

    def results(self, positions: np.ndarray, scores: np.ndarray) -> list[dict]:
        out = []
        for rank, (p, s) in enumerate(zip(positions.tolist(), scores.tolist()), 1):
            item = self.item_ids[p]
            row = {"rank": rank, "item_id": item.item() if isinstance(item, np.generic) else item, "score": s}
            if self.titles is not None:
                row["title"] = self.titles[p]
            out.append(row)
        return out

    def predict(self, payload: Any, headers: dict[str, str] | None = None, response_headers=None):
        queries = self.parse(payload, headers)
        ranked = [self.rank(q, n) for q, n in queries]
        response_id = (payload.id if isinstance(payload, InferRequest) else None) or str(uuid.uuid4())
        rid = self._log_lists(queries, ranked, headers, response_id)
        if isinstance(payload, InferRequest):
            pos, sc = ranked[0]
            ids = [int(self.item_ids[p]) for p in pos.tolist()]
            return InferResponse(
                response_id=response_id, model_name=self.name, model_version=self.model_version,
                infer_outputs=[InferOutput("item_id", [len(ids)], "INT64", data=ids),
                               InferOutput("score", [len(ids)], "FP64", data=sc.tolist())],
            )
        return {"model_version": self.model_version, "request_id": rid,
                "predictions": [{"query": q, "results": self.results(*r), "model_version": self.model_version}
                                for (q, _), r in zip(queries, ranked)]}

    def _log_lists(self, queries: list[tuple[str, int]], ranked: list[tuple[np.ndarray, np.ndarray]],
                   headers: dict[str, str] | None, fallback_id: str) -> str:
        """Log the served lists; returns the request id they are logged under."""
        from mlplatform.monitoring.prediction_log import request_id

        rid = request_id(headers, fallback_id)
        if self.log is not None:
            self.log.record(rid, self.model_version, [(q, self.item_ids[pos].tolist(), sc.tolist())
                                                      for (q, _), (pos, sc) in zip(queries, ranked)])
        return rid
