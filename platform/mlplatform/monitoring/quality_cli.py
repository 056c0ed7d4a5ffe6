"""`mlplatform quality-job TENANT --push-to HOST:PORT`: the cluster's quality CronJob
(charts/tenant/templates/quality-cronjob.yaml; quality_push.py says why it pushes)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def quality_job(
    tenant: Annotated[str, typer.Argument(help="tenant name or tenant file")],
    push_to: Annotated[str, typer.Option(envvar="MLPLATFORM_PUSHGATEWAY",
                                         help="Prometheus Pushgateway (host:port or URL) the gauges go to")],
    role: Annotated[str, typer.Option(help="which predictor's log")] = "stable",
) -> None:
    """Run the delayed-label quality job and push mlplatform_model_quality to a Pushgateway (cluster CronJob)."""
    from mlplatform.config import load_tenant
    from mlplatform.monitoring.quality_push import run_and_push
    from mlplatform.tenants import resolve_tenant_path
    from mlplatform.workspace import Workspace

    record = run_and_push(load_tenant(resolve_tenant_path(tenant)), Workspace.from_env(), push_to, role=role)
    console.print_json(json.dumps(record))
