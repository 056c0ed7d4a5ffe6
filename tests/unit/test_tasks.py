"""The task registry: one module per `task` value, each with the whole Task interface."""

from __future__ import annotations

import inspect

import pytest

from mlplatform.config import load_tenant
from mlplatform.tasks import TASKS, task_for
from mlplatform.tasks.base import Task
from mlplatform.workspace import Workspace
from tests.conftest import FRAUD_TENANT, REPO

SEARCH_TENANT = REPO / "examples" / "search" / "tenant.yaml"


def test_every_task_value_of_the_schema_has_a_task():
    from mlplatform.config import TenantConfig

    assert set(TASKS) == set(TenantConfig.model_fields["task"].annotation.__args__)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_a_task_has_every_member_of_the_interface(name):
    task = TASKS[name]
    assert task.name == name
    members = [m for m in dir(Task) if not m.startswith("_")] + list(Task.__annotations__)
    for member in members:
        assert hasattr(task, member), f"task {name!r} lacks {member}"
        if inspect.isfunction(getattr(Task, member, None)):
            expected = list(inspect.signature(getattr(Task, member)).parameters)[1:]
            assert list(inspect.signature(getattr(task, member)).parameters) == expected, member


def test_the_tenant_files_task_selects_it_and_an_unknown_one_names_the_known():
    assert task_for(load_tenant(FRAUD_TENANT)).name == "binary_classification"
    assert task_for(load_tenant(SEARCH_TENANT)).name == "ranking"
    cfg = load_tenant(FRAUD_TENANT).model_copy(update={"task": "regression"})
    with pytest.raises(ValueError, match=r"unknown task 'regression'; known tasks: \['binary_classification', 'ranking'\]"):
        task_for(cfg)


def test_each_task_names_its_prediction_log_columns(tmp_path):
    ws = Workspace(tmp_path)
    fraud, search = load_tenant(FRAUD_TENANT), load_tenant(SEARCH_TENANT)
    rows = task_for(fraud).prediction_log(fraud, ws, "stable")
    lists = task_for(search).prediction_log(search, ws, "stable")
    try:
        assert rows.columns == ["request_id", "row", "logged_at", "role", "model_version", "customer_id",
                                "terminal_id", "event_time", "score", "decision"]
        assert lists.columns == ["request_id", "row", "logged_at", "role", "model_version", "query", "position",
                                 "item_id", "score"]
    finally:
        rows.close()
        lists.close()
