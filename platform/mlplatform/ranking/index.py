"""The retrieval index of a ranking tenant: built by the features step into the training set,
logged with the training run, fetched by the predictor from MLflow.

The predictor never reads the folder the features step wrote: on a cluster that folder lives in
another pod. The index travels inside the training set (training/training_set.py), which the stage
step logs with the model's MLflow run, the index as `retrieval_index/`; so the registered version
carries the index it was trained with, and the predictor downloads exactly that into scratch space
(TMPDIR; in a pod, the emptyDir mounted on /tmp).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlplatform.config import TenantConfig
from mlplatform.training.training_set import INDEX as ARTIFACT
from mlplatform.workspace import Workspace


def built_dir(cfg: TenantConfig, ws: Workspace) -> Path:
    """Where the features step builds the index: inside this workspace's training set folder."""
    return ws.training_set_dir(cfg.name) / ARTIFACT


def fetch(ws: Workspace, run_id: str, name: str) -> Path:
    """The index logged with training run `run_id`, downloaded into a new scratch folder.
    FileNotFoundError when the run has none (a version trained before indexes were logged)."""
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    from mlplatform.registry.mlflow_registry import connect

    client = connect(ws)
    if not any(f.path == ARTIFACT for f in client.list_artifacts(run_id)):
        raise FileNotFoundError(f"training run {run_id} has no {ARTIFACT!r} artifact; retrain to log one")
    scratch = Path(tempfile.mkdtemp(prefix=f"mlplatform-{name}-index-"))
    try:
        return Path(download_artifacts(run_id=run_id, artifact_path=ARTIFACT, dst_path=str(scratch),
                                       tracking_uri=ws.mlflow_uri))
    except MlflowException as err:
        raise FileNotFoundError(f"training run {run_id}: cannot download {ARTIFACT!r}: {err}") from None

