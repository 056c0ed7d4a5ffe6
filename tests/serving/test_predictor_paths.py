"""The predictor's per-request paths, in process on the trained workspace: the pandas-free path
(columnar transform, xgboost on the input matrix) gives exactly what the DataFrame path and the
trainer's own predict give, and the drift histograms and prediction log get the same inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlplatform.config import load_tenant
from mlplatform.monitoring.drift import SCORE, DriftReference
from mlplatform.monitoring.serving import PredictionMonitor
from mlplatform.serving.fast_path import matrix_scorer
from mlplatform.serving.predictor import TenantPredictor
from mlplatform.serving.smoke import newest_rows, v1_body
from mlplatform.training.trainers import resolve_trainer
from mlplatform.workspace import Workspace


@pytest.fixture(scope="module")
def loaded(trained_fraud):
    cfg, ws = load_tenant(trained_fraud.tenant_file), Workspace(trained_fraud.home)
    pred = TenantPredictor(cfg, ws)
    pred.load()
    rows, _ = newest_rows(cfg, ws, 40)
    yield pred, rows
    if pred.monitor is not None and pred.monitor.log is not None:
        pred.monitor.log.close()


def test_the_fast_paths_are_on_for_the_fraud_tenant(loaded):
    pred, _ = loaded
    assert pred._columnar and pred._score_matrix is not None


def test_columnar_and_matrix_scoring_equal_the_dataframe_path(loaded):
    pred, rows = loaded
    cols = pred.schema.from_v1(v1_body(rows))
    fast_scores, fast_inputs = pred.score_inputs(cols)
    columnar, scorer = pred._columnar, pred._score_matrix
    try:  # the general path: a DataFrame through the transform, the trainer's predict on the frame
        pred._columnar, pred._score_matrix = False, None
        slow_scores, slow_inputs = pred.score_inputs(cols)
    finally:
        pred._columnar, pred._score_matrix = columnar, scorer
    np.testing.assert_array_equal(fast_scores, slow_scores)
    np.testing.assert_array_equal(fast_inputs, slow_inputs)
    assert fast_inputs.shape == (len(rows), len(pred.features))


def test_matrix_scorer_is_the_xgboost_trainers_predict(loaded):
    pred, _ = loaded
    trainer = resolve_trainer(pred.cfg.model.trainer)
    x = np.random.default_rng(0).uniform(0, 50, (64, len(pred.features)))
    x[::7, 3] = np.nan
    scorer = matrix_scorer(trainer, pred.model, pred.features)
    expected = trainer.predict(pred.model, pd.DataFrame(x, columns=pred.features))
    np.testing.assert_array_equal(scorer(x), expected)
    assert matrix_scorer(trainer, pred.model, pred.features[::-1]) is None  # another input order: no


def test_monitor_takes_inputs_in_any_column_order():
    """PredictionMonitor.matrix puts the inputs (named columns) in the reference's order."""
    rng = np.random.default_rng(0)
    data = {"a": rng.normal(size=500), "b": rng.uniform(size=500), "c": rng.exponential(size=500),
            SCORE: rng.uniform(size=500)}
    ref = DriftReference.build(data, bins=5)
    monitor = PredictionMonitor({"tenant": "t", "model": "t", "version": "1", "role": "stable"}, ref, None)
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])  # columns c, a, b
    out = monitor.matrix(x, ["c", "a", "b"])
    names = list(ref.names)
    for j, name in enumerate(["c", "a", "b"]):
        np.testing.assert_array_equal(out[:, names.index(name)], x[:, j])
    monitor.observe(x, ["c", "a", "b"], np.array([0.1, 0.9]), np.array([False, True]), {})
    assert monitor.hist.total_rows == 2
