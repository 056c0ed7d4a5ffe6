"""A local HTTP endpoint that STANDS IN FOR THE KFP API SERVER (v2beta1 REST) in the webhook's tests.

No KFP API server runs here (it needs Kubernetes, MySQL and Argo). This endpoint answers exactly the
calls kfp.Client makes for the webhook: healthz, experiments list/create, runs create/list/get. It
parses every request body and filter with the KFP server API package's own generated models
(kfp_server_api: V2beta1Experiment, V2beta1Run, V2beta1Filter), rejects what the real server would
reject for these calls (an unknown experiment, a pipeline spec that is not a PipelineSpec /
PlatformSpec message, parameters the pipeline does not declare, an unknown filter operation), and
records each call. It schedules nothing: a run's state changes only when the test says so
(`set_state`), as KFP's persistence agent would report it.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import kfp_server_api as api
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mlplatform.monitoring.webhook import WebhookServer
from mlplatform.processes import free_port

PREFIX = "/apis/v2beta1"
# filter.proto's enum numbers, which kfp.Client sends (kfp/client/client.py _FILTER_OPERATIONS)
OPERATIONS = {1: "EQUALS", 2: "NOT_EQUALS", 3: "GREATER_THAN", 5: "GREATER_THAN_EQUALS", 6: "LESS_THAN",
              7: "LESS_THAN_EQUALS", 8: "IN", 9: "IS_SUBSTRING"}


class _Body:  # what ApiClient.deserialize reads: a response with .data
    def __init__(self, data: Any):
        self.data = json.dumps(data)


class BadRequest(Exception):
    pass


class KfpApiStandIn:
    def __init__(self):
        self.client = api.ApiClient()
        self.experiments: dict[str, api.V2beta1Experiment] = {}
        self.runs: dict[str, api.V2beta1Run] = {}
        self.calls: list[tuple[str, str, Any]] = []  # (method, path, parsed body or query)
        self._clock = itertools.count()
        self._t0 = datetime.now(timezone.utc)
        self._lock = threading.Lock()
        self.server: WebhookServer | None = None

    # --- parsing with the generated models ---------------------------------------------------------

    def parse(self, data: Any, model: str) -> Any:
        return self.client.deserialize(_Body(data), model)

    def dump(self, obj: Any) -> Any:
        return self.client.sanitize_for_serialization(obj)

    def parse_filter(self, text: str | None) -> list[api.V2beta1Predicate]:
        if not text:
            return []
        raw = json.loads(text)
        for p in raw.get("predicates", []):  # protojson takes enum numbers and names, both field spellings
            op = p.get("operation")
            p["operation"] = OPERATIONS.get(op, op) if isinstance(op, int) else op
            if p["operation"] not in api.V2beta1PredicateOperation.allowable_values or p["operation"] == "OPERATION_UNSPECIFIED":
                raise BadRequest(f"unknown filter operation {op!r}")
            if "stringValue" in p:
                p["string_value"] = p.pop("stringValue")
        return self.parse(raw, "V2beta1Filter").predicates or []

    @staticmethod
    def matches(obj: Any, predicates: list[api.V2beta1Predicate]) -> bool:
        for p in predicates:
            if p.key != "display_name":
                raise BadRequest(f"filter key {p.key!r} is not handled by this stand-in")
            value = obj.display_name or ""
            if p.operation == "EQUALS" and value != p.string_value:
                return False
            if p.operation == "IS_SUBSTRING" and p.string_value not in value:
                return False
            if p.operation not in ("EQUALS", "IS_SUBSTRING"):
                raise BadRequest(f"filter operation {p.operation} is not handled by this stand-in")
        return True

    def check_run(self, run: api.V2beta1Run) -> None:
        if run.experiment_id not in self.experiments:
            raise BadRequest(f"experiment {run.experiment_id!r} does not exist")
        if not run.display_name:
            raise BadRequest("a run needs a display_name")
        spec = run.pipeline_spec or {}
        doc = spec.get("pipeline_spec", spec) if "platform_spec" in spec else spec
        try:
            parsed = json_format.ParseDict(doc, pipeline_spec_pb2.PipelineSpec())
            if "platform_spec" in spec:
                json_format.ParseDict(spec["platform_spec"], pipeline_spec_pb2.PlatformSpec())
        except json_format.ParseError as err:
            raise BadRequest(f"pipeline_spec is not a PipelineSpec: {err}") from err
        declared = set(parsed.root.input_definitions.parameters)
        given = set((run.runtime_config.parameters or {}) if run.runtime_config else {})
        if given - declared:
            raise BadRequest(f"parameters {sorted(given - declared)} are not inputs of the pipeline")

    # --- the endpoints ----------------------------------------------------------------------------------

    def app(self) -> Starlette:
        def handle(fn):
            async def endpoint(request: Request):
                body = await request.body()
                try:
                    with self._lock:
                        return JSONResponse(fn(request, json.loads(body) if body else None))
                except BadRequest as err:
                    return JSONResponse({"error": str(err), "code": 3}, status_code=400)
                except KeyError as err:
                    return JSONResponse({"error": f"not found: {err}", "code": 5}, status_code=404)
            return endpoint

        def healthz(request, _):
            self.calls.append(("GET", "healthz", None))
            return {"multi_user": False, "pipeline_store": "database"}

        def experiments(request, body):
            if request.method == "POST":
                exp = self.parse(body, "V2beta1Experiment")
                if not exp.display_name:
                    raise BadRequest("an experiment needs a display_name")
                exp.experiment_id = str(uuid.uuid4())
                exp.created_at = self._now()
                self.experiments[exp.experiment_id] = exp
                self.calls.append(("POST", "experiments", exp))
                return self.dump(exp)
            predicates = self.parse_filter(request.query_params.get("filter"))
            self.calls.append(("GET", "experiments", predicates))
            found = [e for e in self.experiments.values() if self.matches(e, predicates)]
            return self.dump(api.V2beta1ListExperimentsResponse(experiments=found, total_size=len(found)))

        def runs(request, body):
            if request.method == "POST":
                run = self.parse(body, "V2beta1Run")
                self.check_run(run)
                run.run_id, run.created_at, run.state = str(uuid.uuid4()), self._now(), "PENDING"
                self.runs[run.run_id] = run
                self.calls.append(("POST", "runs", run))
                return self.dump(run)
            q = request.query_params
            predicates = self.parse_filter(q.get("filter"))
            self.calls.append(("GET", "runs", dict(q)))
            found = [r for r in self.runs.values() if self.matches(r, predicates)
                     and (not q.get("experiment_id") or r.experiment_id == q["experiment_id"])]
            sort = q.get("sort_by", "")
            if sort not in ("", "created_at", "created_at desc"):
                raise BadRequest(f"sort_by {sort!r} is not handled by this stand-in")
            found.sort(key=lambda r: r.created_at, reverse=sort.endswith("desc"))
            found = found[:int(q.get("page_size") or 10)]
            return self.dump(api.V2beta1ListRunsResponse(runs=found, total_size=len(found)))

        def run(request, _):
            self.calls.append(("GET", "run", request.path_params["run_id"]))
            return self.dump(self.runs[request.path_params["run_id"]])

        return Starlette(routes=[
            Route(f"{PREFIX}/healthz", handle(healthz)),
            Route(f"{PREFIX}/experiments", handle(experiments), methods=["GET", "POST"]),
            Route(f"{PREFIX}/runs", handle(runs), methods=["GET", "POST"]),
            Route(f"{PREFIX}/runs/{{run_id}}", handle(run)),
        ])

    def _now(self) -> datetime:  # strictly increasing: list order by created_at is well defined
        return self._t0 + timedelta(seconds=next(self._clock))

    def set_state(self, run_id: str, state: str) -> None:
        assert state in api.V2beta1RuntimeState.allowable_values
        self.runs[run_id].state = state

    # --- lifetime ---------------------------------------------------------------------------------------

    def start(self) -> "KfpApiStandIn":
        self.server = WebhookServer(self.app(), "127.0.0.1", free_port()).start()
        return self

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()
