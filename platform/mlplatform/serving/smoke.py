"""Smoke test of a running predictor over HTTP: realistic traffic must succeed, bad input must be
rejected with a 4xx and {"error": ...}.

Traffic: the newest ingested raw rows (entity keys + request fields, timestamps as ISO strings),
mostly V1, every `v2_every`-th request as V2. Rows whose entities the online store does not know
are left out (an unknown entity is a 422 by policy, see predictor.py; it is exercised by the bad
requests instead) and counted as `skipped_unknown_entities`.
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
    """Up to n request rows from the newest raw data whose entities the online store knows,
    and how many newer rows were skipped for unknown entities."""
    from mlplatform.data.ingest import load_raw
    from mlplatform.features.store import OnlineFeatures

    schema = RequestSchema(cfg)
    names = [s.name for s in schema.specs]
    raw = load_raw(cfg, ws)
    candidates = raw[names].tail(2 * n).iloc[::-1].reset_index(drop=True)  # newest first
    keys = [k.name for k in schema.keys]
    known = np.ones(len(candidates), dtype=bool)
    views = cfg.features.feature_views
    if views:
        entity_rows = [{k: _json_value(r[k]) for k in keys} for r in candidates.to_dict("records")]
        feats = OnlineFeatures(cfg, ws).fetch(entity_rows)
    for view in views:
        cols = [f.name for f in view.features]
        known &= ~feats[cols].isna().all(axis=1).to_numpy()
    take = np.flatnonzero(known)[:n]
    scanned = int(take[-1]) + 1 if len(take) else len(candidates)
    rows = [{k: _json_value(v) for k, v in r.items()} for r in candidates.iloc[take].to_dict("records")]
    return rows, scanned - len(take)


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
    key = schema.keys[0] if schema.keys and cfg.features.feature_views else None
    if key is not None and key.type == "int":
        unseen = int(key.max) if key.max is not None else 2**53  # a valid id no generator produces
        entity = next(e.name for e in cfg.features.entities if e.join_key == key.name)
        cases.append(BadRequest(f"unknown {entity}", v1, with_(**{key.name: unseen}), 422))
    return cases


def smoke_test(cfg: TenantConfig, ws: Workspace, base_url: str, n: int | None = None, *, v2_every: int = 10,
               timeout: float = 10.0) -> dict[str, Any]:
    import httpx

    n = n or cfg.serving.smoke_requests
    rows, skipped = newest_rows(cfg, ws, n)
    if not rows:
        raise RuntimeError(f"tenant {cfg.name!r}: no raw rows with entities known to the online store")
    latencies, errors, v2_requests, v2_errors, first_errors = [], 0, 0, 0, []
    with httpx.Client(base_url=base_url, timeout=timeout) as client:
        for i, row in enumerate(rows):
            is_v2 = v2_every > 0 and i % v2_every == v2_every - 1
            path, body = (v2_path(cfg), v2_body(cfg, [row])) if is_v2 else (v1_path(cfg), v1_body([row]))
            started = time.perf_counter()
            resp = client.post(path, content=orjson.dumps(body), headers=JSON)
            latencies.append((time.perf_counter() - started) * 1000)
            v2_requests += is_v2
            if not resp.is_success:
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
        "skipped_unknown_entities": skipped,
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
