"""What a tenant plugs into the platform by dotted path in its tenant file, as `typing.Protocol`s.

One section per contract.
"""

from __future__ import annotations

# --- trainer ---
# `model.trainer` names an object ("package.module:object") that trains one model family and
# serves it back: the training step calls `train` and `log`, the champion evaluation and the
# predictors call `load` and `predict`. The platform's own: training/xgboost_trainer.py and
# training/lightgbm_ranker.py (`...:trainer`). Versions registered before trainers were objects name
# a module function in their `trainer` tag (`mlplatform.training.xgboost_trainer:train`);
# training/trainers.py adapts such a module, so they still load and serve.

from pathlib import Path
from typing import Any, Protocol, runtime_checkable


class Trained(Protocol):
    """What `Trainer.train` returns; the training step logs all of it to MLflow."""

    model: Any
    params: dict[str, Any]  # the library's parameters, logged as run params
    best_iteration: int
    importance: dict[str, float]  # per model input; empty: no importance plot


@runtime_checkable
class Trainer(Protocol):
    def train(self, cfg: Any, train_df: Any, valid_df: Any, storage: Path | None = None) -> Trained:
        """Fit on `train_df` (early stopping on `valid_df`); `storage`: a folder for Ray's files."""

    def predict(self, model: Any, frame: Any) -> Any:
        """Scores (1-D, higher = more positive / ranked first) of a DataFrame's rows; the model
        reads its own input columns from the frame."""

    def load(self, uri: str) -> Any:
        """The model logged by `log`, from an MLflow model URI (`models:/name/version`)."""

    def log(self, model: Any, signature: Any, input_example: Any) -> Any:
        """Log the model to the active MLflow run under the artifact path `model`; returns MLflow's
        ModelInfo (its `model_uri` is what gets registered)."""


@runtime_checkable
class MatrixScorer(Protocol):
    """Optional, besides Trainer: scores a float matrix (rows x the model's inputs, in its order)
    without a DataFrame, the predictor's pandas-free path (serving/fast_path.py)."""

    def predict_matrix(self, model: Any, x: Any) -> Any: ...
