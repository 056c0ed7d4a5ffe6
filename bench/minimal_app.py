"""Baseline for the serving benchmark: the smallest HTTP endpoint doing the same work as the
predictor (parse V1 JSON, validate, Feast online lookup, transform, xgboost) without kserve:
Starlette on uvicorn, one worker.

    python -m bench.minimal_app TENANT_FILE HOME PORT
"""

from __future__ import annotations

import sys

import orjson
import uvicorn
from kserve.errors import InvalidInput
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlplatform.config import load_tenant
from mlplatform.serving.predictor import TenantPredictor
from mlplatform.serving.server import freeze_startup_heap, limit_native_threads
from mlplatform.workspace import Workspace


def build(tenant_file: str, home: str) -> Starlette:
    predictor = TenantPredictor(load_tenant(tenant_file), Workspace.from_env(home))
    predictor.load()
    limit_native_threads()
    freeze_startup_heap()  # the same process set-up as the kserve server (serving/server.py serve)

    async def predict(request: Request) -> Response:
        try:
            cols = predictor.schema.from_v1(orjson.loads(await request.body()))
            scores = predictor.score(cols)
        except (InvalidInput, orjson.JSONDecodeError) as err:
            return Response(orjson.dumps({"error": str(err)}), 400, media_type="application/json")
        out = [{"score": s, "decision": s >= predictor.threshold} for s in scores.tolist()]
        return Response(orjson.dumps({"predictions": out}), media_type="application/json")

    async def health(request: Request) -> Response:  # the bench's readiness probe (loaded before serving)
        return Response(b"ok")

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health)])


if __name__ == "__main__":
    app = build(sys.argv[1], sys.argv[2])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[3]), log_level="warning", access_log=False)
