"""The fraud tenant's transaction simulator: deterministic, well-formed, realistic enough."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud_tenant import data
from mlplatform.config import load_tenant

TENANT = Path(__file__).resolve().parents[2] / "examples" / "fraud" / "tenant.yaml"
SMALL = dict(customers=300, terminals=600, days=30, seed=3)  # ~20k rows, under a second


@pytest.fixture(scope="module")
def cfg():
    return load_tenant(TENANT)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("fraud")
    paths = data.generate(out, **SMALL)
    return out, paths, data.load(out)


@pytest.fixture(scope="module")
def default_size(cfg):
    # The size the tenant file asks for, so the label-rate check tracks tenant.yaml.
    return data.simulate(**cfg.data.generator_args)


def test_same_seed_gives_byte_identical_partitions(small, tmp_path):
    out, paths, df = small
    again = data.generate(tmp_path, **SMALL)
    assert [p.relative_to(tmp_path) for p in again] == [p.relative_to(out) for p in paths]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(paths, again))
    pd.testing.assert_frame_equal(data.load(tmp_path), df)


def test_different_seed_gives_different_data(small):
    other = data.simulate(**{**SMALL, "seed": SMALL["seed"] + 1})
    df = small[2]
    assert len(other) != len(df) or not other["amount"].equals(df["amount"])


def test_schema_and_dtypes(small, cfg):
    df = small[2]
    assert list(df.columns) == [c.name for c in cfg.data.columns] == list(data.COLUMNS)
    assert {c: str(t) for c, t in df.dtypes.items()} == data.COLUMNS
    assert df["transaction_id"].is_unique and df["transaction_id"].is_monotonic_increasing
    assert df["tx_datetime"].is_monotonic_increasing  # ids increase with time
    assert df["amount"].between(0.01, 5000).all()
    assert np.allclose(df["amount"], df["amount"].round(2))
    assert set(df["is_fraud"].unique()) <= {0, 1}
    assert (df["is_fraud"] == (df["fraud_scenario"] > 0)).all()


def test_one_partition_per_day_sorted_and_on_its_date(small):
    out, paths, df = small
    assert len(paths) == SMALL["days"]
    dates = pd.date_range("2026-01-01", periods=SMALL["days"], freq="D")
    assert [p.parent.name for p in paths] == [f"date={d:%Y-%m-%d}" for d in dates]
    total = 0
    for path, day in zip(paths, dates):
        part = pd.read_parquet(path)
        assert part["tx_datetime"].is_monotonic_increasing
        assert (part["tx_datetime"].dt.strftime("%Y-%m-%d") == f"{day:%Y-%m-%d}").all()
        total += len(part)
    assert total == len(df) > 0
    assert "date" not in df.columns


def test_regenerating_fewer_days_drops_stale_partitions(tmp_path):
    data.generate(tmp_path, customers=20, terminals=40, days=5, seed=1)
    paths = data.generate(tmp_path, customers=20, terminals=40, days=3, seed=1)
    assert sorted(tmp_path.glob("date=*/part-0.parquet")) == sorted(paths)
    assert data.load(tmp_path)["tx_datetime"].max() < pd.Timestamp("2026-01-04", tz="UTC")


def test_fraud_rate_within_tenant_bounds_at_default_size(default_size, cfg):
    rate = default_size["is_fraud"].mean()
    bounds = cfg.data.expectations.label_rate
    assert bounds.min <= rate <= bounds.max
    assert rate < 0.01  # "well under 1%"
    assert len(default_size) >= cfg.data.expectations.min_rows


def test_every_scenario_present_and_shaped(small):
    df = small[2]
    counts = df["fraud_scenario"].value_counts()
    assert set(counts.index) == {0, 1, 2, 3}
    assert (df.loc[df["fraud_scenario"] == 1, "amount"] > data.AMOUNT_THRESHOLD).all()
    # Scenario 2 concentrates on a few terminals, scenario 3 on a few cards.
    assert df.loc[df["fraud_scenario"] == 2, "terminal_id"].nunique() <= 5
    assert df.loc[df["fraud_scenario"] == 3, "customer_id"].nunique() <= 10
    # Compromised cards spend ~5x their usual amount.
    s3 = df[df["fraud_scenario"] == 3]
    usual = df[df["fraud_scenario"] == 0].groupby("customer_id")["amount"].median()
    assert (s3["amount"] / s3["customer_id"].map(usual)).median() > 3


def test_labels_never_before_the_transaction(small):
    df = small[2]
    delay = (df["label_available_at"] - df["tx_datetime"]) / pd.Timedelta(days=1)
    assert (delay >= 0).all()
    assert delay.between(1, 7).mean() > 0.6  # most labels arrive 1-7 days later
    assert delay.max() > 7  # with some spread


def test_daytime_busier_than_night_and_weekends_differ(small):
    df = small[2]
    hour = df["tx_datetime"].dt.hour
    assert hour.between(9, 20).mean() > 4 * ((hour < 6).mean())
    weekend = df["tx_datetime"].dt.dayofweek >= 5
    early = hour.between(7, 9)
    assert early[~weekend].mean() > 1.5 * early[weekend].mean()  # weekends start later


def test_customers_shop_locally(small):
    df = small[2]
    per_customer = df.groupby("customer_id")["terminal_id"].nunique()
    assert per_customer.max() < SMALL["terminals"] * 0.1  # a neighbourhood, not the whole grid


def test_default_size_is_about_150k_rows(default_size):
    assert 100_000 < len(default_size) < 200_000


def test_spending_shift_moves_amounts_and_the_anomaly_threshold_together(small, cfg):
    df = small[2]
    shift_day, factor = 20, 4.0
    shifted = data.simulate(**SMALL, spending_shift=factor, shift_day=shift_day)
    cut = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(days=shift_day)
    before, after = df["tx_datetime"] < cut, shifted["tx_datetime"] < cut
    # the same world until the shift day, the same transactions after it
    pd.testing.assert_frame_equal(shifted[after], df[before])
    assert len(shifted) == len(df) and (shifted["customer_id"] == df["customer_id"]).all()
    # legitimate spending is `factor` times what it was (up to the 5000 cap and rounding)
    legit = (df["fraud_scenario"] == 0) & ~before & (df["amount"] < 1000)
    ratio = shifted.loc[legit, "amount"] / df.loc[legit, "amount"]
    assert ratio.median() == pytest.approx(factor, rel=0.01)
    # scenario 1 follows the new normal: the label rate stays inside the tenant's bounds
    assert (shifted.loc[shifted["fraud_scenario"] == 1, "amount"] > data.AMOUNT_THRESHOLD).all()
    assert not (shifted.loc[~after & (shifted["fraud_scenario"] == 0), "amount"] <= data.AMOUNT_THRESHOLD).all()
    bounds = cfg.data.expectations.label_rate
    assert bounds.min <= shifted["is_fraud"].mean() <= bounds.max
    assert abs(shifted["is_fraud"].mean() - df["is_fraud"].mean()) < 0.002


@pytest.mark.parametrize("bad", [{"spending_shift": 0.0}, {"spending_shift": -2.0}, {"shift_day": SMALL["days"]},
                                 {"shift_day": -1}])
def test_spending_shift_rejects_bad_arguments(bad):
    with pytest.raises(ValueError, match="spending_shift|shift_day"):
        data.simulate(**(SMALL | bad))
