"""The retraining webhook: Alertmanager posts alerts here; worthy ones start a retraining run.

    mlplatform webhook --host 0.0.0.0 --port 9095        (charts/mlplatform runs exactly this)

POST /alerts    Alertmanager webhook payload (version "4"). Invalid JSON or shape -> 400
                {"error": ...}; wrong content type -> 415; too large -> 413. For each *firing* alert
                with a `tenant` label whose name is in the tenant's `retraining.alerts`, a run is
                started unless one is already active for the tenant, or the tenant is in its
                cool-down (`retraining.cooldown_minutes` since the last start). One incident, many
                alerts (several drifted features, repeated notifications) -> one run.
                Per alert, `outcome` says what happened. A tenant with no tenant file anywhere is
                `ignored:unknown-tenant`; a tenant whose file exists but cannot be used (a typo, a
                plug-in that does not load) is `error:invalid-tenant-file` with the validation
                message in `error`: retraining is off for it until the file is fixed, so that is
                counted in mlplatform_webhook_tenant_file_errors_total{tenant} and alerted
                (MLPlatformTenantFileInvalid), not ignored.
GET  /retrains  the runs started, newest last (persisted in <home>/monitoring/webhook/state.json)
GET  /tenants   every tenant an alert named: {tenant: {valid, error}} (the validation message)
GET  /metrics   mlplatform_webhook_alerts_total{tenant, alertname, outcome},
                mlplatform_webhook_retrains_total{tenant},
                mlplatform_webhook_tenant_file_errors_total{tenant},
                mlplatform_webhook_tenant_file_valid{tenant} (1/0), and the model quality gauges
                (mlplatform.monitoring.quality) of the workspace: this is the monitor process
                Prometheus scrapes.
GET  /healthz

The launcher is injectable (`Launcher`: (tenant, tenant_file, run_id) -> pid or None). The default
starts `mlplatform run <tenant file> --run-id retrain-<stamp> --home <home>` as a subprocess (the
train_deploy pipeline through kfp.local), logging to <home>/monitoring/webhook/runs/<run_id>.log.
With KFP_HOST set (the chart) `mlplatform webhook` creates the runs through the KFP API instead and
keeps no state of its own (monitoring/kfp_submit.py); KFP unreachable -> 503. There a tenant's file
is the ConfigMap its chart installed, read through the Kubernetes API at each alert
(monitoring/tenant_configmaps.py; no ConfigMap -> unknown tenant, API unreachable -> 503).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlplatform.config import TenantConfig, TenantConfigError, load_tenant
from mlplatform.monitoring.kfp_submit import KfpUnavailable, cluster_controller_args
from mlplatform.monitoring.tenant_configmaps import TenantApiUnavailable, TenantConfigMaps
from mlplatform.tenants import UnknownTenant, tenant_file
from mlplatform.workspace import Workspace

log = logging.getLogger(__name__)
MAX_BODY = 1 << 20
Launcher = Callable[[str, Path, str], "int | None"]


# --- the payload (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config) --------


class AMAlert(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str = ""
    endsAt: str = ""
    fingerprint: str = ""


class AMPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")
    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupKey: str = ""
    alerts: list[AMAlert] = Field(min_length=1, max_length=1000)


# --- launching ------------------------------------------------------------------------------------


def mlplatform_exe() -> str:
    beside = Path(sys.executable).parent / "mlplatform"
    return str(beside) if beside.exists() else (shutil.which("mlplatform") or "mlplatform")


def subprocess_launcher(ws: Workspace) -> Launcher:
    def launch(tenant: str, tenant_file: Path, run_id: str) -> int | None:
        logs = ws.home / "monitoring" / "webhook" / "runs"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / f"{run_id}.log").open("w") as out:
            proc = subprocess.Popen([mlplatform_exe(), "run", str(tenant_file), "--run-id", run_id,
                                     "--home", str(ws.home)], stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        _CHILDREN[proc.pid] = proc
        return proc.pid
    return launch


_CHILDREN: dict[int, subprocess.Popen] = {}


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None  # reaps our own finished children
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


# --- the decision -----------------------------------------------------------------------------------


@dataclass
class RetrainState:
    path: Path
    retrains: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> "RetrainState":
        if path.exists():
            return cls(path, json.loads(path.read_text()).get("retrains", []))
        return cls(path)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"retrains": self.retrains}, indent=2))
        tmp.replace(self.path)

    def last(self, tenant: str) -> dict[str, Any] | None:
        return next((r for r in reversed(self.retrains) if r["tenant"] == tenant), None)


class RetrainController:
    """Decides per alert: started | active | cooldown | duplicate | ignored:<why> | error:<what>
    (`last_error` then holds the message). Thread-safe."""

    def __init__(self, ws: Workspace, launcher: Launcher | None = None,
                 tenant_files: dict[str, Path] | None = None, clock: Callable[[], float] = time.time,
                 is_active: Callable[[dict[str, Any]], bool] | None = None, state: Any = None,
                 resolve_tenant: Callable[[str], Path] | None = None):
        self.ws = ws
        self.launcher = launcher or subprocess_launcher(ws)
        self.tenant_files = {k: Path(v) for k, v in (tenant_files or {}).items()}
        # where a tenant not in tenant_files is found: the tenant folders (embedded); on a cluster,
        # the tenant's ConfigMap through the Kubernetes API (monitoring/tenant_configmaps.py)
        self.resolve_tenant = resolve_tenant or tenant_file
        self.clock = clock
        self.is_active = is_active or (lambda r: pid_alive(r.get("pid")))
        # state: last(tenant), retrains, save(); cluster mode passes KFP's (monitoring/kfp_submit.py)
        self.state = state if state is not None else RetrainState.load(ws.home / "monitoring" / "webhook" / "state.json")
        self.last_error = ""  # the message of the last error:<what> outcome
        self.tenant_errors: dict[str, str | None] = {}  # tenant -> why its file is invalid (None: valid)
        self._lock = threading.Lock()

    def tenant(self, name: str) -> tuple[TenantConfig, Path]:
        """The tenant's config; UnknownTenant when no file exists for it, TenantConfigError when
        one exists but is not a valid tenant file (or holds another tenant)."""
        path = self.tenant_files.get(name)
        if path is None:
            path = self.resolve_tenant(name)
        elif not path.exists():
            raise TenantConfigError(f"{path}: the tenant file configured for {name!r} does not exist")
        cfg = load_tenant(path)
        if cfg.name != name:
            raise TenantConfigError(f"{path} holds tenant {cfg.name!r}, not {name!r}")
        return cfg, path

    def tenant_file_states(self) -> dict[str, str | None]:
        """Every tenant an alert named, with why its file is invalid (None: valid). Invalid ones are
        loaded again first, so a fixed file shows as valid without waiting for the next alert."""
        for name, error in list(self.tenant_errors.items()):
            if error is None:
                continue
            try:
                self.tenant(name)
                self.tenant_errors[name] = None
            except UnknownTenant:  # the file was removed: no tenant, nothing invalid
                self.tenant_errors.pop(name, None)
            except (TenantConfigError, OSError, ValueError) as err:
                self.tenant_errors[name] = str(err)
            except TenantApiUnavailable:  # not known better now: keep what the last alert found
                pass
        return dict(self.tenant_errors)

    def handle(self, alert: AMAlert) -> tuple[str, dict[str, Any] | None]:
        name = alert.labels.get("alertname", "")
        tenant = alert.labels.get("tenant")
        if alert.status != "firing":
            return "ignored:resolved", None
        if not tenant:
            return "ignored:no-tenant-label", None
        try:
            cfg, path = self.tenant(tenant)
        except UnknownTenant:
            return "ignored:unknown-tenant", None
        except (TenantConfigError, OSError, ValueError) as err:  # the file exists but cannot be used
            self.last_error = self.tenant_errors[tenant] = str(err)
            log.error("alert %s for tenant %s: its tenant file is invalid, retraining is off until it is fixed:\n%s",
                      name, tenant, err)
            return "error:invalid-tenant-file", None
        self.tenant_errors[tenant] = None
        if not cfg.retraining.enabled:
            return "ignored:retraining-disabled", None
        if name not in cfg.retraining.alerts:
            return "ignored:not-a-retraining-alert", None
        fingerprint = alert.fingerprint or json.dumps(sorted(alert.labels.items()))
        with self._lock:
            now = self.clock()
            last = self.state.last(tenant)
            if last is not None:
                if self.is_active(last):
                    if fingerprint not in last["fingerprints"]:
                        last["fingerprints"].append(fingerprint)
                        self.state.save()
                        return "active", last
                    return "duplicate", last
                if now - last["started_ts"] < cfg.retraining.cooldown_minutes * 60:
                    return ("duplicate" if fingerprint in last["fingerprints"] else "cooldown"), last
            stamp = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%d-%H%M%S")
            run_id = f"retrain-{stamp}"
            record = {"tenant": tenant, "run_id": run_id, "alertname": name, "labels": alert.labels,
                      "fingerprints": [fingerprint], "alert_starts_at": alert.startsAt,
                      "started_ts": now, "started_at": datetime.fromtimestamp(now, timezone.utc).isoformat(),
                      "tenant_file": str(path), "pid": None}
            record["pid"] = self.launcher(tenant, path, run_id)
            self.state.retrains.append(record)
            self.state.save()
            return "started", record


# --- the HTTP app -----------------------------------------------------------------------------------


class TenantFileCollector:
    """`mlplatform_webhook_tenant_file_valid{tenant}`: 1/0 for every tenant an alert named (on scrape;
    invalid files are re-read, so the alert resolves once the file is fixed)."""

    def __init__(self, ctl: RetrainController):
        self.ctl = ctl

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        valid = GaugeMetricFamily("mlplatform_webhook_tenant_file_valid", "1 when the webhook can load the tenant's "
                                  "file, 0 when it exists but is invalid (retraining is off)", labels=["tenant"])
        for tenant, error in sorted(self.ctl.tenant_file_states().items()):
            valid.add_metric([tenant], 0.0 if error else 1.0)
        yield valid



def create_app(ws: Workspace, controller: RetrainController | None = None, **controller_args):
    from prometheus_client import CollectorRegistry, Counter, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from mlplatform.monitoring.quality import QualityCollector

    ctl = controller or RetrainController(ws, **controller_args)
    registry = CollectorRegistry()
    alerts_total = Counter("mlplatform_webhook_alerts", "Alerts received, by outcome",
                           ["tenant", "alertname", "outcome"], registry=registry)
    retrains_total = Counter("mlplatform_webhook_retrains", "Retraining runs started", ["tenant"], registry=registry)
    bad_total = Counter("mlplatform_webhook_bad_requests", "Rejected webhook requests", ["status"], registry=registry)
    tenant_errors = Counter("mlplatform_webhook_tenant_file_errors", "Alerts for a tenant whose tenant file exists "
                            "but is invalid (retraining is off for it)", ["tenant"], registry=registry)
    registry.register(QualityCollector(ws))
    registry.register(TenantFileCollector(ctl))

    def error(status: int, message: str) -> JSONResponse:
        bad_total.labels(str(status)).inc()
        return JSONResponse({"error": message}, status_code=status)

    async def alerts(request: Request):
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != "application/json":
            return error(415, f"unsupported content type {media or '(none)'!r}; send application/json")
        body = await request.body()
        if len(body) > MAX_BODY:
            return error(413, f"body of {len(body)} bytes is over the limit of {MAX_BODY}")
        try:
            raw = json.loads(body)
        except ValueError as err:
            return error(400, f"malformed JSON: {err}")
        try:
            payload = AMPayload.model_validate(raw)
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in err.errors()[:5])
            return error(400, f"not an Alertmanager webhook payload (version 4): {problems}")
        results = []
        for a in payload.alerts:
            # no await between handle() and reading last_error: no other request runs in between
            try:
                outcome, record = ctl.handle(a)
            except (KfpUnavailable, TenantApiUnavailable) as err:  # Alertmanager retries a 5xx; started runs dedup it
                return error(503, str(err))
            error_message = ctl.last_error if outcome.startswith("error:") else None
            tenant, name = a.labels.get("tenant", ""), a.labels.get("alertname", "")
            alerts_total.labels(tenant, name, outcome.split(":")[0]).inc()
            if outcome == "started":
                retrains_total.labels(tenant).inc()
            if outcome == "error:invalid-tenant-file":
                tenant_errors.labels(tenant).inc()
            result = {"alertname": name, "tenant": tenant, "outcome": outcome,
                      "run_id": record["run_id"] if record else None}
            if error_message is not None:
                result["error"] = error_message
            results.append(result)
        return JSONResponse({"results": results})

    async def retrains(_: Request):
        return JSONResponse({"retrains": [dict(r, active=ctl.is_active(r)) for r in ctl.state.retrains]})

    async def tenants(_: Request):
        states = ctl.tenant_file_states()
        return JSONResponse({"tenants": {t: {"valid": e is None, "error": e} for t, e in sorted(states.items())}})

    async def metrics(_: Request):
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request):
        return JSONResponse({"ok": True})

    async def not_found(request: Request, exc):
        return JSONResponse({"error": f"{request.method} {request.url.path}: {exc.detail}"}, status_code=exc.status_code)

    app = Starlette(routes=[Route("/alerts", alerts, methods=["POST"]), Route("/retrains", retrains), Route("/tenants", tenants),
                            Route("/metrics", metrics), Route("/healthz", healthz)],
                    exception_handlers={404: not_found, 405: not_found})
    app.state.controller = ctl
    return app


class WebhookServer:
    """uvicorn in a background thread (tests, the demo); `mlplatform webhook` runs it in the foreground."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 9095):
        import uvicorn

        self.host, self.port = host, port
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, name="webhook", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10) -> "WebhookServer":
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"webhook did not start on {self.url}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_webhook(ws: Workspace, host: str = "127.0.0.1", port: int = 9095, **controller_args) -> WebhookServer:
    """Start the webhook in this process (background thread); returns the running server."""
    return WebhookServer(create_app(ws, **controller_args), host, port).start()


def serve_webhook(ws: Workspace, host: str = "0.0.0.0", port: int = 9095) -> None:  # noqa: S104 - a service
    import uvicorn

    # KFP_HOST set (charts/mlplatform): runs and their record go through the KFP API
    cluster = cluster_controller_args()
    if cluster is not None:  # and each tenant's file is the ConfigMap its chart installed
        cluster["resolve_tenant"] = TenantConfigMaps(ws.home / "tenant-configmaps")
    uvicorn.run(create_app(ws, **(cluster or {})), host=host, port=port, log_level="info")
