"""Embedded Prometheus and Alertmanager: real processes, configs generated, data in the workspace.

    stack = MonitoringStack(ws.home / "monitoring" / "stack", rule_files=[render_rules(tenant_file)],
                            webhook_url="http://127.0.0.1:9095/alerts", scrape_interval="2s")
    stack.set_targets({"predictors": ["127.0.0.1:8080"], "monitor": ["127.0.0.1:9095"]})
    stack.start()            # free ports, readiness wait
    stack.query('max(mlplatform_drift_psi{feature="amount"})')  -> float | None
    stack.alerts()           # Prometheus' active alerts (state pending / firing)
    stack.stop()

Targets are file-based service discovery (`targets/*.json`): `set_targets` rewrites them and
Prometheus picks the change up without a restart (canary/shadow servers come and go in a rollout).
Alertmanager routes every alert with a `tenant` label to the webhook, grouped by tenant and alert
name, and each alert of a tenant whose file names an owner to that team's receiver
(monitoring/alert_routing.py, as in the cluster); group_wait/group_interval are short for the demo
and configurable.

Binaries: $MLPLATFORM_PROMETHEUS / $MLPLATFORM_ALERTMANAGER, else `prometheus` and
`alertmanager` / `prometheus-alertmanager` (Debian's name) on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import yaml

from mlplatform import processes
from mlplatform.config import TenantConfig
from mlplatform.monitoring.alert_routing import alertmanager_config


class StackError(RuntimeError):
    pass


def find_binary(env: str, *names: str) -> str | None:
    given = os.environ.get(env)
    if given:
        return given if Path(given).exists() or shutil.which(given) else None
    return next((shutil.which(n) for n in names if shutil.which(n)), None)


def find_prometheus() -> str | None:
    return find_binary("MLPLATFORM_PROMETHEUS", "prometheus")


def find_alertmanager() -> str | None:
    return find_binary("MLPLATFORM_ALERTMANAGER", "alertmanager", "prometheus-alertmanager")


class MonitoringStack:
    def __init__(self, folder: str | Path, *, rule_files: list[str | Path] = (), webhook_url: str | None = None,
                 tenants: list[TenantConfig] = (),
                 scrape_interval: str = "2s", evaluation_interval: str = "2s", group_wait: str = "1s",
                 group_interval: str = "2s", repeat_interval: str = "1h", resolve_timeout: str = "5m"):
        self.folder = Path(folder).resolve()
        self.rule_files = [Path(r).resolve() for r in rule_files]
        self.webhook_url = webhook_url
        self.tenants = list(tenants)
        self.scrape_interval, self.evaluation_interval = scrape_interval, evaluation_interval
        self.group_wait, self.group_interval, self.repeat_interval = group_wait, group_interval, repeat_interval
        self.resolve_timeout = resolve_timeout
        self.prom_port = self.am_port = 0
        self.procs: dict[str, subprocess.Popen] = {}
        (self.folder / "targets").mkdir(parents=True, exist_ok=True)

    # --- configuration ------------------------------------------------------------------------------

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prom_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.am_port}"

    def set_targets(self, jobs: dict[str, list[str]], labels: dict[str, str] | None = None) -> None:
        """job name -> ["host:port", ...] (each scraped at /metrics); atomic rewrite, hot-reloaded."""
        for job, targets in jobs.items():
            path = self.folder / "targets" / f"{job}.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps([{"targets": list(targets), "labels": {"job": job, **(labels or {})}}]))
            tmp.replace(path)

    def prometheus_config(self) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.evaluation_interval,
                       "scrape_timeout": self.scrape_interval},
            "rule_files": [str(r) for r in self.rule_files],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{self.am_port}"]}]}]},
            "scrape_configs": [{"job_name": "mlplatform", "file_sd_configs": [
                {"files": [str(self.folder / "targets" / "*.json")], "refresh_interval": "5s"}]}],
        }

    def alertmanager_config(self) -> dict[str, Any]:
        return alertmanager_config(self.tenants, webhook_url=self.webhook_url, webhook_matchers=['tenant=~".+"'],
                                   group_wait=self.group_wait, group_interval=self.group_interval,
                                   repeat_interval=self.repeat_interval, resolve_timeout=self.resolve_timeout)

    # --- processes ----------------------------------------------------------------------------------

    def start(self, timeout: float = 30) -> "MonitoringStack":
        prom, am = find_prometheus(), find_alertmanager()
        if not prom or not am:
            raise StackError("prometheus and alertmanager binaries are needed (Debian/Ubuntu: apt-get install "
                             "prometheus prometheus-alertmanager; else set MLPLATFORM_PROMETHEUS/_ALERTMANAGER)")
        self.prom_port, self.am_port = processes.free_port(), processes.free_port()
        (self.folder / "prometheus.yml").write_text(yaml.safe_dump(self.prometheus_config(), sort_keys=False))
        (self.folder / "alertmanager.yml").write_text(yaml.safe_dump(self.alertmanager_config(), sort_keys=False))
        self._spawn("alertmanager", [am, f"--config.file={self.folder / 'alertmanager.yml'}",
                                     f"--storage.path={self.folder / 'alertmanager-data'}",
                                     f"--web.listen-address=127.0.0.1:{self.am_port}",
                                     "--cluster.listen-address=", "--log.level=warn"])
        self._spawn("prometheus", [prom, f"--config.file={self.folder / 'prometheus.yml'}",
                                   f"--storage.tsdb.path={self.folder / 'prometheus-data'}",
                                   f"--web.listen-address=127.0.0.1:{self.prom_port}",
                                   "--web.enable-lifecycle", "--log.level=warn"])
        try:
            for name, url in (("alertmanager", self.alertmanager_url), ("prometheus", self.prometheus_url)):
                processes.wait_ready(self.procs[name], f"{url}/-/ready", self.folder / f"{name}.log", timeout, name)
        except processes.NotReady as err:
            self.stop()
            raise StackError(str(err)) from err
        return self

    def _spawn(self, name: str, cmd: list[str]) -> None:
        self.procs[name] = processes.spawn(cmd, self.folder / f"{name}.log", cwd=self.folder)

    def log(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def reload(self) -> None:
        """Re-read prometheus.yml and the rule files (after render_rules wrote new ones)."""
        (self.folder / "prometheus.yml").write_text(yaml.safe_dump(self.prometheus_config(), sort_keys=False))
        httpx.post(f"{self.prometheus_url}/-/reload", timeout=10).raise_for_status()

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            processes.stop(proc, timeout=15)
        self.procs.clear()

    def __enter__(self) -> "MonitoringStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- reading ------------------------------------------------------------------------------------

    def query(self, promql: str) -> float | None:
        """The first sample's value of an instant query, or None when the result is empty."""
        r = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": promql}, timeout=10)
        r.raise_for_status()
        data = r.json()["data"]
        if data["resultType"] == "scalar":
            return float(data["result"][1])
        return float(data["result"][0]["value"][1]) if data["result"] else None

    def query_vector(self, promql: str) -> list[tuple[dict[str, str], float]]:
        r = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": promql}, timeout=10)
        r.raise_for_status()
        return [(s["metric"], float(s["value"][1])) for s in r.json()["data"]["result"]]

    def alerts(self, state: str | None = None) -> list[dict[str, Any]]:
        """Prometheus' active alerts ({labels, annotations, state, activeAt, value}); optionally one state."""
        r = httpx.get(f"{self.prometheus_url}/api/v1/alerts", timeout=10)
        r.raise_for_status()
        out = r.json()["data"]["alerts"]
        return [a for a in out if state is None or a["state"] == state]

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.alertmanager_url}/api/v2/alerts", timeout=10)
        r.raise_for_status()
        return r.json()

    def targets_up(self) -> dict[str, str]:
        r = httpx.get(f"{self.prometheus_url}/api/v1/targets", timeout=10)
        r.raise_for_status()
        return {t["scrapeUrl"]: t["health"] for t in r.json()["data"]["activeTargets"]}
