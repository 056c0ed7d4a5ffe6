"""A table at a natural fraud rate (10 positives in 5,000 rows), scaffolded like `tenant new
--from-table`: one positive falls in the validation window. The run must say the validation rows
cannot support a decision (train record, MLflow run, register decision, version tag), and that its
rounds were chosen over several time folds instead of on that window, never collapsing to an empty
model. (The folds themselves: tests/model/test_time_folds.py; the minimum number of rounds:
tests/model/test_ray_training.py.)"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlplatform import steps
from mlplatform.config import load_tenant
from mlplatform.scaffold import scaffold_tenant

pytestmark = pytest.mark.slow

ROWS, POSITIVES = 5000, 10


def rare_positive_table(seed: int = 5) -> pd.DataFrame:
    """45 days of rows; 9 positives in the first 30 days, 1 in the last 2 (the validation window):
    the real sample of issue #18 (5,696 payments, 10 frauds) left one fraud to validate on."""
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.uniform(0, 45 * 86400, ROWS))
    label = np.zeros(ROWS, dtype=int)
    early = np.flatnonzero(seconds < 30 * 86400)
    late = np.flatnonzero(seconds > 43 * 86400)
    label[rng.choice(early, POSITIVES - 1, replace=False)] = 1
    amount = rng.gamma(2.0, 40.0, ROWS) + 300 * label  # the training positives spend more ...
    label[rng.choice(late, 1)] = 1  # ... the validation one does not: the window says little
    return pd.DataFrame({
        "amount": amount.round(2),
        "hour": rng.integers(0, 24, ROWS),
        "score": rng.normal(size=ROWS).round(4),
        "created_at": (pd.Timestamp("2024-05-01") + pd.to_timedelta(seconds, unit="s")).strftime("%Y-%m-%d %H:%M:%S"),
        "is_fraud": label,
    })


def test_too_few_positives_to_decide_are_reported(tmp_path):
    table = tmp_path / "payments.csv"
    rare_positive_table().to_csv(table, index=False)
    tenant_file = scaffold_tenant("payments", table, "is_fraud", timestamp="created_at", out_dir=tmp_path / "t")
    cfg = load_tenant(tenant_file)
    records = steps.run_all(tenant_file, tmp_path / "home", "first")

    train = records["train"]
    evidence = train["evidence"]
    assert evidence["sufficient"] is False, evidence
    assert evidence["positives"] == 1 and evidence["rows"] == train["valid_rows"]
    assert "cannot support a decision: 1 positive(s)" in evidence["message"]
    judged = evidence["metrics"]
    assert judged and all(j["low"] <= j["minimum"] <= j["high"] for j in judged.values())

    # the one-positive window chose nothing: time folds of all rows did, and the model is not empty
    selection = train["selection"]
    assert selection["rule"] == "time folds" and selection["validation_positives"] == 1
    assert all(f["window_positives"] >= 2 for f in selection["folds"])
    assert selection["rounds"] >= cfg.model.min_boost_rounds

    register = records["register"]
    assert evidence["message"] in register["decision"]
    assert register["selection"] == selection["message"]

    from mlflow import MlflowClient

    from mlplatform.registry.mlflow_registry import connect
    from mlplatform.workspace import Workspace

    client: MlflowClient = connect(Workspace.from_env(tmp_path / "home"))
    version = client.get_model_version(cfg.name, register["version"])
    assert version.tags["evidence"] == evidence["message"]
    assert version.tags["selection"] == selection["message"]
    run = client.get_run(train["run_id"])
    assert run.data.tags["evidence"] == evidence["message"] and run.data.tags["selection"] == selection["message"]
    assert int(run.data.params["best_iteration"]) + 1 == selection["rounds"]
