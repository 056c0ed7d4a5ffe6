"""The real Kubernetes Python client (kubernetes==30.1.0 from the lock) with its HTTP connection pool
replaced: every request the client builds is recorded as (verb, API group, resource, namespace,
name), and ConfigMaps are answered from a dict.

NO CLUSTER: this stands in for the API server at the wire, so the client's own code paths (URL
building, content types, serialisation, V1ConfigMap deserialisation, ApiException on 404/409) run
unchanged. It implements only what the rollout controller calls (custom object merge patches;
ConfigMap get and replace with resourceVersion checks) and answers anything else 501. It proves
the requests and the state logic, not what a real API server or admission would do.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field

import urllib3
from kubernetes import client

VERBS = {"GET": "get", "PUT": "update", "PATCH": "patch", "POST": "create", "DELETE": "delete"}
PATH = re.compile(r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
                  r"/namespaces/(?P<ns>[^/]+)/(?P<resource>[^/]+)(?:/(?P<name>[^/?]+))?")


@dataclass(frozen=True)
class Call:
    verb: str
    group: str  # "" for the core API
    resource: str
    namespace: str
    name: str | None
    content_type: str


@dataclass
class Wire:
    configmaps: dict[tuple[str, str], dict] = field(default_factory=dict)  # (namespace, name) -> object
    calls: list[Call] = field(default_factory=list)
    _version: int = 100

    # urllib3.PoolManager.request, as kubernetes.client.rest.RESTClientObject calls it
    def request(self, method, url, body=None, headers=None, preload_content=True, timeout=None, **_):
        path = urllib3.util.parse_url(url).path
        m = PATH.match(path)
        if not m:
            return self._answer(501, {"message": f"not implemented: {method} {path}"})
        call = Call(VERBS[method], m["group"] or "", m["resource"], m["ns"], m["name"],
                    (headers or {}).get("Content-Type", ""))
        self.calls.append(call)
        payload = json.loads(body) if body else None
        if call.group == "" and call.resource == "configmaps" and call.name:
            return self._configmap(call, payload)
        if call.verb == "patch" and call.group:
            return self._answer(200, {"apiVersion": f"{m['group']}/{m['version']}", "metadata": {"name": call.name}})
        return self._answer(501, {"message": f"not implemented: {method} {path}"})

    def _configmap(self, call: Call, payload):
        key = (call.namespace, call.name)
        current = self.configmaps.get(key)
        if current is None:
            return self._answer(404, {"kind": "Status", "reason": "NotFound", "code": 404})
        if call.verb == "get":
            return self._answer(200, current)
        if call.verb == "update":
            if payload["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                return self._answer(409, {"kind": "Status", "reason": "Conflict", "code": 409})
            return self._answer(200, self.put_configmap(payload))
        return self._answer(501, {"message": f"not implemented: {call.verb} configmaps"})

    def put_configmap(self, obj: dict) -> dict:
        """Store `obj` as the server would: a new resourceVersion on every write."""
        obj = copy.deepcopy(obj)
        self._version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._version)
        self.configmaps[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
        return obj

    @staticmethod
    def _answer(status: int, obj: dict) -> urllib3.HTTPResponse:
        return urllib3.HTTPResponse(body=json.dumps(obj).encode(), status=status, reason=str(status),
                                    headers={"Content-Type": "application/json"}, preload_content=True)

    def api_client(self) -> client.ApiClient:
        conf = client.Configuration()
        conf.host = "https://kubernetes.invalid"  # never dialled: the pool below answers
        api = client.ApiClient(conf)
        api.rest_client.pool_manager = self
        return api
