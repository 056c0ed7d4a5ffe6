"""`mlplatform stream TENANT`: the stream worker's process (features/stream.py), as the chart's
stream-worker Deployment runs it."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.console import Console

console = Console()


def stream(
    tenant: Annotated[str, typer.Argument(help="tenant name or tenant file")],
    home: Annotated[Optional[str], typer.Option("--home", help="workspace folder (default $MLPLATFORM_HOME or ./.mlplatform)")] = None,
    consumer: Annotated[Optional[str], typer.Option(help="consumer name in the group (default: host-pid)")] = None,
    seconds: Annotated[Optional[float], typer.Option(help="stop after this long (default: run until stopped)")] = None,
    metrics_port: Annotated[Optional[int], typer.Option(
        help="Prometheus /metrics port (default: features.stream.metrics_port; 0: none)")] = None,
) -> None:
    """Consume the tenant's event stream (features.stream): bucket state to the online store."""
    import os
    import socket

    from prometheus_client import start_http_server

    from mlplatform.config import load_tenant
    from mlplatform.features.stream import StreamWorker
    from mlplatform.features.stream_metrics import lag_client, register_lag
    from mlplatform.tenants import apply_env_overrides, resolve_tenant_path
    from mlplatform.workspace import Workspace

    # the deployment's stores (the chart passes them as for the predictor) and the stream's Redis
    cfg, ws = apply_env_overrides(load_tenant(resolve_tenant_path(tenant))), Workspace.from_env(home)
    worker = StreamWorker(cfg, ws, consumer or f"{socket.gethostname()}-{os.getpid()}")
    port = cfg.features.stream.metrics_port if metrics_port is None else metrics_port
    if port:  # counters, event age, and the lag read from Redis at each scrape
        register_lag(lag_client(worker.sc.redis_url), cfg.name, worker.stream, worker.sc.group)
        start_http_server(port)
    stats = worker.run(stop_after=seconds)
    console.print(f"events {stats.events}; rows {stats.rows}; claimed {stats.claimed}")
