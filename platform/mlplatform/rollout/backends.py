"""Where a rollout acts: `Backend.apply(state)` makes the traffic match the rollout state.

apply() is declarative and idempotent (called again after an interruption, it converges):
    idle, promoted, rolled_back   stable only (promoted: stable serves the new champion)
    shadow                        stable + a mirrored copy of every request to the challenger
    canary                        stable (100 - weight)% + challenger weight%

EmbeddedNginxBackend   model server processes (`python -m mlplatform.serving.server --alias
                       challenger --role canary|shadow`) behind the embedded nginx (proxy.py)
KubernetesBackend      merge-patches the tenant's HTTPRoute `<tenant>-route` (weights, RequestMirror) and
                       InferenceServices (a version annotation that restarts their predictor)
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any, Protocol

from mlplatform.config import TenantConfig
from mlplatform.processes import alive, free_port, server_env, start, stop_pid
from mlplatform.rollout.proxy import NginxProxy, Routes
from mlplatform.rollout.state import RolloutState, rollout_dir, write_json_atomic
from mlplatform.services import settings_in
from mlplatform.workspace import Workspace

STARTUP_SECONDS = 180


class Backend(Protocol):
    def apply(self, state: RolloutState) -> None: ...


@dataclass
class ServerRecord:
    role: str  # stable | canary | shadow
    alias: str
    version: str | None
    port: int
    pid: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


class ModelServers:
    """Detached model server processes of one tenant, one record per role in
    `<rollout dir>/servers/<role>.json` (found again by a later process), plus a Prometheus file_sd
    target list `<rollout dir>/targets.json` of every running server (scrape it with file_sd_configs)."""

    def __init__(self, cfg: TenantConfig, ws: Workspace):
        if cfg.source_path is None:
            raise ValueError("the tenant config must be loaded from a file (model servers take its path)")
        self.cfg, self.ws = cfg, ws
        self.dir = rollout_dir(ws, cfg.name) / "servers"
        self.targets_file = rollout_dir(ws, cfg.name) / "targets.json"

    def get(self, role: str) -> ServerRecord | None:
        path = self.dir / f"{role}.json"
        if not path.exists():
            return None
        rec = ServerRecord(**json.loads(path.read_text()))
        return rec if alive(rec.pid) else None

    def start(self, role: str, alias: str, version: str | None, port: int | None = None,
              timeout: float = STARTUP_SECONDS, key: str | None = None) -> ServerRecord:
        """Start a server for `alias` in `role` and wait until it is ready (raises when it exits)."""
        key = key or role
        port = port or free_port()
        cmd = [sys.executable, "-m", "mlplatform.serving.server", str(self.cfg.source_path), "--home",
               str(self.ws.home), "--port", str(port), "--alias", alias, "--role", role]
        # detached (its own session): later processes find it through its record and stop it by pid
        proc = start(cmd, f"http://127.0.0.1:{port}/v2/health/ready", self.dir / f"{key}.log", timeout=timeout,
                     name=f"{role} server ({alias})", env=server_env(self.ws.home, drop=("MLPLATFORM_",)) | settings_in(),
                     append=True, new_session=True)
        rec = ServerRecord(role, alias, version, port, proc.pid)
        write_json_atomic(self.dir / f"{key}.json", rec.__dict__)
        self.write_targets()
        return rec

    def start_relay(self, target: str, timeout: float = 30) -> ServerRecord:
        """The mirror relay (mirror_relay.py) in front of the shadow server at `target`."""
        rec = self.get("relay")
        if rec is not None and rec.version == target:
            return rec
        self.stop("relay")
        port = free_port()
        proc = start([sys.executable, "-m", "mlplatform.rollout.mirror_relay", "--port", str(port), "--target", target],
                     f"http://127.0.0.1:{port}/_relay/stats", self.dir / "relay.log", timeout=timeout,
                     name="mirror relay", append=True, new_session=True)
        rec = ServerRecord("relay", "", target, port, proc.pid)
        write_json_atomic(self.dir / "relay.json", rec.__dict__)
        return rec

    def promote_record(self, key: str, role: str) -> None:
        """Rename a started server's record (blue/green swap of the stable server)."""
        src = self.dir / f"{key}.json"
        os.replace(src, self.dir / f"{role}.json")

    def stop(self, role: str) -> None:
        path = self.dir / f"{role}.json"
        if not path.exists():
            return
        rec = ServerRecord(**json.loads(path.read_text()))
        stop_pid(rec.pid)
        path.unlink(missing_ok=True)
        self.write_targets()

    def write_targets(self) -> None:
        recs = [r for r in (self.get(role) for role in ("stable", "canary", "shadow")) if r]
        write_json_atomic(self.targets_file, [{"targets": [r.address], "labels": {
            "job": "mlplatform-serving", "mlplatform_tenant": self.cfg.name, "mlplatform_role": r.role}} for r in recs])


def _challenger_version(ws: Workspace, tenant: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    from mlplatform.registry.mlflow_registry import connect

    try:
        return str(connect(ws).get_model_version_by_alias(tenant, alias).version)
    except MlflowException:
        return None


class EmbeddedNginxBackend:
    """Model servers behind the embedded nginx. `up()` starts the stable server (or adopts
    `stable_address`, a server someone else runs) and the proxy; `apply(state)` follows the state."""

    def __init__(self, cfg: TenantConfig, ws: Workspace, proxy_port: int, *, stable_address: str | None = None,
                 challenger_alias: str = "challenger"):
        self.cfg, self.ws = cfg, ws
        self.proxy = NginxProxy(ws, cfg.name, proxy_port)
        self.servers = ModelServers(cfg, ws)
        self.stable_address = stable_address
        self.challenger_alias = challenger_alias

    @property
    def url(self) -> str:
        return self.proxy.url

    def _stable(self) -> str:
        if self.stable_address:
            return self.stable_address
        rec = self.servers.get("stable")
        if rec is None:
            rec = self.servers.start("stable", self.cfg.serving.model_alias,
                                     _challenger_version(self.ws, self.cfg.name, self.cfg.serving.model_alias))
        return rec.address

    def up(self) -> str:
        """Stable server and proxy running (idempotent); returns the proxy URL."""
        if not self.proxy.running:
            self.proxy.start(Routes(self._stable()))
        return self.proxy.url

    def _challenger(self, role: str, version: str | None) -> ServerRecord:
        rec = self.servers.get(role)
        if rec is not None and rec.version == version:
            return rec
        if rec is not None:  # another version: replace it (nginx still points at it until the reload)
            self.servers.stop(role)
        return self.servers.start(role, self.challenger_alias, version)

    def apply(self, state: RolloutState) -> None:
        # start what the new routes need, reload nginx, then stop what they no longer use:
        # no request is ever routed to a stopped server
        if state.phase == "shadow":
            shadow = self._challenger("shadow", state.challenger_version)
            relay = self.servers.start_relay(shadow.address)  # nginx mirror -> relay -> shadow
            self.proxy.apply(Routes(self._stable(), shadow=relay.address))
            self.servers.stop("canary")
        elif state.phase == "canary":
            canary = self._challenger("canary", state.challenger_version)
            self.proxy.apply(Routes(self._stable(), canary.address, state.weight))
            self.servers.stop("relay")
            self.servers.stop("shadow")
        else:
            if state.phase == "promoted" and not self.stable_address:
                self._swap_stable(state.stable_version)
            self.proxy.apply(Routes(self._stable()))
            self.servers.stop("canary")
            self.servers.stop("relay")
            self.servers.stop("shadow")

    def _swap_stable(self, version: str | None) -> None:
        """Blue/green: a new stable server for the (moved) champion alias, then the old one goes."""
        old = self.servers.get("stable")
        if old is not None and old.version == version:
            return
        new = self.servers.start("stable", self.cfg.serving.model_alias, version, key="stable-next")
        canary = self.servers.get("canary")
        self.proxy.apply(Routes(new.address, canary.address if canary else None, 0))
        if old is not None:
            stop_pid(old.pid)
        self.servers.promote_record("stable-next", "stable")
        self.servers.write_targets()

    def down(self) -> None:
        """Stop the proxy and every server this backend's records name."""
        self.proxy.stop()
        for role in ("canary", "relay", "shadow", "stable"):
            self.servers.stop(role)


# --- Kubernetes -----------------------------------------------------------------------------------

GATEWAY_GROUP, GATEWAY_VERSION = "gateway.networking.k8s.io", "v1"
KSERVE_GROUP, KSERVE_VERSION = "serving.kserve.io", "v1beta1"
VERSION_ANNOTATION = "mlplatform.io/model-version"


def _service(name: str, weight: int | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"group": "", "kind": "Service", "name": name, "port": 80}
    if weight is not None:
        ref["weight"] = weight
    return ref


def route_name(tenant: str) -> str:
    """The tenant chart's HTTPRoute (charts/tenant/templates/_helpers.tpl, tenant.routeName). Not
    `<tenant>`: KServe v0.20 owns the HTTPRoute named after each InferenceService and updates it back
    whenever it differs (httproute_reconciler.go, reconcileTopLevelHTTPRoute), which would undo
    every patch here."""
    return f"{tenant}-route"


def httproute_spec_patch(tenant: str, state: RolloutState) -> dict[str, Any]:
    """Merge patch of the tenant HTTPRoute (charts/tenant/templates/httproute.yaml): the one rule
    with its backends and filters, replaced as a whole (a merge patch replaces lists)."""
    rule: dict[str, Any] = {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}
    if state.phase == "shadow":
        rule["filters"] = [{"type": "RequestMirror",
                            "requestMirror": {"backendRef": _service(f"{tenant}-shadow-predictor")}}]
    weight = state.weight if state.phase == "canary" else 0
    rule["backendRefs"] = [_service(f"{tenant}-predictor", 100 - weight),
                           _service(f"{tenant}-canary-predictor", weight)]
    return {"spec": {"rules": [rule]}}


def isvc_version_patch(version: str | None) -> dict[str, Any]:
    """Annotating the predictor with the version changes its pod template: KServe rolls the
    Deployment, and the new pods load the model the (moved) alias points at."""
    return {"spec": {"predictor": {"annotations": {VERSION_ANNOTATION: str(version or "none")}}}}


class KubernetesBackend:
    """Patches through `kubernetes.client.CustomObjectsApi` (merge patches). Needs the tenant
    chart installed with cluster.canary.enabled and cluster.shadow.enabled (the canary and shadow
    InferenceServices exist; they serve the `challenger` alias)."""

    def __init__(self, cfg: TenantConfig, api: Any = None, namespace: str | None = None):
        self.cfg = cfg
        self.namespace = namespace or cfg.name
        if api is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api = client.CustomObjectsApi()
        self.api = api

    def _patch_isvc(self, name: str, body: dict) -> None:
        self.api.patch_namespaced_custom_object(KSERVE_GROUP, KSERVE_VERSION, self.namespace,
                                                "inferenceservices", name, body)

    def apply(self, state: RolloutState) -> None:
        t = self.cfg.name
        if state.phase == "shadow":
            self._patch_isvc(f"{t}-shadow", isvc_version_patch(state.challenger_version))
        elif state.phase == "canary":
            self._patch_isvc(f"{t}-canary", isvc_version_patch(state.challenger_version))
        elif state.phase == "promoted":
            self._patch_isvc(t, isvc_version_patch(state.stable_version))
        self.api.patch_namespaced_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, self.namespace, "httproutes",
                                                route_name(t), httproute_spec_patch(t, state))
