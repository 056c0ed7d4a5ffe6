"""Start a tenant's predictor in a kserve ModelServer (REST only, one worker).

    python -m mlplatform.serving.server TENANT [--home H] [--port P] [--alias A] [--role R]
    mlplatform serve TENANT ...      (the CLI calls serve_tenant)

Environment (set by charts/tenant for the predictor container; explicit arguments win):
    MLPLATFORM_TENANT_FILE          the tenant file (else TENANT is a name or path, see tenants.py)
    MLPLATFORM_MODEL_ALIAS          MLflow alias to serve (else serving.model_alias)
    MLPLATFORM_ROLE                 stable | canary | shadow (metrics label; default stable)
    MLPLATFORM_FEAST_ONLINE_STORE, MLPLATFORM_REDIS_ADDRESS   online store override (tenants.py)
    MLPLATFORM_HOME, MLFLOW_TRACKING_URI                        workspace and registry (workspace.py)
    MLPLATFORM_ACCESS_LOG=true      uvicorn's access log line per request (default off: requests are
                                    counted in /metrics and each prediction is in the prediction log)

The model is loaded before the server starts: when it cannot be (no such alias, ...), the process
exits with status 2 and the reason, and never reports ready.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from pathlib import Path
from urllib.parse import parse_qsl

from mlplatform.config import TenantConfig, TenantConfigError, load_tenant
from mlplatform.workspace import Workspace

EXIT_CANNOT_SERVE = 2


def _error_response(status: int, message: str, headers: dict[str, str] | None = None):
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=status, content={"error": message}, headers=headers)


def body_problems(errors: list[dict]) -> str:
    """FastAPI's validation errors of the V2 body (typed Union[InferenceRequest, bytes]) as one line."""
    problems = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ())][1:]  # drop "body"
        if e.get("type") == "json_invalid":
            return f"malformed JSON ({e.get('ctx', {}).get('error', 'decode error')}) at position {loc[0] if loc else 0}"
        if loc[:1] == ["bytes"]:  # the raw-bytes branch of the union: says nothing useful
            continue
        where = ".".join(loc[1:] if loc[:1] == ["InferenceRequest"] else loc) or "body"
        problems.append(f"{where}: {e.get('msg')}")
    return "invalid request body: " + ("; ".join(problems[:5]) or "not an inference request")


def install_http_hooks(app, predictor) -> None:
    """What kserve's app lacks for our conventions, added before the server starts:

    - request metrics for every status, including errors kserve raises before the model runs
      (kserve's own per-request timing middleware, a log line feeder, is left out);
    - UnknownEntity (a row that cannot be scored, see predictor.py) -> 422 (kserve maps its base class
      InvalidInput to 400);
    - FastAPI's body validation (the V2 route parses JSON into a pydantic model) -> 400
      {"error": ...} instead of 422 {"detail": [...]}; unknown routes -> {"error": ...} too;
    - FeatureStoreUnavailable -> 503 (a server-side fault; kserve would answer 500);
    - the V2 model repository routes (load/unload) -> 403: the model is loaded once, by MLflow alias,
      at start-up; an anonymous `unload` left the server reporting ready with no model;
    - V1 `:explain` and versioned V2 routes -> 404 (kserve answered 501: no explainer, no versioning);
    - /openapi.json says all of this (serving/openapi.py).
    """
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    from mlplatform.serving import openapi
    from mlplatform.serving.metrics import RequestMetricsMiddleware
    from mlplatform.serving.predictor import FeatureStoreUnavailable, UnknownEntity

    async def unknown_entity(_, exc):
        return _error_response(422, str(exc))

    async def invalid_body(_, exc):
        return _error_response(400, body_problems(exc.errors()))

    async def http_error(_, exc):  # keeps Starlette's headers: a 405 says what is Allowed
        return _error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    async def store_unavailable(_, exc):
        return _error_response(503, str(exc))

    app.add_exception_handler(UnknownEntity, unknown_entity)
    app.add_exception_handler(FeatureStoreUnavailable, store_unavailable)
    app.add_exception_handler(RequestValidationError, invalid_body)
    app.add_exception_handler(HTTPException, http_error)
    app.add_middleware(RouteGuard, predictor=predictor)  # inside the metrics middleware: refusals are counted
    app.add_middleware(RequestMetricsMiddleware, model_name=predictor.name, labels=predictor.labels,
                       metrics=predictor.metrics)
    drop_timing_middleware(app)
    openapi.install(app, predictor)


def drop_timing_middleware(app) -> None:
    """Leave out the TimingMiddleware kserve adds when the server starts. It only feeds the two
    per-request lines of the `kserve.trace` log (silenced, see quiet_request_logging), yet it calls
    getrusage() twice per request (summed over all of the process's threads: 12% of the server's
    CPU at saturation, measured with py-spy) and matches every route once more to name the request.
    Request latency is in mlplatform_request_duration_seconds. The app builds its middleware stack
    at its first ASGI call, after kserve added the middleware; the filter applies then."""
    try:
        from timing_asgi import TimingMiddleware
    except ImportError:  # a kserve without it: nothing to drop
        return
    build = app.build_middleware_stack

    def build_without_timing():
        app.user_middleware = [m for m in app.user_middleware if m.cls is not TimingMiddleware]
        return build()

    app.build_middleware_stack = build_without_timing


class RouteGuard:
    """The refused routes of `install_http_hooks` (repository API 403, explain and versioned routes
    404), for the methods those routes declare: any other method goes on to the router, which
    answers 405 with `Allow` (an undeclared method is not a refusal of the route). A pure ASGI
    middleware: Starlette's BaseHTTPMiddleware (`@app.middleware("http")`) runs every request
    through a task group and memory streams, which costs more than this check."""

    def __init__(self, app, predictor):
        self.app = app
        self.predictor = predictor

    def refusal(self, scope):
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if method not in (("POST",) if path.endswith(("/infer", ":predict", ":explain", "/load", "/unload"))
                          else ("GET", "HEAD")):
            if path.endswith((":predict", ":explain")):  # the router would match GET /v1/models/{model_name}
                return _error_response(405, "Method Not Allowed", {"Allow": "POST"})  # ("fraud:predict"): Allow: GET
            return None  # the router's 405 with Allow (or 404 for no such route)
        if path.startswith("/v2/repository/"):
            return _error_response(403, "the model repository API is disabled: the model is loaded by MLflow "
                                        "alias at start-up (restart or roll out to change it)")
        if path.endswith(":explain"):  # kserve answers 501 "Could not find explainer_host"
            return _error_response(404, f"model {self.predictor.name!r} offers no explainer")
        query = scope.get("query_string", b"")
        if "/versions/" in path or (b"model_version" in query and "model_version" in dict(
                parse_qsl(query.decode("latin-1"), keep_blank_values=True))):  # kserve: 501
            name = self.predictor.name
            return _error_response(404, f"versioned model routes are not served: this server serves "
                                        f"{name!r} version {self.predictor.model_version} at /v2/models/{name}")
        return None

    async def __call__(self, scope, receive, send):
        response = self.refusal(scope) if scope["type"] == "http" else None
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)


def limit_native_threads() -> None:
    """One OpenMP thread: a worker scores one small request at a time, and thread teams only
    contend for the cores (measured on 2 busy cores: xgboost's 1-row predict 3.6 ms -> 1.1 ms).
    Scale with replicas or workers instead. Applied at run time, so it works whenever the native
    libraries were loaded; OMP_NUM_THREADS set by the operator wins."""
    if os.environ.get("OMP_NUM_THREADS"):
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def quiet_request_logging() -> None:
    """No log line per request: uvicorn's access log (unless MLPLATFORM_ACCESS_LOG=true) and the two
    timing lines kserve's TimingMiddleware writes per request (logger kserve.trace). Three lines per
    request at 200 req/s is a busy stream on the one event loop that also scores; requests are
    counted by status in /metrics, and every prediction is in the prediction log."""
    if os.environ.get("MLPLATFORM_ACCESS_LOG", "").lower() not in ("1", "true", "yes"):
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)


def freeze_startup_heap() -> None:
    """Move everything loaded so far out of the garbage collector's reach (gc.freeze). A loaded
    fraud predictor holds ~620k objects (kserve, Feast, MLflow, xgboost, pandas); each full
    collection walked them all again, ~0.5 s with the interpreter lock held on a busy 2-core
    machine, stalling every request in flight: a p99 outlier of the serving and lookup benchmarks.
    Call once the model is loaded; later garbage is collected as usual."""
    gc.collect()
    gc.freeze()


def serve(cfg: TenantConfig, ws: Workspace, *, port: int | None = None, alias: str | None = None,
          role: str = "stable") -> None:
    """Load the model (raises ModelLoadError when it cannot be served), then serve until stopped."""
    import kserve
    from kserve import model_server

    from mlplatform.tasks import task_for
    from mlplatform.tenants import apply_env_overrides

    cfg = apply_env_overrides(cfg)
    predictor = task_for(cfg).predictor(cfg, ws, alias=alias, role=role)  # rows or a query: the task's predictor
    predictor.load()
    limit_native_threads()
    # latency logging off: a log line per request costs more than the prediction (p99 target < 10 ms)
    server = kserve.ModelServer(http_port=port or cfg.serving.port, workers=1, enable_grpc=False,
                                enable_latency_logging=False)
    quiet_request_logging()  # after ModelServer(): it configures kserve's and uvicorn's loggers
    install_http_hooks(model_server.app, predictor)
    freeze_startup_heap()
    server.start([predictor])


def serve_tenant(tenant: str | Path | None, home: str | None = None, port: int | None = None,
                 alias: str | None = None, role: str | None = None) -> None:
    """The CLI entry: resolve the tenant and settings (arguments > environment > tenant file), serve."""
    from mlplatform.tenants import resolve_tenant_path

    env_file = os.environ.get("MLPLATFORM_TENANT_FILE")
    if env_file:
        cfg = load_tenant(env_file)
        if tenant and str(tenant) != cfg.name and not Path(tenant).exists():
            raise TenantConfigError(f"MLPLATFORM_TENANT_FILE={env_file} holds tenant {cfg.name!r}, not {str(tenant)!r}")
    elif tenant:
        cfg = load_tenant(resolve_tenant_path(tenant))
    else:
        raise TenantConfigError("no tenant given (argument or MLPLATFORM_TENANT_FILE)")
    serve(cfg, Workspace.from_env(home), port=port,
          alias=alias or os.environ.get("MLPLATFORM_MODEL_ALIAS") or None,
          role=role or os.environ.get("MLPLATFORM_ROLE") or "stable")


def main(argv: list[str] | None = None) -> int:
    from mlplatform.registry.loading import ModelLoadError

    parser = argparse.ArgumentParser(prog="mlplatform-serve", description="Serve a tenant's model (KServe).")
    parser.add_argument("tenant", nargs="?", help="tenant name or path (default: MLPLATFORM_TENANT_FILE)")
    parser.add_argument("--home", help="workspace (default: MLPLATFORM_HOME or ./.mlplatform)")
    parser.add_argument("--port", type=int, help="HTTP port (default: serving.port)")
    parser.add_argument("--alias", help="MLflow alias (default: MLPLATFORM_MODEL_ALIAS or serving.model_alias)")
    parser.add_argument("--role", choices=["stable", "canary", "shadow"], help="default: MLPLATFORM_ROLE or stable")
    args = parser.parse_args(argv)
    try:
        serve_tenant(args.tenant, args.home, args.port, args.alias, args.role)
    except (ModelLoadError, TenantConfigError, ValueError) as err:
        print(f"mlplatform serve: cannot serve: {err}", file=sys.stderr)
        return EXIT_CANNOT_SERVE
    return 0


if __name__ == "__main__":
    sys.exit(main())
