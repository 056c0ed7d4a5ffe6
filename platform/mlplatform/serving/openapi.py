"""The OpenAPI document the model server serves at /openapi.json: KServe's generated one, amended
to say what our routes really answer, so a generated client knows every response.

FastAPI builds KServe's document from the route signatures (kserve/protocol/rest/v1_endpoints.py,
v2_endpoints.py), which do not see what `server.install_http_hooks` changes or what the predictor
checks itself. Amended here, once for every task's predictor:

- errors: every refusal is `{"error": str}` (kserve's handlers in kserve/errors.py and ours), with
  the statuses each route can give: 404 for an unknown model name, 400 for a malformed request
  (FastAPI's 422 `detail` list never reaches a client: install_http_hooks turns it into 400), and
  the predictor's own (`ERROR_STATUSES`: e.g. 422 a row without a score, 503 the online store down);
- refused routes (server.RouteGuard) document only their refusal: the repository API 403, V1
  `:explain` and the versioned V2 routes 404;
- request bodies: V1 predict has none in KServe's document (it reads the raw request) and V2 infer
  any tensor; both get the predictor's own (`request_schemas()`), what it accepts and nothing more;
- `/metrics` answers Prometheus' text format, not JSON.

Undeclared methods get 405 with `Allow` from Starlette's router (RouteGuard refuses only the
declared ones). Checked with schemathesis, all checks, for both tenants (tests/reliability/test_openapi.py).
"""

from __future__ import annotations

import re
from typing import Any

ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
ERROR_REF = {"$ref": "#/components/schemas/Error"}
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"  # prometheus_client's CONTENT_TYPE_LATEST

# path patterns of the routes RouteGuard refuses, with their one answer
REFUSED = [(re.compile(r"^/v2/repository/"), 403, "the model repository API is disabled"),
           (re.compile(r":explain$"), 404, "no explainer is deployed"),
           (re.compile(r"/versions/"), 404, "versioned model routes are not served")]
INFERENCE = re.compile(r"(:predict|/infer)$")
STATUS_TEXT = {400: "malformed or invalid request", 403: "refused", 404: "no such model or route",
               422: "a row that cannot be scored", 503: "a dependency of the request path is unavailable"}


def error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def amend(doc: dict, error_statuses: dict[int, str], request_schemas: dict[str, dict]) -> dict:
    """KServe's document `doc` amended in place (and returned); `error_statuses`: the predictor's
    own refusals of inference requests; `request_schemas`: {"v1": schema, "v2": schema} of the
    bodies it accepts (either may be missing: that body is then left as KServe describes it)."""
    doc.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, ops in doc.get("paths", {}).items():
        for method, op in ops.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            refused = next(((status, why) for rx, status, why in REFUSED if rx.search(path)), None)
            if refused:
                op.pop("requestBody", None)
                op["responses"] = {str(refused[0]): error(refused[1])}
                continue
            responses = op["responses"]
            responses.pop("422", None)  # FastAPI's validation errors: answered as 400 (install_http_hooks)
            statuses: dict[int, str] = {}
            if "{model_name}" in path:
                statuses[404] = STATUS_TEXT[404]
                if any(p.get("in") == "query" for p in op.get("parameters", [])):
                    statuses[404] += "; a model_version is given (versions are not served)"
            if INFERENCE.search(path):
                statuses |= {400: STATUS_TEXT[400], **error_statuses}
                kind = "v1" if path.endswith(":predict") else "v2"
                if kind in request_schemas:
                    op["requestBody"] = {"required": True, "content": {
                        "application/json": {"schema": request_schemas[kind]}}}
            elif "requestBody" in op:
                statuses[400] = STATUS_TEXT[400]
            for status, why in sorted(statuses.items()):
                responses[str(status)] = error(why)
            if path == "/metrics":
                responses["200"] = {"description": "Prometheus metrics", "content": {
                    PROMETHEUS_TEXT: {"schema": {"type": "string"}}}}
    return doc


def install(app, predictor) -> None:
    """Serve the amended document at /openapi.json (FastAPI builds it on first request, once all
    routes are registered, and caches it in `app.openapi_schema`)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if not getattr(app, "_mlplatform_openapi", False):
            amend(generate(), dict(getattr(predictor, "ERROR_STATUSES", {})), predictor.request_schemas())
            app._mlplatform_openapi = True
        return app.openapi_schema

    app.openapi = openapi
