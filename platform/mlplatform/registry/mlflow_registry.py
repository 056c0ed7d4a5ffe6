"""MLflow: one experiment per tenant, runs with everything needed to trust a model, registered
versions tagged with lineage, and aliases moved by the promotion gate. Versions are never deleted
or overwritten; a rejected candidate stays registered with the reason as a tag.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

import mlplatform
from mlplatform.config import TenantConfig
from mlplatform.errors import UserError
from mlplatform.identity.refusal import is_refusal, refused
from mlplatform.registry import champion_eval
from mlplatform.registry.gate import Decision, evaluate_gate
from mlplatform.workspace import Workspace

CHAMPION, CHALLENGER = "champion", "challenger"


def connect(ws: Workspace) -> MlflowClient:
    """Point MLflow's fluent API and a client at the workspace's tracking store.

    mlflow.set_tracking_uri also writes MLFLOW_TRACKING_URI into os.environ, which
    Workspace.mlflow_uri reads first; left there, the next workspace in this process would
    silently use this one's database. So the variable is put back as it was.
    """
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(ws.mlflow_uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
    return MlflowClient(tracking_uri=ws.mlflow_uri)


@contextlib.contextmanager
def isolated_tracking_env() -> Iterator[None]:
    """Run pipeline steps in this process without an inherited MLFLOW_TRACKING_URI (it would win
    over the workspace's own database) and without leaking the one they set."""
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        yield
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved


# MLflow's codes for "the server or its database failed", as opposed to "no such model/alias"
# (mlflow/utils/rest_utils.py: a refused connection or a non-JSON 5xx is INTERNAL_ERROR)
UNAVAILABLE_CODES = {"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"}


class RegistryUnavailable(RuntimeError, UserError):
    """The MLflow registry (its server, or the database behind it) failed a call: retry later;
    versions are never overwritten, so re-running a step is safe."""


def unavailable(err: MlflowException) -> bool:
    return getattr(err, "error_code", None) in UNAVAILABLE_CODES


def unavailable_message(ws: Workspace, err: MlflowException) -> str:
    first = (getattr(err, "message", None) or str(err)).splitlines()[0][:300]
    return f"the MLflow registry at {ws.mlflow_uri} is unavailable ({first})"


def through_server(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def artifact_location(cfg: TenantConfig, ws: Workspace) -> str | None:
    """Where a new experiment keeps its artifacts.

    Through a tracking server: None, so the server chooses. `mlflow server` serves artifacts by
    default and then gives new experiments `mlflow-artifacts:/<id>`, which every client reads and
    writes over HTTP (mlflow/utils/server_cli_utils.py, resolve_default_artifact_root, MLflow 3.x);
    a client-chosen file:// location would put the model on the training pod's own disk.
    Without a server (SQLite, a database URL) the client writes itself: the workspace's
    mlartifacts/ folder, not ./mlruns of whatever folder the process runs from."""
    if through_server(ws.mlflow_uri):
        return None
    return (ws.artifact_root / cfg.name).as_uri()


def experiment_id(cfg: TenantConfig, ws: Workspace) -> str:
    """The tenant's experiment, created when missing (with basic auth the admin created it at
    onboarding: identity/mlflow_auth.py). A refusal is AccessDenied."""
    client = connect(ws)
    with refused("use", f"experiment {cfg.name!r}"):
        exp = client.get_experiment_by_name(cfg.name)
        if exp is not None:
            return exp.experiment_id
        location = artifact_location(cfg, ws)
        try:
            return client.create_experiment(cfg.name, artifact_location=location, tags={"tenant": cfg.name})
        except MlflowException as err:  # created concurrently
            if is_refusal(err):
                raise
            return client.get_experiment_by_name(cfg.name).experiment_id


def code_version() -> str:
    """The git commit of the code when available (dirty marked), else the package version."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return f"{sha}{'-dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return f"mlplatform-{mlplatform.__version__}"


@dataclass
class Registered:
    name: str
    version: str
    run_id: str
    aliases: list[str]
    decision: str
    passed: bool

    def to_dict(self) -> dict:
        return asdict(self)


def version_metrics(client: MlflowClient, name: str, version: str) -> dict[str, float]:
    mv = client.get_model_version(name, version)
    return dict(client.get_run(mv.run_id).data.metrics)


def champion_version(client: MlflowClient, name: str):
    """The champion's version, None when there is none; a refusal is raised (read as "no champion"
    it would make the next version champion without a gate)."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as err:
        # refused or unavailable is not "no champion": that would make the candidate champion
        if is_refusal(err) or unavailable(err):
            raise
        return None


def recorded_reason(run_metrics: dict[str, float], run_tags: dict[str, str], champion: str) -> str:
    """Why the run has no figures of champion `champion` on its own rows."""
    error = champion_eval.rescore_error(run_metrics, run_tags)
    if error is not None:
        return error
    scored = run_tags.get(champion_eval.TAG)
    if scored:
        return f"the training run scored v{scored}, but v{champion} is the champion now"
    return f"the training run did not score champion v{champion} (there was none when it trained)"


def register(cfg: TenantConfig, ws: Workspace, run_id: str, model_uri: str, lineage: dict[str, str]) -> Registered:
    """Register the run's model as a new version, tag its lineage, and apply the promotion gate.
    RegistryUnavailable when MLflow (or its database) fails on the way: nothing is promoted then
    unless the alias was already set, and re-running registers a further version.

    The first version ever becomes `champion`. Later ones become `challenger` when they pass the
    gate (absolute minimums, and no regression beyond tolerance against the champion, scored on the
    same validation rows when the training run did so: champion_eval.py).
    """
    with refused("register a version of", f"registered model {cfg.name!r}"):
        try:
            return _register(cfg, ws, run_id, model_uri, lineage)
        except MlflowException as err:
            if unavailable(err):
                raise RegistryUnavailable(f"cannot register {cfg.name!r} (run {run_id}): "
                                          f"{unavailable_message(ws, err)}; re-run the register step when it is back") from err
            raise


def _register(cfg: TenantConfig, ws: Workspace, run_id: str, model_uri: str, lineage: dict[str, str]) -> Registered:
    client = connect(ws)
    name = cfg.name
    try:
        client.get_registered_model(name)
    except MlflowException as err:
        if is_refusal(err) or unavailable(err):
            raise
        client.create_registered_model(name, tags={"tenant": name}, description=cfg.description)
    mv = mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in lineage.items()})
    version = str(mv.version)
    run = client.get_run(run_id)
    metrics = {k: v for k, v in run.data.metrics.items() if not k.startswith(champion_eval.PREFIX)}
    champ = champion_version(client, name)
    champ_metrics, basis, recorded_because = None, None, None
    if champ is not None:  # prefer the champion scored on this run's validation rows (champion_eval.py)
        champ_metrics = champion_eval.from_run(run.data.metrics, run.data.tags, champ.version)
        basis = "same validation rows"
        if champ_metrics is None:
            champ_metrics = version_metrics(client, name, champ.version)
            if champ.run_id != run_id:  # the champion's own run is the same rows by definition
                basis = "champion's own validation rows"
                recorded_because = recorded_reason(run.data.metrics, run.data.tags, str(champ.version))
    decision: Decision = evaluate_gate(metrics, champ_metrics, cfg.metrics.gates, recorded_because)
    client.set_model_version_tag(name, version, "gate", decision.summary())
    if champ_metrics:
        client.set_model_version_tag(name, version, "compared_with", f"v{champ.version}")
        client.set_model_version_tag(name, version, "compared_on", basis)
    if decision.passed:
        alias = CHAMPION if champ is None else CHALLENGER
        client.set_registered_model_alias(name, alias, version)
    else:
        client.set_model_version_tag(name, version, "rejected_reason", "; ".join(decision.reasons))
    aliases = list(client.get_model_version(name, version).aliases)
    return Registered(name, version, run_id, aliases, decision.summary(), decision.passed)
