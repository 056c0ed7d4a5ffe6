"""The Great Expectations gate on fraud data: a clean batch passes with an HTML report; each kind of
corruption fails and names the broken expectation; in the pipeline, a failing batch stops everything
downstream and nothing is registered."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fraud_tenant.data import simulate

from mlplatform import steps
from mlplatform.config import load_tenant
from mlplatform.validation.gate import ValidationFailed, validate
from mlplatform.workspace import Workspace
from tests.conftest import FRAUD_TENANT, write_small_fraud_tenant

FAILED_RE = re.compile(r"^(expect_\w+)\((?:column='([^']*)')?")


@pytest.fixture(scope="module")
def cfg():
    return load_tenant(FRAUD_TENANT)


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    df = simulate(customers=200, terminals=400, days=20, seed=7)
    assert 0.001 < df["is_fraud"].mean() < 0.03  # the premise: a realistic batch within the tenant's bounds
    return df


def failed_expectations(result) -> set[tuple[str, str | None]]:
    out = set()
    for line in result.failed:
        m = FAILED_RE.match(line)
        assert m, f"unexpected failure line format: {line}"
        out.add((m.group(1), m.group(2)))
    return out


def test_clean_batch_passes_with_an_html_report(cfg, clean, tmp_path):
    result = validate(cfg, clean, tmp_path / "reports")
    assert result.success, result.message()
    assert result.failed == []
    assert result.rows == len(clean)
    # row count + per column (exist, type, not-null, ...) + label rate: every declared check ran
    assert result.evaluated >= 1 + 3 * len(cfg.data.columns) + 1
    report = Path(result.report)
    assert report.suffix == ".html" and report.is_file()
    assert report.is_relative_to(tmp_path / "reports")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", report.read_text()))
    assert "Succeeded" in text
    # the rendered label-rate check, with the tenant's bounds
    assert "mean must be greater than or equal to 0.001 and less than or equal to 0.03" in text
    assert result.message().startswith("validation passed")


def _missing_column(df):
    return df.drop(columns=["amount"])


def _nulls(df):
    df = df.copy()
    df.loc[df.index[::500], "amount"] = np.nan
    return df


def _out_of_range(df):
    df = df.copy()
    df.loc[df.index[:3], "amount"] = [6000.0, -5.0, 0.0]
    return df


def _label_rate_30(df):
    df = df.copy()
    rng = np.random.default_rng(0)
    df["is_fraud"] = (rng.random(len(df)) < 0.30).astype(np.int64)
    return df


def _timestamps_as_strings(df):
    df = df.copy()
    df["tx_datetime"] = df["tx_datetime"].astype(str)
    return df


def _duplicate_ids(df):
    df = df.copy()
    df.loc[df.index[10], "transaction_id"] = df.loc[df.index[9], "transaction_id"]
    return df


@pytest.mark.parametrize(
    "corrupt, broken",
    [
        (_missing_column, {("expect_column_to_exist", "amount")}),
        (_nulls, {("expect_column_values_to_not_be_null", "amount")}),
        (_out_of_range, {("expect_column_values_to_be_between", "amount")}),
        (_label_rate_30, {("expect_column_mean_to_be_between", "is_fraud")}),
        (_timestamps_as_strings, {("expect_column_values_to_be_in_type_list", "tx_datetime")}),
        (_duplicate_ids, {("expect_column_values_to_be_unique", "transaction_id")}),
    ],
    ids=["missing-column", "nulls", "out-of-range", "label-rate-30pct", "timestamps-as-strings", "duplicate-ids"],
)
def test_corrupted_batch_fails_naming_the_expectation(cfg, clean, tmp_path, corrupt, broken):
    result = validate(cfg, corrupt(clean), tmp_path / "reports")
    assert not result.success
    failed = failed_expectations(result)
    assert broken <= failed, result.message()
    if corrupt is _missing_column:
        # every other check on the missing column fails too, but nothing unrelated does
        assert {col for _, col in failed} == {"amount"}, result.message()
    else:
        assert failed == broken, result.message()  # precise: no collateral failures
    msg = ValidationFailed(result).args[0]
    (exp, col), = broken
    assert exp in msg and f"column='{col}'" in msg
    assert result.report in msg and Path(result.report).is_file()
    if corrupt is _label_rate_30:
        (line,) = result.failed  # the observed rate is in the message
        assert float(re.search(r"observed ([0-9.]+)", line).group(1)) == pytest.approx(0.30, abs=0.02)


def test_too_few_rows(cfg, clean, tmp_path):
    result = validate(cfg, clean.head(500), tmp_path / "reports")
    assert not result.success
    assert ("expect_table_row_count_to_be_between", None) in failed_expectations(result)


# --- the pipeline-level guarantee -------------------------------------------------------------


def test_failing_batch_stops_the_pipeline_and_nothing_is_registered(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # this home's mlflow.db, nothing else
    # 4 days, so one corrupted day moves the whole batch's label rate far out of bounds
    tenant = write_small_fraud_tenant(
        tmp_path / "fraud", **{"data.generator_args": {"customers": 300, "terminals": 600, "days": 4, "seed": 3}}
    )
    home, run = tmp_path / "home", "broken"
    ws = Workspace(home)
    snapshot = steps.ingest(str(tenant), str(home), run)
    assert snapshot["partitions"] == 4

    part = sorted(Path(snapshot["path"]).rglob("*.parquet"))[1]
    df = pd.read_parquet(part)
    df["is_fraud"] = (np.random.default_rng(1).random(len(df)) < 0.30).astype(np.int64)
    df.to_parquet(part, index=False)

    with pytest.raises(ValidationFailed) as exc:
        steps.validate(str(tenant), str(home), run)
    result = exc.value.result
    assert not result.success
    assert result.report in str(exc.value)
    assert Path(result.report).is_file()
    assert any(f.startswith("expect_column_mean_to_be_between(column='is_fraud'") for f in result.failed)
    assert ws.read_step("fraud", run, "validate")["success"] is False

    failed = ws.read_step("fraud", run, "validate")  # the record the validate task hands on
    with pytest.raises(RuntimeError, match="validation failed, refusing to continue") as exc:
        steps.features(str(tenant), str(home), run, failed)
    assert result.report in str(exc.value)
    with pytest.raises(RuntimeError, match="validation failed, refusing to continue"):
        steps.stage(str(tenant), str(home), run, snapshot, failed)

    # nothing downstream ran ...
    for step in ("features", "train", "register"):
        assert not ws.step_file("fraud", run, step).exists(), step
    assert not ws.features_dir("fraud").exists()
    assert not (ws.feature_repo("fraud") / "registry.db").exists()
    # ... and nothing is registered
    db = home / "mlflow.db"
    if db.exists():
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=f"sqlite:///{db}")
        assert client.search_registered_models() == []
        assert client.search_model_versions() == []
