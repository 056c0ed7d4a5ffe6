"""The prediction log in PostgreSQL (MLPLATFORM_PREDICTION_LOG; monitoring/prediction_sinks.py), on
this machine's database: predictors of two roles append to the tenant's table, and a reader with a
workspace of its own (the quality job's pod) sees every row of both, by role and by time, while
another tenant's table stays apart; nothing is written to either side's disk.

The table carries a uuid and is dropped afterwards. Skipped locally without PostgreSQL; required
under CI=true."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from mlplatform import services
from mlplatform.config import slug
from mlplatform.monitoring.prediction_log import PredictionLog, read_predictions
from mlplatform.workspace import Workspace
from tests.conftest import require

pytestmark = [pytest.mark.service]


@pytest.fixture
def database(monkeypatch):
    url = services.Services.from_env().postgres
    require(services.reachable(services.postgres_address(url)), f"PostgreSQL is not reachable ({url})")
    monkeypatch.setenv(services.PREDICTION_LOG, url)  # as the chart passes it to the predictor and the job
    names = [f"pl{uuid.uuid4().hex[:8]}", None]
    names[1] = f"card{names[0]}"  # one name a suffix of the other
    yield url, names
    from sqlalchemy import create_engine, text

    with create_engine(url).begin() as conn:
        for name in names:
            conn.execute(text(f"DROP TABLE IF EXISTS prediction_log_{slug(name)}"))


def record(log: PredictionLog, rid: str, customers: list[int]) -> None:
    n = len(customers)
    log.record(rid, "7", {"customer_id": customers}, np.linspace(0.1, 0.9, n), np.arange(n) % 2 == 0)


def test_two_roles_append_and_a_reader_elsewhere_sees_every_row(database, tmp_path):
    _, (tenant, other) = database
    stable = PredictionLog(Workspace(tmp_path / "stable-pod"), tenant, "stable", ["customer_id"], flush_seconds=3600)
    shadow = PredictionLog(Workspace(tmp_path / "shadow-pod"), tenant, "shadow", ["customer_id"], flush_seconds=3600)
    theirs = PredictionLog(Workspace(tmp_path / "their-pod"), other, "stable", ["customer_id"], flush_seconds=3600)
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    record(stable, "r1", [1, 2, 3])
    record(shadow, "r1", [1, 2, 3])  # the mirrored request: the same id
    record(theirs, "x1", [9])
    assert stable.flush() == f"table prediction_log_{slug(tenant)}"
    shadow.flush(), theirs.flush()
    record(stable, "r2", [4])
    stable.close(), shadow.close(), theirs.close()

    job = Workspace(tmp_path / "quality-pod")  # its own empty workspace
    rows = read_predictions(job, tenant)
    assert len(rows) == 7 and set(rows["role"]) == {"stable", "shadow"}
    stable_rows = read_predictions(job, tenant, "stable")
    assert stable_rows["request_id"].tolist() == ["r1", "r1", "r1", "r2"]
    assert stable_rows["customer_id"].tolist() == [1, 2, 3, 4] and stable_rows["model_version"].eq("7").all()
    assert stable_rows["logged_at"].dt.tz is not None and (stable_rows["logged_at"] >= before).all()
    np.testing.assert_allclose(stable_rows["score"].head(3), [0.1, 0.5, 0.9])
    assert read_predictions(job, tenant, since=datetime.now(timezone.utc) + timedelta(hours=1)).empty
    assert read_predictions(job, other)["request_id"].tolist() == ["x1"]
    assert read_predictions(job, f"none{tenant}").empty  # no table yet: nothing logged, not an error
    assert not list(tmp_path.rglob("*.parquet"))
