"""train_deploy through kfp.local (SubprocessRunner, use_venv=False): the same components as on a
cluster, each a subprocess of this interpreter. The successful run is tests/e2e/test_demo.py's
(`mlplatform demo` runs this pipeline); here, the run that must stop."""

from __future__ import annotations

import sqlite3

import pytest

from tests.conftest import write_small_fraud_tenant
from mlplatform.workspace import Workspace
from mlplatform_pipelines.local import run_train_deploy

pytestmark = pytest.mark.slow


def test_failing_validation_stops_the_pipeline(tmp_path):
    # generated data has ~0.7% fraud; a tenant that demands at most 0.01% must stop at validation
    tenant = write_small_fraud_tenant(tmp_path / "fraud", **{"data.expectations.label_rate": {"min": 0, "max": 0.0001}})
    home = tmp_path / "home"
    with pytest.raises(RuntimeError):
        run_train_deploy(tenant, home, "bad", tmp_path / "kfp")
    ws = Workspace(home)
    record = ws.read_step("fraud", "bad", "validate")
    assert record["success"] is False
    assert any("expect_column_mean_to_be_between" in f for f in record["failed"])
    assert record["report"].endswith(".html") and (tmp_path / "home").exists()
    assert open(record["report"]).read().count("is_fraud") > 0  # the saved HTML report names the column
    for step in ("features", "stage", "train", "register"):
        assert not ws.step_file("fraud", "bad", step).exists(), f"{step} ran after a failed validation"
    # nothing registered: MLflow's database was never even created, or holds no model
    db = home / "mlflow.db"
    if db.exists():
        with sqlite3.connect(db) as conn:
            assert conn.execute("select count(*) from registered_models").fetchone()[0] == 0
