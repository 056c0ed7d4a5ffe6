"""Ranking feedback beside a database prediction log (monitoring/feedback.py): where
MLPLATFORM_PREDICTION_LOG names PostgreSQL (a cluster), the served lists and the clicks are tables
of the tenant's schema, and the quality job in a pod with an empty workspace of its own computes the
same click NDCG as the hand-computed case of tests/monitoring/test_search_quality.py. Bad rows in the
table are refused by name. A private schema per test on this machine's PostgreSQL; required under
CI=true."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from mlplatform import services
from mlplatform.config import load_tenant
from mlplatform.monitoring.feedback import FeedbackError, feedback_dir, read_feedback, write_feedback
from mlplatform.tasks import task_for
from mlplatform.workspace import Workspace
from tests.conftest import require
from tests.monitoring.test_search_quality import SEARCH_TENANT, T0, _feedback, _log

pytestmark = [pytest.mark.service]


@pytest.fixture
def database(monkeypatch):
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = services.Services.from_env().postgres
    require(services.reachable(services.postgres_address(url)), f"PostgreSQL is not reachable ({url})")
    schema = f"fb_{uuid.uuid4().hex[:8]}"  # as the tenant's own schema is on a cluster
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    monkeypatch.setenv(services.PREDICTION_LOG, scoped.render_as_string(hide_password=False))
    yield schema, engine
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def test_clicks_in_the_feedback_table_give_the_hand_computed_quality_in_another_pod(database, tmp_path):
    predictor, frontend, job = (Workspace(tmp_path / p) for p in ("predictor-pod", "frontend", "quality-pod"))
    _log(predictor, {"a": ("q", [1, 2, 3]), "b": ("q", [1, 2, 3]), "c": ("z", [7, 8]), "d": ("q", [1, 2, 3]),
                     "e": ("q", [3, 2, 1])})
    first = write_feedback(frontend, "search", _feedback([("a", 1, 1, 0), ("a", 2, 2, 1), ("a", 3, 3, 0),
                                                          ("c", 7, 1, 0), ("c", 8, 2, 0), ("e", 3, 2, 1),
                                                          ("nosuch", 1, 1, 1)], T0 + timedelta(minutes=5)))
    write_feedback(frontend, "search", _feedback([("b", 1, 1, 1), ("b", 3, 3, 1)], T0 + timedelta(hours=2)))
    assert first == "table feedback_search"
    assert not list(tmp_path.rglob("*.parquet")) and not feedback_dir(frontend, "search").exists()

    cfg = load_tenant(SEARCH_TENANT)
    rec = task_for(cfg).quality_job(cfg, job, as_of=datetime.now(timezone.utc) + timedelta(days=1))
    assert rec["predictions"] == 5 and rec["labelled"] == 3
    assert rec["unmatched_feedback"] == 1 and rec["position_mismatch"] == 1
    expected = (3 + 15 / math.log2(3) + 15 / 2) / (15 + 15 / math.log2(3) + 3 / 2)
    assert rec["versions"]["1"]["ndcg_at_10"] == pytest.approx(expected) == pytest.approx(0.768910, abs=1e-6)
    # `as_of`: clicks that happen later wait
    assert len(read_feedback(job, "search", as_of=T0 + timedelta(minutes=10))) == 7


def test_a_bad_row_in_the_feedback_table_is_refused_naming_the_table(database, tmp_path):
    from sqlalchemy import text

    schema, engine = database
    write_feedback(Workspace(tmp_path), "search", _feedback([("a", 1, 1, 1)], T0))
    with engine.begin() as conn:  # a frontend that writes the table directly, wrongly
        conn.execute(text(f'INSERT INTO "{schema}".feedback_search (request_id, "row", item_id, position, clicked, at) '
                          "VALUES ('b', 0, 2, 1, 3, now())"))
    with pytest.raises(FeedbackError, match="feedback table feedback_search: column 'clicked' must be 0 or 1"):
        read_feedback(Workspace(tmp_path / "job"), "search")
