"""Smoke test of a running predictor over HTTP: realistic traffic must succeed, bad input must be
rejected with a 4xx and {"error": ...}.

Traffic: the newest ingested raw rows (entity keys + request fields, timestamps as ISO strings),
mostly V1, every `v2_every`-th request as V2, plus rows naming unseen entities (every integer key
in turn): every well-formed row must be scored, unseen ones flagged cold start (policy in
serving/predictor.py); `cold_start_rows` counts the rows sent unseen, `cold_start_flagged` the
responses that said so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

from mlplatform.config import TenantConfig
from mlplatform.serving.inputs import METADATA_DATATYPE, RequestSchema
from mlplatform.workspace import Workspace

JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class BadRequest:
    name: str
    path: str
    content: bytes
    expect: int  # the status our server answers with
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))


def v1_path(cfg: TenantConfig) -> str:
    return f"/v1/models/{cfg.name}:predict"


def v2_path(cfg: TenantConfig) -> str:
    return f"/v2/models/{cfg.name}/infer"


def v1_body(rows: list[dict]) -> dict:
    return {"instances": rows}


def v2_body(cfg: TenantConfig, rows: list[dict]) -> dict:
    """One input per key and field, typed as the server's model metadata says."""
    specs = RequestSchema(cfg).specs
    return {"inputs": [{"name": s.name, "datatype": METADATA_DATATYPE[s.type], "shape": [len(rows)],
                        "data": [r[s.name] for r in rows]} for s in specs]}


def _json_value(v: Any) -> Any:
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, np.generic):
        return v.item()
    return v


def newest_rows(cfg: TenantConfig, ws: Workspace, n: int) -> tuple[list[dict], int]:
    """The n newest request rows of the raw data, newest first, and how many of them name an entity
    the online store does not hold (they are scored as cold start)."""
    from mlplatform.data.ingest import load_raw
    from mlplatform.features.store import OnlineFeatures

    schema = RequestSchema(cfg)
    names = [s.name for s in schema.specs]
    raw = load_raw(cfg, ws)
    rows = [{k: _json_value(v) for k, v in r.items()} for r in raw[names].tail(n).iloc[::-1].to_dict("records")]
    views = cfg.features.feature_views
    if not views or not rows:
        return rows, 0
    keys = [k.name for k in schema.keys]
    feats = OnlineFeatures(cfg, ws).fetch([{k: r[k] for k in keys} for r in rows])
    cold = np.zeros(len(rows), dtype=bool)
    for view in views:
        cold |= feats[[f.name for f in view.features]].isna().all(axis=1).to_numpy()
    return rows, int(cold.sum())


def with_unseen(cfg: TenantConfig, rows: list[dict], every: int = 7) -> tuple[list[dict], set[int]]:
    """`rows` with every `every`-th one naming an entity no generator produces (each integer key in
    turn: a new card, a new terminal): the rows, and the indices made unseen."""
    keys = [k for k in RequestSchema(cfg).keys if k.type == "int"] if cfg.features.feature_views else []
    if not keys or every <= 0:
        return rows, set()
    out, unseen = [], 0
    for i, row in enumerate(rows):
        if i % every == every - 1:
            key = keys[unseen % len(keys)]
            row = {**row, key.name: int(key.max) - unseen if key.max is not None else 2**53 - unseen}
            unseen += 1
        out.append(row)
    return out, {i for i in range(len(rows)) if i % every == every - 1}


def _cold_start(body: dict, is_v2: bool) -> bool:
    if is_v2:
        return any(o["name"] == "cold_start" and o["data"][0] for o in body.get("outputs", []))
    return bool(body.get("predictions", [{}])[0].get("cold_start"))


def bad_requests(cfg: TenantConfig, good: dict) -> list[BadRequest]:
    """Deliberately bad requests derived from the tenant's schema and one good row."""
    schema = RequestSchema(cfg)
    v1, v2 = v1_path(cfg), v2_path(cfg)

    def with_(**changes) -> bytes:
        return orjson.dumps(v1_body([{**good, **changes}]))

    first_field = (schema.fields or schema.keys)[0]
    missing = {k: v for k, v in good.items() if k != first_field.name}
    cases = [
        BadRequest("malformed JSON (V1)", v1, b'{"instances": [', 400),
        BadRequest("malformed JSON (V2)", v2, b'{"inputs": [', 400),
        BadRequest("missing field", v1, orjson.dumps(v1_body([missing])), 400),
        BadRequest("empty instances", v1, b'{"instances": []}', 400),
        BadRequest("not an instances object", v1, b"[1, 2, 3]", 400),
        BadRequest("wrong content type", v1, orjson.dumps(v1_body([good])), 400, {"content-type": "text/plain"}),
        BadRequest("V2 missing inputs", v2, b'{"inputs": []}', 400),
    ]
    numeric = next((s for s in schema.fields if s.type == "float"), None)
    if numeric:
        raw = orjson.dumps(v1_body([good])).decode()
        literal = orjson.dumps(good[numeric.name]).decode()
        token = f'"{numeric.name}":{literal}'
        cases += [
            BadRequest("wrong type (number as string)", v1, with_(**{numeric.name: str(good[numeric.name])}), 400),
            # NaN and Infinity are not JSON, but Python clients send them; V2 bodies are parsed leniently
            BadRequest("NaN (V1)", v1, raw.replace(token, f'"{numeric.name}":NaN').encode(), 400),
            BadRequest("inf (V1)", v1, raw.replace(token, f'"{numeric.name}":1e999').encode(), 400),
            BadRequest("NaN (V2)", v2, orjson.dumps(v2_body(cfg, [good])).replace(
                f'"data":[{literal}]'.encode(), b'"data":[NaN]'), 400),
        ]
        if numeric.max is not None:
            cases.append(BadRequest("out of range", v1, with_(**{numeric.name: numeric.max * 1000}), 400))
    # an unseen entity is no bad request: it is scored as cold start (with_unseen, in the traffic)
    return cases


def smoke_test(cfg: TenantConfig, ws: Workspace, base_url: str, n: int | None = None, *, v2_every: int = 10,
               timeout: float = 10.0) -> dict[str, Any]:
    import httpx

    n = n or cfg.serving.smoke_requests
    rows, cold_newest = newest_rows(cfg, ws, n)
    if not rows:
        raise RuntimeError(f"tenant {cfg.name!r}: no raw rows to send")
    rows, unseen = with_unseen(cfg, rows)
    latencies, errors, v2_requests, v2_errors, first_errors, flagged = [], 0, 0, 0, [], 0
    with httpx.Client(base_url=base_url, timeout=timeout) as client:
        for i, row in enumerate(rows):
            is_v2 = v2_every > 0 and i % v2_every == v2_every - 1
            path, body = (v2_path(cfg), v2_body(cfg, [row])) if is_v2 else (v1_path(cfg), v1_body([row]))
            started = time.perf_counter()
            resp = client.post(path, content=orjson.dumps(body), headers=JSON)
            latencies.append((time.perf_counter() - started) * 1000)
            v2_requests += is_v2
            cold = resp.is_success and _cold_start(resp.json(), is_v2)
            flagged += cold
            if i in unseen and not cold:  # an unseen entity must be scored and said to be cold
                errors += 1
                v2_errors += is_v2
                if len(first_errors) < 3:
                    first_errors.append(f"row {i} (unseen entity) not scored as cold start: {resp.status_code}: "
                                        f"{resp.text[:160]}")
            elif not resp.is_success:
                errors += 1
                v2_errors += is_v2
                if len(first_errors) < 3:
                    first_errors.append(f"{resp.status_code}: {resp.text[:200]}")
        rejected, not_rejected = send_bad_requests(client, bad_requests(cfg, rows[0]))
        alive = client.get("/v2/health/ready").is_success
    lat = np.asarray(latencies)
    return {
        "requests": len(rows),
        "errors": errors,
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "v2_requests": v2_requests,
        "v2_errors": v2_errors,
        "cold_start_rows": len(unseen),  # sent with an unseen card or terminal
        "cold_start_newest": cold_newest,  # newest rows whose entities the store does not hold either
        "cold_start_flagged": flagged,  # responses that said cold start (>= cold_start_rows when all scored)
        "bad_requests": rejected + len(not_rejected),
        "bad_requests_rejected": rejected,
        "bad_requests_not_rejected": not_rejected,
        "first_errors": first_errors,
        "alive_after": alive,
    }


def send_bad_requests(client, bad: list[BadRequest]) -> tuple[int, list[str]]:
    """Send each malformed request: (how many got a 4xx with an {"error": ...} body, the others)."""
    rejected, not_rejected = 0, []
    for b in bad:
        resp = client.post(b.path, content=b.content, headers=b.headers)
        if 400 <= resp.status_code < 500 and _has_error(resp):
            rejected += 1
        else:
            not_rejected.append(f"{b.name}: {resp.status_code} {resp.text[:120]}")
    return rejected, not_rejected


def _has_error(resp) -> bool:
    try:
        return isinstance(resp.json().get("error"), str)
    except ValueError:
        return False
