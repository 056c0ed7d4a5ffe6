"""What the features step hands to training: the point-in-time-joined rows, and how they travel.

The join runs where the offline tables are (the features step, which also materialises the online
store), so no other process reads a path that Feast's registry names. The result is one folder:

    <folder>/frame.parquet       labelled events with their features (what the trainer splits)
    <folder>/events.parquet      ranking: the labelled events before the join (retrieval recall)
    <folder>/retrieval_index/    ranking: the candidate-generation index built from the same snapshot
    <folder>/training_set.json   as_of (the newest event: what "labelled by now" meant)

Between pipeline tasks the folder is a KFP `Dataset` artifact. Training itself may run elsewhere
(a KubeRay RayJob is not a KFP task, so artifacts do not reach it), so the stage step logs the
folder with the model's MLflow run and training reads it back from there (`log` / `download`): the
RayJob already needs MLflow for its output, its input comes the same way, and the model version
keeps the exact rows it was trained on.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ARTIFACT = "training_set"  # the run's artifact folder holding frame/events/meta
INDEX = "retrieval_index"  # subfolder of the training set; the run's artifact of that name (ranking/index.py)
_META = "training_set.json"


@dataclass
class TrainingSet:
    frame: pd.DataFrame
    as_of: pd.Timestamp
    events: pd.DataFrame | None = None  # ranking only
    index_dir: Path | None = None  # ranking with retrieval only

    def save(self, folder: Path) -> Path:
        """Write the set into `folder` (replaced as a whole; an index already there is kept)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.frame.to_parquet(folder / "frame.parquet", index=False)
        if self.events is not None:
            self.events.to_parquet(folder / "events.parquet", index=False)
        if self.index_dir is not None and Path(self.index_dir).resolve() != (folder / INDEX).resolve():
            shutil.rmtree(folder / INDEX, ignore_errors=True)
            shutil.copytree(self.index_dir, folder / INDEX)
        (folder / _META).write_text(json.dumps({"as_of": self.as_of.isoformat(), "rows": len(self.frame)}))
        return folder

    @classmethod
    def load(cls, folder: Path) -> "TrainingSet":
        folder = Path(folder)
        if not (folder / _META).is_file():
            raise FileNotFoundError(f"{folder} holds no training set ({_META} missing); did the features step run?")
        meta = json.loads((folder / _META).read_text())
        events = folder / "events.parquet"
        return cls(frame=pd.read_parquet(folder / "frame.parquet"), as_of=pd.Timestamp(meta["as_of"]),
                   events=pd.read_parquet(events) if events.exists() else None,
                   index_dir=(folder / INDEX) if (folder / INDEX).is_dir() else None)


def log(folder: Path) -> None:
    """Log the set with the active MLflow run: rows under `training_set/`, the index (if any) under
    `retrieval_index/`, where the predictor fetches it (ranking/index.py)."""
    import mlflow

    folder = Path(folder)
    for item in sorted(folder.iterdir()):
        if item.name == INDEX:
            mlflow.log_artifacts(str(item), INDEX)
        elif item.is_file():
            mlflow.log_artifact(str(item), ARTIFACT)


def download(tracking_uri: str, run_id: str) -> TrainingSet:
    """The set logged with run `run_id`, downloaded into new scratch space (TMPDIR)."""
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from mlplatform.identity.refusal import is_refusal, refused

    scratch = Path(tempfile.mkdtemp(prefix="mlplatform-training-set-"))
    with refused("read the artifacts of", f"MLflow run {run_id}"):  # another tenant's run: AccessDenied
        try:
            folder = Path(download_artifacts(run_id=run_id, artifact_path=ARTIFACT, dst_path=str(scratch),
                                             tracking_uri=tracking_uri))
            if any(f.path == INDEX for f in MlflowClient(tracking_uri).list_artifacts(run_id)):
                download_artifacts(run_id=run_id, artifact_path=INDEX, dst_path=str(folder),
                                   tracking_uri=tracking_uri)
        except MlflowException as err:
            if is_refusal(err):
                raise
            raise FileNotFoundError(f"MLflow run {run_id}: cannot download its {ARTIFACT!r}: {err}") from None
    return TrainingSet.load(folder)
