"""Smoke test of a running ranking predictor over HTTP (the `task: ranking` counterpart of smoke.py).

Traffic: the distinct queries of the newest ingested judgments, as V1 requests (every
`v2_every`-th as V2); each answer must hold `n` ranked results with scores and the model version.
Then bad requests (no query, empty query, wrong types, absurd n, too many queries, malformed JSON,
wrong content type) must each get a 4xx with {"error": ...}. Same summary keys as smoke.py.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import orjson

from mlplatform.config import TenantConfig
from mlplatform.serving.ranking_predictor import MAX_QUERIES, MAX_QUERY_CHARS
from mlplatform.serving.smoke import JSON, BadRequest, send_bad_requests, v1_path, v2_path
from mlplatform.workspace import Workspace


def newest_queries(cfg: TenantConfig, ws: Workspace, n: int) -> list[str]:
    from mlplatform.data.ingest import load_raw

    raw = load_raw(cfg, ws)
    col = cfg.ranking.query_text
    return raw[col].iloc[::-1].drop_duplicates().head(n).tolist()


def bad_requests(cfg: TenantConfig) -> list[BadRequest]:
    v1 = v1_path(cfg)
    max_n = cfg.ranking.max_n

    def body(obj: Any) -> bytes:
        return orjson.dumps(obj)

    return [
        BadRequest("no query", v1, body({"n": 5}), 400),
        BadRequest("empty query", v1, body({"query": "   "}), 400),
        BadRequest("query not a string", v1, body({"query": 123}), 400),
        BadRequest("query too long", v1, body({"query": "x" * (MAX_QUERY_CHARS + 1)}), 400),
        BadRequest("n zero", v1, body({"query": "shoes", "n": 0}), 400),
        BadRequest("n absurd", v1, body({"query": "shoes", "n": 10**9}), 400),
        BadRequest("n above max_n", v1, body({"query": "shoes", "n": max_n + 1}), 400),
        BadRequest("n a string", v1, body({"query": "shoes", "n": "ten"}), 400),
        BadRequest("n a bool", v1, body({"query": "shoes", "n": True}), 400),
        BadRequest("instances not a list", v1, body({"instances": {"query": "shoes"}}), 400),
        BadRequest("too many queries", v1, body({"instances": [{"query": "shoes"}] * (MAX_QUERIES + 1)}), 400),
        BadRequest("body a list", v1, body([{"query": "shoes"}]), 400),
        BadRequest("malformed json", v1, b'{"query": "shoes"', 400),
        BadRequest("wrong content type", v1, b"query=shoes", 400, {"content-type": "text/plain"}),
        BadRequest("v2 query as number", v2_path(cfg),
                   body({"inputs": [{"name": "query", "datatype": "INT64", "shape": [1], "data": [1]}]}), 400),
    ]


def smoke_test(cfg: TenantConfig, ws: Workspace, base_url: str, n: int | None = None, *, v2_every: int = 10,
               timeout: float = 10.0) -> dict[str, Any]:
    import httpx

    n = n or cfg.serving.smoke_requests
    queries = newest_queries(cfg, ws, n)
    if not queries:
        raise RuntimeError(f"tenant {cfg.name!r}: no queries in the ingested data")
    top_n = cfg.ranking.top_n
    latencies, errors, v2_requests, v2_errors, first_errors, results = [], 0, 0, 0, [], []
    with httpx.Client(base_url=base_url, timeout=timeout) as client:
        for i, query in enumerate(queries):
            is_v2 = v2_every > 0 and i % v2_every == v2_every - 1
            if is_v2:
                path, body = v2_path(cfg), {"inputs": [
                    {"name": "query", "datatype": "BYTES", "shape": [1], "data": [query]},
                    {"name": "n", "datatype": "INT64", "shape": [1], "data": [top_n]}]}
            else:
                path, body = v1_path(cfg), {"query": query, "n": top_n}
            started = time.perf_counter()
            resp = client.post(path, content=orjson.dumps(body), headers=JSON)
            latencies.append((time.perf_counter() - started) * 1000)
            v2_requests += is_v2
            ok = resp.is_success
            if ok and not is_v2:
                pred = resp.json()["predictions"][0]
                ok = bool(pred["results"]) and pred["model_version"] is not None
                results.append(len(pred["results"]))
            if not ok:
                errors += 1
                v2_errors += is_v2
                if len(first_errors) < 3:
                    first_errors.append(f"{resp.status_code}: {resp.text[:200]}")
        rejected, not_rejected = send_bad_requests(client, bad_requests(cfg))
        alive = client.get("/v2/health/ready").is_success
    lat = np.asarray(latencies)
    return {
        "requests": len(queries),
        "errors": errors,
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "v2_requests": v2_requests,
        "v2_errors": v2_errors,
        "mean_results": round(float(np.mean(results)), 2) if results else 0.0,
        "bad_requests": rejected + len(not_rejected),
        "bad_requests_rejected": rejected,
        "bad_requests_not_rejected": not_rejected,
        "first_errors": first_errors,
        "alive_after": alive,
    }
