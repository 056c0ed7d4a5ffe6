"""The pandas-free request path of the row predictor (serving/predictor.py).

Per-request cost (a one-row fraud request is under 1 ms of Python, half of it Feast): no pandas on
the request path when the tenant's transform accepts columns and the model can be scored on a
matrix (`matrix_scorer`). A request transform that sets the attribute `columnar = True` takes and
returns a dict {column: 1-D numpy array} (datetimes as UTC datetime64[ns]) as well as a DataFrame
(what training passes). pandas (two frames built, the model's columns selected) was more than half
of a one-row request. Otherwise the transform and the trainer get a DataFrame. Either way the
model's inputs end as one float64 matrix in the model's feature order, which the drift histograms
bin.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd

from mlplatform.contracts import Trainer
from mlplatform.training.trainers import matrix_scorer_of, model_features

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
# validated request values (mlplatform.serving.inputs) -> numpy dtype of their column
COLUMN_DTYPES = {"int": np.int64, "float": np.float64, "bool": np.bool_, "str": object}


def utc_datetime64(values: list[datetime]) -> np.ndarray:
    """tz-aware datetimes as UTC datetime64[ns]; built from integers because pd.to_datetime on
    Python objects costs 3-4x more per request."""
    return np.array([(v - _EPOCH) // _MICROSECOND * 1000 for v in values], dtype="datetime64[ns]")


def utc_index(values: list[datetime]) -> pd.DatetimeIndex:
    """tz-aware UTC datetimes as datetime64[ns, UTC], the dtype of the training data."""
    return pd.DatetimeIndex(utc_datetime64(values)).tz_localize("UTC")


def matrix_scorer(trainer: Trainer, model: Any, features: list[str]) -> Callable[[np.ndarray], Any] | None:
    """A scorer of the model's input matrix (rows x `features`, float64) that skips the DataFrame
    `trainer.predict` takes, or None: for a trainer with the optional `predict_matrix(model, x)`
    (mlplatform.contracts.MatrixScorer; xgboost_trainer has it) and a model whose inputs are
    `features` in that order. Building the frame and selecting its columns was ~0.3 ms of a one-row
    request. `same_scores` checks it against `trainer.predict` before it is used."""
    scorer = matrix_scorer_of(trainer)
    if scorer is None or model_features(model, []) != list(features):
        return None
    return lambda x: scorer.predict_matrix(model, x)


def same_scores(score_matrix: Callable, predict: Callable, model: Any, features: list[str]) -> bool:
    """The matrix scorer gives the trainer's scores (probe rows: zeros, ones, missing values)."""
    probe = np.array([[0.0] * len(features), [1.0] * len(features), [np.nan] * len(features)])
    expected = np.asarray(predict(model, pd.DataFrame(probe, columns=features)), dtype=np.float64)
    return np.array_equal(np.asarray(score_matrix(probe), dtype=np.float64), expected, equal_nan=True)
