"""The live loop's tenant copy: short windows, fresh data for retraining, still a valid tenant."""

from __future__ import annotations

import yaml
from rich.console import Console

from mlplatform.config import load_tenant
from mlplatform.loop import DRIFT_FACTOR, LOOP_OVERRIDES, Journal, loop_tenant_file, simulates_shift
from tests.conftest import FRAUD_TENANT, REPO


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
    assert "spending_shift" not in args  # no shift unless asked
    # the production tenant file is untouched
    assert yaml.safe_load(FRAUD_TENANT.read_text()) == original


def test_loop_fresh_data_lives_through_the_injected_spending_shift(tmp_path):
    cfg = load_tenant(FRAUD_TENANT)
    assert simulates_shift(cfg)
    assert not simulates_shift(load_tenant(REPO / "examples" / "search" / "tenant.yaml"))
    args = load_tenant(loop_tenant_file(FRAUD_TENANT, tmp_path, {"days": 40}, shift=True)).data.generator_args
    assert args["spending_shift"] == DRIFT_FACTOR  # the same shift the traffic gets
    assert args["shift_day"] == 20  # half the fresh days are after it: enough to train and to validate on


def test_journal_records_steps_in_order(tmp_path):
    log = Journal(Console(file=open(tmp_path / "out.txt", "w")))
    log("first", value=1)
    log("second")
    assert [s["event"] for s in log.steps] == ["first", "second"]
    assert log.steps[0]["value"] == 1 and log.steps[0]["elapsed_s"] <= log.steps[1]["elapsed_s"]
