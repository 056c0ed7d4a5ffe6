"""`mlplatform quality-job TENANT --push-to URL`: the delayed-label quality job as a cluster CronJob
(charts/tenant/templates/quality-cronjob.yaml), its gauges pushed to the Prometheus Pushgateway
(charts/mlplatform/templates/pushgateway.yaml), which Prometheus scrapes.

Why push: a finished Job's pod cannot be scraped. The Prometheus Operator's PodMonitor config drops
pods in phase Succeeded or Failed (prometheus-operator pkg/prometheus/promcfg.go, the PodMonitor
relabelling `__meta_kubernetes_pod_phase` =~ `(Failed|Succeeded)` -> drop; the golden configs in
its tests show it), and a pod that lingers to be scraped is a service, not a job. Prometheus'
own guidance names the one case the Pushgateway is for: "the outcome of a service-level batch
job" (prometheus.io/docs/practices/pushing), which a per-tenant quality run is: it belongs to
no instance.

The gauges are the ones the embedded monitor exports (quality.QualityCollector: the same names
and labels, so the tenant's PrometheusRule works unchanged), pushed with PUT under the grouping
key {job="mlplatform-quality", tenant=T}: each run replaces the tenant's group, so a version that
left the window leaves the gateway too.

A run that saw no logged predictions pushes nothing and fails: pushing a fresh timestamp with no
quality would silence MLPlatformQualityJobStale while nothing is measured. The failed Job is
visible (kube-state-metrics' kube_job_status_failed), and the staleness alert fires.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, push_to_gateway

from mlplatform.config import TenantConfig
from mlplatform.errors import UserError
from mlplatform.monitoring.quality import QualityCollector
from mlplatform.workspace import Workspace

PUSH_JOB = "mlplatform-quality"


class NothingToMeasure(UserError):
    """The quality job found no logged predictions: nothing pushed (see the module docstring)."""


def quality_registry(ws: Workspace) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QualityCollector(ws))
    return registry


def run_and_push(cfg: TenantConfig, ws: Workspace, gateway: str, *, role: str = "stable",
                 timeout: float = 30, **job_args: Any) -> dict[str, Any]:
    """Run the tenant's quality job into `ws`, then push its gauges to `gateway` (host:port or URL).
    `job_args`: passed to the task's quality_job (as_of, events: tests)."""
    from mlplatform.tasks import task_for

    record = task_for(cfg).quality_job(cfg, ws, role=role, **job_args)
    if not record.get("predictions"):
        raise NothingToMeasure(
            f"no logged predictions for {cfg.name} (role {role}) under {ws.home}: nothing measured, nothing pushed "
            "(the staleness alert MLPlatformQualityJobStale stays armed)")
    push_to_gateway(gateway, job=PUSH_JOB, registry=quality_registry(ws), grouping_key={"tenant": cfg.name},
                    timeout=timeout)
    return record
