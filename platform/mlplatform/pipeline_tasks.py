"""What each KFP task of `train_deploy` runs: its step (mlplatform.steps) between the task's input
and output artifacts. The components (pipelines/mlplatform_pipelines/components.py) only call these.

Every task is its own pod on a cluster, with nothing shared but what KFP hands over, so a task
fills a workspace of its own (scratch space, TMPDIR: KFP's executor needs /tmp writable anyway)
from its input artifacts, runs the step, and copies what the next tasks need to its output
artifacts:

    ingest   -> snapshot (Dataset: raw partitions and tables), its record (sha256: lineage)
    validate <- snapshot; -> report (HTML, also when the batch fails), its record (success)
    features <- snapshot, validate's record; -> training_set (Dataset: training/training_set.py)
                (and, through Feast: the SQL registry, the online store)
    stage    <- training_set, report, records; -> the id of the MLflow run holding them
    train    <- that id (embedded: trains here; cluster: a RayJob trains from the same id)
    register <- train's record (the model's URI), ingest's record

With `home` set (kfp.local: the demo's workspace) the task uses that folder instead, which in
embedded mode also holds the zero-setup stores (SQLite, files); copying the artifacts in and out
still happens, so the hand-offs are the same ones.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mlplatform import steps


def task_home(home: str) -> str:
    """The task's workspace: `home`, else $MLPLATFORM_HOME, else a new folder in scratch space."""
    return home or os.environ.get("MLPLATFORM_HOME") or tempfile.mkdtemp(prefix="mlplatform-task-")


def tenant_file(tenant: str) -> str:
    """The tenant file a task reads: the YAML text the pipeline run was given (what the cluster's
    retrain jobs pass, from the tenant ConfigMap), written to scratch space; or a name or path
    (tenants.resolve_tenant_path: files on this machine, the examples in the image)."""
    if "\n" in tenant:  # a YAML document, not a name or path
        path = Path(tempfile.mkdtemp(prefix="mlplatform-tenant-")) / "tenant.yaml"
        path.write_text(tenant)
        return str(path)
    from mlplatform.tenants import resolve_tenant_path

    return str(resolve_tenant_path(tenant))


def put(src: Path, artifact_path: str) -> None:
    """Copy a folder or file of the workspace to an output artifact's local path."""
    dest = Path(artifact_path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if Path(src).is_dir():
        shutil.copytree(src, dest, dirs_exist_ok=True)
    else:
        shutil.copyfile(src, dest)


def take(artifact_path: str, dest: Path) -> Path:
    """Replace a workspace folder with a copy of an input artifact's folder."""
    src, dest = Path(artifact_path), Path(dest)
    if not src.is_dir():
        raise FileNotFoundError(f"input artifact {src} is not a folder: did the upstream task write it?")
    if dest.exists() and dest.resolve() == src.resolve():
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest)
    return dest


def _tenant_name(path: str) -> str:
    from mlplatform.config import load_tenant

    return load_tenant(path).name


def ingest(tenant: str, home: str, run_id: str, snapshot_out: str) -> dict[str, Any]:
    from mlplatform.workspace import Workspace

    path, home = tenant_file(tenant), task_home(home)
    record = steps.ingest(path, home, run_id)
    put(Workspace(home).raw_dir(_tenant_name(path)), snapshot_out)
    return record


def validate(tenant: str, home: str, run_id: str, snapshot_in: str, report_out: str) -> dict[str, Any]:
    """Raises ValidationFailed after copying its report to `report_out` (the report travels with the
    failed task, for the person who reads why)."""
    from mlplatform.validation.gate import ValidationFailed
    from mlplatform.workspace import Workspace

    path, home = tenant_file(tenant), task_home(home)
    take(snapshot_in, Workspace(home).raw_dir(_tenant_name(path)))
    try:
        record = steps.validate(path, home, run_id)
    except ValidationFailed as failed:
        put(Path(failed.result.report), report_out)
        raise
    put(Path(record["report"]), report_out)
    return record


def features(tenant: str, home: str, run_id: str, validation: dict[str, Any], snapshot_in: str,
             training_set_out: str) -> dict[str, Any]:
    from mlplatform.workspace import Workspace

    path, home = tenant_file(tenant), task_home(home)
    name = _tenant_name(path)
    take(snapshot_in, Workspace(home).raw_dir(name))
    record = steps.features(path, home, run_id, validation)
    put(Workspace(home).training_set_dir(name), training_set_out)
    return record


def stage(tenant: str, home: str, run_id: str, snapshot: dict[str, Any], validation: dict[str, Any],
          training_set_in: str, report_in: str) -> dict[str, Any]:
    from mlplatform.workspace import Workspace

    path, home = tenant_file(tenant), task_home(home)
    take(training_set_in, Workspace(home).training_set_dir(_tenant_name(path)))
    return steps.stage(path, home, run_id, snapshot, validation, report=report_in)


def train(tenant: str, home: str, mode: str, staged: dict[str, Any]) -> dict[str, Any]:
    """Embedded: train in this process. Cluster: a KubeRay RayJob trains from the staged run
    (training/cluster.py), and its record is read back from that run."""
    if mode == "cluster":
        from mlplatform.training.cluster import run_training_rayjob

        return run_training_rayjob(tenant_file(tenant), staged["mlflow_run_id"])
    return steps.train(task_home(home), staged["mlflow_run_id"])


def register(tenant: str, home: str, run_id: str, snapshot: dict[str, Any], trained: dict[str, Any]) -> dict[str, Any]:
    return steps.register(tenant_file(tenant), task_home(home), run_id, snapshot, trained)
