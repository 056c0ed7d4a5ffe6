"""Cluster mode of the retraining webhook: runs start through the KFP API, and KFP keeps their record.

`mlplatform webhook` with KFP_HOST set (charts/mlplatform sets it) hands RetrainController
(webhook.py) a launcher, an `is_active` and a state from here; the decision (one run per incident,
cool-down) is the embedded one. What changes is where runs start and where the memory lives:

- start: `kfp.Client(host=KFP_HOST).create_run_from_pipeline_package(PIPELINE_PACKAGE, ...)`, the
  compiled train_deploy the image ships, with the tenant file's YAML text as `tenant` (what the
  retrain CronJob passes too) and the incident id (`retrain-<stamp>`, embedded mode's run id) as
  `run_id`, in the experiment named after the tenant (the CronJob's), named
  `<tenant>-alert-retrain-<stamp>`, caching off: a retrain must read fresh data; its tasks act as
  the tenant through the Secret `identity_secret` names (`<tenant>-pipeline`, charts/tenant
  identity.yaml; the CronJob passes the same).
- memory: KFP's run list. KFP 2.17 does not make run names unique (backend/src/apiserver/model/run.go:
  DisplayName is `not null` only; resource_manager.go CreateRun dedups by name for recurring runs
  alone), so before deciding, the newest alert run of the tenant is listed (filter display_name
  IS_SUBSTRING "-alert-retrain-", sort "created_at desc": model/run.go runAPIToModelFieldMap) and its
  state read with get_run. A restarted pod sees the same runs; nothing is written to its disk.
  Within one pod the alert fingerprints of a run are remembered too (outcome `duplicate`); after a
  restart a repeated alert counts as `active` instead: the run itself is never duplicated.

KFP unreachable -> KfpUnavailable; the webhook answers 503, so Alertmanager sends the alert again.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

ALERT_RUN = "-alert-retrain-"
# v2beta1 RuntimeState values after which a run does nothing more (kfp_server_api V2beta1RuntimeState)
FINAL_STATES = {"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"}
DEFAULT_PACKAGE = "/app/pipelines/compiled/train_deploy.yaml"  # the Dockerfile's COPY . /app
KEPT_RECORDS = 100


def identity_secret(tenant: str) -> str:
    """The Secret the tenant chart makes for its pipeline tasks (charts/tenant/templates/identity.yaml)."""
    return f"{tenant}-pipeline"


class KfpUnavailable(RuntimeError):
    """The KFP API did not answer or refused a call; the alert should be delivered again later."""


def run_name(tenant: str, incident: str) -> str:
    """`<tenant>-alert-retrain-<stamp>` for the incident id `retrain-<stamp>`."""
    return f"{tenant}{ALERT_RUN}{incident.removeprefix('retrain-')}"


class KfpRuns:
    """Launcher, activity check and state of RetrainController, backed by the KFP API at `host`.

    `client_factory` makes the kfp.Client (default: kfp.Client(host=host)); it is made on first use,
    so the webhook starts while KFP is still coming up, and made again after a failed call.
    """

    def __init__(self, host: str, package: Path, client_factory: Callable[[], Any] | None = None):
        self.host, self.package = host, Path(package)
        if not self.package.is_file():
            raise FileNotFoundError(f"no compiled pipeline at {self.package} (PIPELINE_PACKAGE)")
        self._factory = client_factory or self._default_client
        self._client: Any = None
        self._lock = threading.Lock()
        self.retrains: list[dict[str, Any]] = []  # RetrainController appends the runs it starts

    def _default_client(self) -> Any:
        import kfp

        return kfp.Client(host=self.host)

    def _call(self, what: str, fn: Callable[[Any], Any]) -> Any:
        with self._lock:
            try:
                if self._client is None:
                    self._client = self._factory()
                return fn(self._client)
            except Exception as err:  # urllib3, ApiException, ValueError from the client: all mean "not now"
                self._client = None
                raise KfpUnavailable(f"KFP API at {self.host}: {what} failed: {type(err).__name__}: {err}") from err

    # --- RetrainController's launcher -------------------------------------------------------------

    def launch(self, tenant: str, tenant_file: Path, incident: str) -> str:
        """Create the run; returns its KFP run id (the record's `pid`)."""
        text = Path(tenant_file).read_text()
        run = self._call("create run", lambda c: c.create_run_from_pipeline_package(
            str(self.package), arguments={"tenant": text, "run_id": incident, "identity_secret": identity_secret(tenant)}, run_name=run_name(tenant, incident),
            experiment_name=tenant, enable_caching=False))
        return run.run_id

    # --- activity and state ---------------------------------------------------------------------------

    def is_active(self, record: dict[str, Any]) -> bool:
        if not record.get("pid"):
            return False
        state = self._call("get run", lambda c: c.get_run(record["pid"]).state)
        record["kfp_state"] = str(state)
        return str(state) not in FINAL_STATES

    def last(self, tenant: str) -> dict[str, Any] | None:
        """The tenant's newest alert run, as KFP lists it (None: there is none)."""
        def newest(c):
            try:
                experiment = c.get_experiment(experiment_name=tenant)
            except ValueError:  # "No experiment is found with name ...": no run was ever started
                return None
            flt = json.dumps({"predicates": [{"operation": "IS_SUBSTRING", "key": "display_name",
                                              "string_value": f"{tenant}{ALERT_RUN}"}]})
            runs = c.list_runs(experiment_id=experiment.experiment_id, page_size=1, sort_by="created_at desc",
                               filter=flt).runs
            return runs[0] if runs else None

        run = self._call("list runs", newest)
        if run is None:
            return None
        known = next((r for r in self.retrains if r.get("pid") == run.run_id), None)
        if known is not None:
            return known
        params = (run.runtime_config.parameters or {}) if run.runtime_config else {}
        record = {"tenant": tenant, "run_id": params.get("run_id", run.display_name), "alertname": "",
                  "labels": {}, "fingerprints": [], "alert_starts_at": "", "started_ts": run.created_at.timestamp(),
                  "started_at": run.created_at.isoformat(), "tenant_file": "", "pid": run.run_id,
                  "kfp_run_name": run.display_name}
        self.retrains.append(record)
        return record

    def save(self) -> None:
        """KFP holds the runs; here only the list of records this pod knows is kept short."""
        del self.retrains[:-KEPT_RECORDS]


def cluster_controller_args(environ: Mapping[str, str] = os.environ) -> dict[str, Any] | None:
    """RetrainController arguments for cluster mode, or None when KFP_HOST is not set (embedded)."""
    host = environ.get("KFP_HOST", "").strip()
    if not host:
        return None
    runs = KfpRuns(host, Path(environ.get("PIPELINE_PACKAGE") or DEFAULT_PACKAGE))
    return {"launcher": runs.launch, "is_active": runs.is_active, "state": runs}
