"""The live loop's tenant copy: short windows, fresh data for retraining, still a valid tenant; the
drift it injects comes from the tenant file (loop.drift)."""

from __future__ import annotations

import pytest
import yaml
from rich.console import Console

from mlplatform import loop_stream
from mlplatform.config import TenantConfigError, load_tenant
from mlplatform.loop import LOOP_OVERRIDES, Journal, drifted, injected_drift, loop_tenant_file, shift_args
from tests.conftest import FRAUD_TENANT, REPO

SEARCH_TENANT = REPO / "examples" / "search" / "tenant.yaml"


def test_loop_tenant_has_short_windows_and_fresh_data(tmp_path):
    path = loop_tenant_file(FRAUD_TENANT, tmp_path, {"customers": 300})
    cfg = load_tenant(path)  # still a valid tenant
    original = yaml.safe_load(FRAUD_TENANT.read_text())
    # a streaming tenant's drift window holds a simulated week of scored payments (loop_stream)
    assert cfg.drift.window_rows == cfg.drift.min_rows == loop_stream.LOOP_OVERRIDES["drift.window_rows"]
    assert cfg.features.stream.freshness_slo_seconds == loop_stream.FRESHNESS_OFF  # simulated event times
    assert load_tenant(loop_tenant_file(SEARCH_TENANT, tmp_path, {})).drift.window_rows == LOOP_OVERRIDES["drift.window_rows"]
    assert cfg.rollout.step_weights == LOOP_OVERRIDES["rollout.step_weights"]
    assert cfg.rollout.shadow_seconds == LOOP_OVERRIDES["rollout.shadow_seconds"]
    args = cfg.data.generator_args
    assert args["seed"] == original["data"]["generator_args"]["seed"] + 1  # retraining sees new data
    assert args["customers"] == 300
    assert "spending_shift" not in args  # no shift unless asked
    # the production tenant file is untouched
    assert yaml.safe_load(FRAUD_TENANT.read_text()) == original


def test_loop_fresh_data_lives_through_the_declared_shift(tmp_path):
    drift = load_tenant(FRAUD_TENANT).loop.drift
    assert (drift.column, drift.factor, drift.max) == ("amount", 4.0, 5000.0)
    assert load_tenant(SEARCH_TENANT).loop.drift is None
    args = load_tenant(loop_tenant_file(FRAUD_TENANT, tmp_path, {"days": 40}, drift)).data.generator_args
    assert args["spending_shift"] == drift.factor  # the same shift the traffic gets, through the fraud generator
    assert args["shift_day"] == 20  # half the fresh days are after it: enough to train and to validate on
    assert shift_args(drift, {"days": 61}) == {"spending_shift": 4.0, "shift_day": 30}


def test_injected_drift_multiplies_the_declared_column_and_caps_it():
    drift = load_tenant(FRAUD_TENANT).loop.drift
    assert drifted({"amount": 12.345, "customer_id": 3}, drift) == {"amount": 49.38, "customer_id": 3}
    assert drifted({"amount": 4000.0}, drift) == {"amount": 5000.0}
    assert drifted({"customer_id": 3}, drift) == {"customer_id": 3}  # a row without the column is sent as is
    uncapped = drift.model_copy(update={"max": None})
    assert drifted({"amount": 4000.0}, uncapped) == {"amount": 16000.0}


def test_a_tenant_without_loop_drift_gets_a_clear_error():
    with pytest.raises(RuntimeError, match="declares no loop.drift"):
        injected_drift(load_tenant(SEARCH_TENANT))


def test_loop_drift_is_checked_against_the_tenant(tmp_path):
    raw = yaml.safe_load(FRAUD_TENANT.read_text())
    raw["loop"]["drift"]["column"] = "amount_eur"
    (tmp_path / "tenant.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(TenantConfigError, match="loop.drift.column: 'amount_eur' is not a request field"):
        load_tenant(tmp_path / "tenant.yaml")
    raw = yaml.safe_load(FRAUD_TENANT.read_text())
    raw["loop"]["drift"]["generator"]["factor"] = "spend_shift"  # not an argument of the fraud generator
    (tmp_path / "tenant.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(TenantConfigError, match="loop.drift.generator: fraud_tenant.data:generate cannot be called"):
        load_tenant(tmp_path / "tenant.yaml")


def test_journal_records_steps_in_order(tmp_path):
    log = Journal(Console(file=open(tmp_path / "out.txt", "w")))
    log("first", value=1)
    log("second")
    assert [s["event"] for s in log.steps] == ["first", "second"]
    assert log.steps[0]["value"] == 1 and log.steps[0]["elapsed_s"] <= log.steps[1]["elapsed_s"]
