"""The live loop's tenant copy: short windows, fresh data for retraining, still a valid tenant."""

from __future__ import annotations

import yaml
from rich.console import Console

from mlplatform.config import load_tenant
from mlplatform.loop import LOOP_OVERRIDES, Journal, loop_tenant_file
from tests.conftest import FRAUD_TENANT


def test_loop_tenant_has_short_windows_and_fresh_data(tmp_path):
    path = loop_tenant_file(FRAUD_TENANT, tmp_path, {"customers": 300})
    cfg = load_tenant(path)  # still a valid tenant
    original = yaml.safe_load(FRAUD_TENANT.read_text())
    assert cfg.drift.window_rows == LOOP_OVERRIDES["drift.window_rows"]
    assert cfg.rollout.step_weights == LOOP_OVERRIDES["rollout.step_weights"]
    assert cfg.rollout.shadow_seconds == LOOP_OVERRIDES["rollout.shadow_seconds"]
    args = cfg.data.generator_args
    assert args["seed"] == original["data"]["generator_args"]["seed"] + 1  # retraining sees new data
    assert args["customers"] == 300
    # the production tenant file is untouched
    assert yaml.safe_load(FRAUD_TENANT.read_text()) == original


def test_journal_records_steps_in_order(tmp_path):
    log = Journal(Console(file=open(tmp_path / "out.txt", "w")))
    log("first", value=1)
    log("second")
    assert [s["event"] for s in log.steps] == ["first", "second"]
    assert log.steps[0]["value"] == 1 and log.steps[0]["elapsed_s"] <= log.steps[1]["elapsed_s"]
