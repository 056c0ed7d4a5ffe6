"""`mlplatform rollout-controller TENANT`: the rollout in the cluster, one long-running pod per tenant
(charts/tenant/templates/rollout-controller.yaml; why a Deployment and not a pipeline task:
docs/rollout.md, "Where the rollout runs in the cluster").

Kubernetes backend (patches the tenant's route and InferenceServices), state in the tenant's
ConfigMap (k8s_state.py), Prometheus through its in-cluster Service (MLPLATFORM_PROMETHEUS_URL,
from the tenant's cluster.rollout.prometheus_url), MLflow from MLFLOW_TRACKING_URI.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

console = Console()
# The pod's liveness and readiness probes read this file: the time by which the controller promises
# its next sign of life (after the longest wait it may do: an analysis interval or a poll, plus the
# slack of one analysis). A controller stuck anywhere misses it and is restarted; it then resumes.
ALIVE_FILE = "rollout-alive"
SLACK_SECONDS = 300


def alive_path() -> Path:
    return Path(os.environ.get("MLPLATFORM_HOME", "/tmp/mlplatform")) / ALIVE_FILE


def promise_next_sign_of_life(wait_seconds: float) -> None:
    path = alive_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{time.time() + wait_seconds + SLACK_SECONDS:.0f}\n")
    tmp.replace(path)


def rollout_controller(
    tenant: Annotated[str, typer.Argument(help="tenant name or tenant file")],
    prometheus: Annotated[str, typer.Option(envvar="MLPLATFORM_PROMETHEUS_URL",
                                            help="Prometheus URL the checks query (in-cluster Service)")],
    poll_seconds: Annotated[float, typer.Option(help="look for a new challenger this often", min=1)] = 60,
    namespace: Annotated[Optional[str], typer.Option(help="tenant namespace (default: the tenant's name)")] = None,
    state_configmap: Annotated[Optional[str], typer.Option(help="ConfigMap holding the state "
                                                           "(default <tenant>-rollout-state)")] = None,
) -> None:
    """Run the tenant's rollouts in the cluster: resume the stored one, then roll out each new challenger."""
    from mlplatform.config import load_tenant
    from mlplatform.rollout.backends import KubernetesBackend
    from mlplatform.rollout.controller import watch_rollouts
    from mlplatform.rollout.k8s_state import ConfigMapStateStore, state_configmap_name
    from mlplatform.tenants import resolve_tenant_path
    from mlplatform.workspace import Workspace

    promise_next_sign_of_life(poll_seconds)
    cfg = load_tenant(resolve_tenant_path(tenant))
    longest_wait = max(poll_seconds, cfg.rollout.interval_seconds)
    ns = namespace or cfg.name
    store = ConfigMapStateStore(ns, state_configmap or state_configmap_name(cfg.name))

    def show(state, step) -> None:  # one line per step: the pod's log is the rollout's history
        promise_next_sign_of_life(longest_wait)
        console.print(f"{step['time']}  {step['action']:<11} {state.phase:<11} {state.weight:>3}%  {step['reason']}",
                      markup=False)

    def sleep(seconds: float) -> None:
        promise_next_sign_of_life(seconds)
        time.sleep(seconds)

    watch_rollouts(cfg, Workspace.from_env(), KubernetesBackend(cfg, namespace=ns), prometheus,
                   poll_seconds=poll_seconds, store=store, on_step=show, sleep=sleep)
