"""The trainer a dotted path names (`model.trainer`, a registered version's `trainer` tag), as a
`mlplatform.contracts.Trainer`.

A path to an object with train/predict/load/log is the trainer. A path to a module function is how
trainers were named before they were objects (`mlplatform.training.xgboost_trainer:train`, still
the tag of versions registered then): that module's `train`, `predict`, `load_model`, `log_model`
and optional `predict_matrix` are adapted, so those versions still load and serve.
"""

from __future__ import annotations

import inspect
import sys
from types import ModuleType
from typing import Any

from mlplatform.contracts import MatrixScorer, Trainer
from mlplatform.plugins import resolve


class ModuleTrainer:
    """A trainer module of the old kind (module functions) as a Trainer."""

    def __init__(self, module: ModuleType, train: Any):
        self.module = module
        self.train = train
        self.predict = module.predict
        self.load = module.load_model
        self.log = getattr(module, "log_model", None)
        if hasattr(module, "predict_matrix"):
            self.predict_matrix = module.predict_matrix

    def __repr__(self) -> str:
        return f"ModuleTrainer({self.module.__name__})"


def resolve_trainer(dotted: str) -> Trainer:
    """The Trainer `dotted` names. Raises ImportError naming the path and what is missing."""
    obj = resolve(dotted)
    if isinstance(obj, Trainer):
        return obj
    if inspect.isfunction(obj):
        module = sys.modules[obj.__module__]
        missing = [m for m in ("predict", "load_model") if not hasattr(module, m)]
        if not missing:
            return ModuleTrainer(module, obj)  # type: ignore[return-value]
        raise ImportError(f"{dotted!r} is a function, and its module {module.__name__!r} lacks {missing} "
                          f"(a trainer is an object with train, predict, load and log: mlplatform.contracts.Trainer)")
    missing = [m for m in ("train", "predict", "load", "log") if not callable(getattr(obj, m, None))]
    raise ImportError(f"{dotted!r} is not a trainer: it lacks {missing} (mlplatform.contracts.Trainer)")


def matrix_scorer_of(trainer: Trainer) -> MatrixScorer | None:
    """The trainer's optional matrix scorer (mlplatform.contracts.MatrixScorer), or None."""
    return trainer if isinstance(trainer, MatrixScorer) else None


def model_features(model: Any, default: list[str]) -> list[str]:
    """The inputs a loaded model was trained on (xgboost: feature_names; lightgbm: feature_name())."""
    names = getattr(model, "feature_names", None)
    if names is None and callable(getattr(model, "feature_name", None)):
        names = model.feature_name()
    return list(names or default)
