"""The rollout state in a ConfigMap of the tenant namespace: what the cluster's rollout controller
resumes from after its pod restarts (the pod's filesystem is gone with it).

    ConfigMap <tenant>-rollout-state, key state.json: RolloutState.to_dict() as JSON

charts/tenant creates the ConfigMap (empty); the controller only reads and replaces it, so its Role
needs `get` and `update` on that one name, never `create` (RBAC cannot limit `create` to a name).
Helm's three-way merge keeps the data the controller wrote on `helm upgrade`, since the chart's
manifest never sets `data`.

Every write is a replace carrying the resourceVersion last read: if anyone else changed the
ConfigMap since (a second controller, a person), the API server answers 409 and this store raises
instead of overwriting a state it has not seen.
"""

from __future__ import annotations

import json
from typing import Any

from mlplatform.rollout.state import RolloutState, now_iso

STATE_KEY = "state.json"


class RolloutStateError(RuntimeError):
    """The state ConfigMap is missing, unreadable or was changed by someone else."""


def state_configmap_name(tenant: str) -> str:
    """charts/tenant/templates/rollout-controller.yaml names it the same way (a test checks)."""
    return f"{tenant}-rollout-state"


class ConfigMapStateStore:
    """`StateStore` on `kubernetes.client.CoreV1Api` (read_namespaced_config_map,
    replace_namespaced_config_map)."""

    def __init__(self, namespace: str, name: str, api: Any = None):
        self.namespace, self.name = namespace, name
        if api is None:
            from kubernetes import client, config

            config.load_incluster_config()  # the controller's pod: its own ServiceAccount token
            api = client.CoreV1Api()
        self.api = api
        self._last = None  # the V1ConfigMap last read or written (its labels, annotations, resourceVersion)

    def _read(self):
        from kubernetes.client.exceptions import ApiException

        try:
            cm = self.api.read_namespaced_config_map(self.name, self.namespace)
        except ApiException as err:
            if err.status == 404:
                raise RolloutStateError(
                    f"ConfigMap {self.namespace}/{self.name} does not exist: install charts/tenant with "
                    "cluster.rollout.enabled (it creates the ConfigMap the controller keeps its state in)") from None
            raise RolloutStateError(f"reading ConfigMap {self.namespace}/{self.name}: {err.status} {err.reason}") from err
        self._last = cm
        return cm

    def load(self, tenant: str) -> RolloutState:
        cm = self._read()
        raw = (cm.data or {}).get(STATE_KEY)
        if not raw:
            return RolloutState(tenant)
        try:
            data = json.loads(raw)
        except ValueError as err:
            raise RolloutStateError(f"ConfigMap {self.namespace}/{self.name} key {STATE_KEY} is not JSON: {err}") from None
        if data.get("tenant") != tenant:
            raise RolloutStateError(f"ConfigMap {self.namespace}/{self.name} holds the state of tenant "
                                    f"{data.get('tenant')!r}, not {tenant!r}")
        return RolloutState.from_dict(data)

    def save(self, state: RolloutState) -> None:
        from kubernetes.client.exceptions import ApiException

        # the whole object as last seen: a replace keeps Helm's labels and annotations (without them
        # `helm upgrade` refuses the ConfigMap) and sends the resourceVersion it was read at
        cm = self._last if self._last is not None else self._read()
        state.updated_at = now_iso()
        cm.data = {**(cm.data or {}), STATE_KEY: json.dumps(state.to_dict(), default=str)}
        try:
            saved = self.api.replace_namespaced_config_map(self.name, self.namespace, cm)
        except ApiException as err:
            if err.status == 409:
                raise RolloutStateError(
                    f"ConfigMap {self.namespace}/{self.name} changed since this controller read it (another "
                    "controller running?): not overwriting a state it has not seen") from None
            raise RolloutStateError(f"writing ConfigMap {self.namespace}/{self.name}: {err.status} {err.reason}") from err
        self._last = saved
