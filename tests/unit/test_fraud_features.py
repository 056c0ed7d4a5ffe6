"""Fraud tenant features: exact window values, point-in-time safety, request-time transform."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from fraud_tenant import data, velocity
from fraud_tenant.features import build_feature_tables, customer_velocity, request_features, terminal_risk
from mlplatform.config import load_tenant, parse_tenant

TENANT = Path(__file__).resolve().parents[2] / "examples" / "fraud" / "tenant.yaml"


def ts(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def frame(rows: list[tuple]) -> pd.DataFrame:
    """rows: (customer, terminal, tx time, amount, is_fraud, label time)."""
    df = pd.DataFrame(rows, columns=["customer_id", "terminal_id", "tx_datetime", "amount", "is_fraud",
                                     "label_available_at"])
    for col in ("tx_datetime", "label_available_at"):
        df[col] = pd.to_datetime(df[col], utc=True).astype("datetime64[ns, UTC]")
    df["fraud_scenario"] = df["is_fraud"]
    df = df.sort_values("tx_datetime", kind="stable", ignore_index=True)
    df.insert(0, "transaction_id", np.arange(len(df), dtype=np.int64))
    return df


@pytest.fixture(scope="module")
def cfg():
    return load_tenant(TENANT)


@pytest.fixture(scope="module")
def sim():
    return data.simulate(customers=200, terminals=400, days=40, seed=11)


# --- customer_velocity ----------------------------------------------------------------------------


def _ns(values) -> np.ndarray:
    return pd.to_datetime(pd.Series(values), utc=True).to_numpy("datetime64[ns]").view(np.int64)


def windows_at(state: pd.DataFrame, when=None) -> pd.DataFrame:
    """The state rows with their windows counted at `when` (default: each row's own time), the
    way the request transform counts them."""
    spec = velocity.CUSTOMER
    ns = _ns(state["event_timestamp"] if when is None else [when] * len(state))
    return state.assign(**velocity.windows(spec, *[list(state[c]) for c in spec.state], ns))


def with_state(df: pd.DataFrame, avg) -> pd.DataFrame:
    """`df` with a one-bucket state per row in the row's own hour whose mean amount is `avg` (no
    state where avg is missing), as the offline join hands the transform."""
    hours = _ns(df["tx_datetime"]) // velocity.HOUR_NS
    avg = pd.to_numeric(pd.Series(list(avg), dtype="object"), errors="coerce").to_numpy(np.float64)
    some = ~np.isnan(avg)
    return df.assign(customer_bucket_hour=[[int(h)] if ok else None for h, ok in zip(hours, some)],
                     customer_bucket_count=[[1] if ok else None for ok in some],
                     customer_bucket_amount=[[float(a)] if ok else None for a, ok in zip(avg, some)])

VELOCITY = frame([
    (1, 9, "2026-01-01 10:00", 10.0, 0, "2026-01-03"),
    (1, 9, "2026-01-01 20:00", 20.0, 0, "2026-01-03"),
    (2, 9, "2026-01-02 09:00", 5.0, 0, "2026-01-03"),
    (1, 9, "2026-01-02 10:00", 60.0, 0, "2026-01-03"),  # exactly 1 day after the first: excluded from 1d
    (1, 9, "2026-01-09 10:00", 30.0, 0, "2026-01-12"),  # exactly 7 days after the third
])


def test_customer_velocity_exact_windows():
    out = windows_at(customer_velocity(VELOCITY)).set_index(["customer_id", "event_timestamp"])
    expect = {
        (1, "2026-01-01 10:00"): (1, 1, 1, 10.0, 10.0, 10.0),
        (1, "2026-01-01 20:00"): (2, 2, 2, 15.0, 15.0, 15.0),
        (1, "2026-01-02 10:00"): (2, 3, 3, 40.0, 30.0, 30.0),
        (1, "2026-01-09 10:00"): (1, 1, 4, 30.0, 30.0, 30.0),
        (2, "2026-01-02 09:00"): (1, 1, 1, 5.0, 5.0, 5.0),
    }
    assert len(out) == len(VELOCITY)
    for (cust, when), values in expect.items():
        row = out.loc[(cust, ts(when))]
        got = tuple(row[[f"customer_nb_tx_{w}d" for w in (1, 7, 30)]]) + tuple(
            row[[f"customer_avg_amount_{w}d" for w in (1, 7, 30)]])
        assert got == pytest.approx(values), (cust, when)


def test_windows_are_counted_back_from_the_scored_event():
    """Card 1's state after its 01-02 10:00 payment, scored later: payments leave the windows as
    time passes with no new payment (hour buckets: the event's hour and the 24*w - 1 before)."""
    state = customer_velocity(VELOCITY)
    last = state[(state["customer_id"] == 1) & (state["event_timestamp"] == ts("2026-01-02 10:00"))]
    early = windows_at(last, ts("2026-01-03 09:59")).iloc[0]
    assert (early["customer_nb_tx_1d"], early["customer_avg_amount_1d"]) == (1, 60.0)
    late = windows_at(last, ts("2026-01-03 10:00")).iloc[0]
    assert late["customer_nb_tx_1d"] == 0 and np.isnan(late["customer_avg_amount_1d"])
    assert late["customer_nb_tx_7d"] == 3 and late["customer_avg_amount_7d"] == pytest.approx(30.0)
    gone = windows_at(last, ts("2026-02-02 10:00")).iloc[0]
    assert gone["customer_nb_tx_30d"] == 0 and np.isnan(gone["customer_avg_amount_30d"])


def test_windows_without_state_are_missing_not_zero():
    spec = velocity.CUSTOMER
    out = velocity.windows(spec, [None, [5]], [None, [2]], [np.nan, [8.0]], np.array([0, 5 * velocity.HOUR_NS]))
    assert np.isnan(out["customer_nb_tx_30d"][0]) and np.isnan(out["customer_avg_amount_30d"][0])
    assert out["customer_nb_tx_1d"][1] == 2 and out["customer_avg_amount_1d"][1] == 4.0


def test_state_keeps_only_the_longest_window():
    far = frame([(1, 9, "2026-01-01 10:00", 10.0, 0, "2026-01-03"), (1, 9, "2026-02-15 10:00", 30.0, 0, "2026-02-17")])
    state = customer_velocity(far)
    assert [len(h) for h in state["customer_bucket_hour"]] == [1, 1]  # the January bucket fell out


def test_customer_velocity_ignores_input_order():
    shuffled = VELOCITY.sample(frac=1.0, random_state=0)
    key = ["customer_id", "event_timestamp"]
    a = customer_velocity(VELOCITY).sort_values(key, ignore_index=True)
    b = customer_velocity(shuffled).sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(a, b)


def test_same_instant_payments_share_the_state_after_both():
    df = frame([(1, 9, "2026-01-01 10:00", 10.0, 0, "2026-01-03"), (1, 9, "2026-01-01 10:00", 30.0, 0, "2026-01-03")])
    out = windows_at(customer_velocity(df))
    assert len(out) == 1  # one state row per instant
    assert out["customer_nb_tx_1d"].tolist() == [2]
    assert out["customer_avg_amount_1d"].tolist() == pytest.approx([20.0])


def test_customer_velocity_rows_never_see_the_future(sim):
    cut = ts("2026-01-20")
    base = customer_velocity(sim)
    later = sim["tx_datetime"] > cut
    changed = sim.copy()
    changed.loc[later, "amount"] *= 3
    changed = pd.concat([changed, changed[later]], ignore_index=True)  # and twice as many payments
    after = customer_velocity(changed)
    key = ["customer_id", "event_timestamp"]
    old = base[base["event_timestamp"] <= cut].sort_values(key, ignore_index=True)
    new = after[after["event_timestamp"] <= cut].sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(old, new)
    assert len(after) > len(new)  # the change did reach rows after the cut
    base, after = windows_at(base), windows_at(after)
    assert after[after["event_timestamp"] > cut]["customer_avg_amount_1d"].mean() > 2 * (
        base[base["event_timestamp"] > cut]["customer_avg_amount_1d"].mean())


# --- terminal_risk --------------------------------------------------------------------------------

RISK = frame([
    (1, 7, "2026-01-01 12:00", 50.0, 1, "2026-01-05 12:00"),  # fraud on day 1, label during day 5
    (2, 7, "2026-01-01 15:00", 20.0, 0, "2026-01-02 06:00"),  # legitimate, label known at D = 01-03
    (3, 8, "2026-01-10 09:00", 30.0, 0, "2026-01-11 09:00"),  # another terminal, extends the range
])


def _row(out: pd.DataFrame, terminal: int, day: str) -> pd.Series:
    hit = out[(out["terminal_id"] == terminal) & (out["event_timestamp"] == ts(day))]
    assert len(hit) == 1, (terminal, day)
    return hit.iloc[0]


def test_terminal_risk_uses_only_labels_known_at_d():
    out = terminal_risk(RISK)
    for day in ("2026-01-02", "2026-01-03", "2026-01-04", "2026-01-05"):
        row = _row(out, 7, day)
        assert row["terminal_nb_tx_7d"] == 2
        assert row["terminal_risk_7d"] == 0.0 and row["terminal_risk_30d"] == 0.0, day
    after = _row(out, 7, "2026-01-06")
    assert after["terminal_risk_7d"] == pytest.approx(0.5)  # 1 fraud among 2 labelled
    assert after["terminal_risk_30d"] == pytest.approx(0.5)
    assert after["terminal_risk_1d"] == 0.0 and after["terminal_nb_tx_1d"] == 0  # [01-05, 01-06) is empty


def test_terminal_risk_windows_and_range():
    out = terminal_risk(RISK)
    first = _row(out, 7, "2026-01-02")
    assert (first["terminal_nb_tx_1d"], first["terminal_nb_tx_7d"], first["terminal_nb_tx_30d"]) == (2, 2, 2)
    assert _row(out, 7, "2026-01-03")["terminal_nb_tx_1d"] == 0
    assert _row(out, 7, "2026-01-08")["terminal_nb_tx_7d"] == 2  # [01-01, 01-08) holds day 1
    day9 = _row(out, 7, "2026-01-09")
    assert day9["terminal_nb_tx_7d"] == 0 and day9["terminal_risk_7d"] == 0.0
    assert day9["terminal_risk_30d"] == pytest.approx(0.5)
    # Days from the day after the first payment through the day after the last, midnight UTC.
    assert out["event_timestamp"].min() == ts("2026-01-02")
    assert out["event_timestamp"].max() == ts("2026-01-11")
    assert (out["event_timestamp"].dt.floor("D") == out["event_timestamp"]).all()
    # Terminal 8 appears only once it has a payment in the last 30 days.
    assert out.loc[out["terminal_id"] == 8, "event_timestamp"].tolist() == [ts("2026-01-11")]
    assert not out.duplicated(["terminal_id", "event_timestamp"]).any()


def test_terminal_risk_rows_up_to_d_ignore_later_rows_and_labels(sim):
    cut = ts("2026-01-20")
    base = terminal_risk(sim)
    changed = sim.copy()
    unknown = changed["label_available_at"] > cut  # labels not yet known at D: flip and move them
    changed.loc[unknown, "is_fraud"] = 1 - changed.loc[unknown, "is_fraud"]
    changed.loc[unknown, "label_available_at"] += pd.Timedelta(days=3)
    later = changed["tx_datetime"] >= cut
    changed = pd.concat([changed[~later], changed[later].assign(terminal_id=0)], ignore_index=True)
    after = terminal_risk(changed)
    key = ["terminal_id", "event_timestamp"]
    old = base[base["event_timestamp"] <= cut].sort_values(key, ignore_index=True)
    new = after[after["event_timestamp"] <= cut].sort_values(key, ignore_index=True)
    assert unknown.sum() > 100 and len(old) > 1000
    pd.testing.assert_frame_equal(old, new)
    assert not base.equals(after)  # the change did reach rows after D


def test_terminal_risk_sees_fraud_in_generated_data(sim):
    out = terminal_risk(sim)
    assert (out["terminal_risk_30d"] > 0).any()
    assert out[[f"terminal_risk_{w}d" for w in (1, 7, 30)]].stack().between(0, 1).all()


# --- build_feature_tables -------------------------------------------------------------------------

def test_tables_match_the_tenant_file(sim, cfg):
    tables = build_feature_tables(sim, cfg, {})
    assert set(tables) == {v.name for v in cfg.features.feature_views}
    keys = {"customer_velocity": "customer_id", "terminal_risk": "terminal_id"}
    for view in cfg.features.feature_views:
        df = tables[view.name]
        assert list(df.columns) == [keys[view.name], "event_timestamp", *[f.name for f in view.features]]
        assert str(df["event_timestamp"].dtype) == "datetime64[ns, UTC]"
        assert str(df[keys[view.name]].dtype) == "int64"
        for f in view.features:
            want = {"int64_list": "list<item: int64>[pyarrow]", "float64_list": "list<item: double>[pyarrow]"}
            assert str(df[f.name].dtype) == want.get(f.dtype, f.dtype), f.name
        assert not df.isna().any().any()
    assert len(tables["customer_velocity"]) == len(sim.drop_duplicates(["customer_id", "tx_datetime"]))


def test_builder_refuses_a_tenant_file_that_drifted(sim):
    raw = yaml.safe_load(TENANT.read_text())
    feats = raw["features"]["feature_views"][1]["features"]
    feats[0], feats[3] = feats[3], feats[0]  # same names, different order
    with pytest.raises(AssertionError, match="terminal_risk"):
        build_feature_tables(sim, parse_tenant(raw), {})


# --- request_features -----------------------------------------------------------------------------

def test_request_features_one_row_with_missing_average():
    req = with_state(pd.DataFrame({"amount": [100.0], "tx_datetime": [ts("2026-01-03 23:30")]}),  # a Saturday
                     [None])
    out = request_features(req)
    row = out.iloc[0]
    assert (row["tx_hour"], row["tx_is_weekend"], row["tx_is_night"]) == (23, 1, 1)
    assert row["amount_to_avg_30d"] == 1.0
    assert {c: str(out[c].dtype) for c in ("tx_hour", "tx_is_weekend", "tx_is_night", "amount_to_avg_30d")} == {
        "tx_hour": "int64", "tx_is_weekend": "int64", "tx_is_night": "int64", "amount_to_avg_30d": "float64"}
    assert list(req.columns) == ["amount", "tx_datetime", *velocity.CUSTOMER.state]  # input untouched


@pytest.mark.parametrize("avg, expect", [(50.0, 2.0), (np.nan, 1.0), (0.0, 1.0), (pd.NA, 1.0)])
def test_request_features_ratio(avg, expect):
    req = with_state(pd.DataFrame({"amount": [100.0], "tx_datetime": [ts("2026-01-05 12:00")]}), [avg])
    assert request_features(req)["amount_to_avg_30d"].iloc[0] == pytest.approx(expect)


def test_request_features_timezones():
    paris = pd.Timestamp("2026-01-05 07:30", tz="Europe/Paris")  # Monday 06:30 UTC
    for when in (paris, paris.tz_convert("UTC").tz_localize(None)):  # tz-aware and naive UTC
        out = request_features(with_state(pd.DataFrame({"amount": [1.0], "tx_datetime": [when]}), [1.0]))
        assert (out["tx_hour"].iloc[0], out["tx_is_weekend"].iloc[0], out["tx_is_night"].iloc[0]) == (6, 0, 0)


def test_request_features_match_pandas_calendar(sim):
    avg = np.random.default_rng(0).uniform(5, 100, len(sim))
    df = with_state(sim, avg)
    out = request_features(df)
    hour = df["tx_datetime"].dt.hour
    assert (out["tx_hour"] == hour).all()
    assert (out["tx_is_weekend"] == (df["tx_datetime"].dt.dayofweek >= 5).astype(int)).all()
    assert (out["tx_is_night"] == ((hour < 6) | (hour >= 22)).astype(int)).all()
    assert np.allclose(out["amount_to_avg_30d"], df["amount"] / avg)



def test_request_features_on_columns_equal_the_dataframe_path(sim):
    """The online predictor passes a dict of column arrays (UTC datetime64[ns]) instead of a frame:
    the same derived values and dtypes, the input columns passed through, the input untouched."""
    assert request_features.columnar is True
    df = with_state(sim.head(500), np.r_[np.nan, 0.0, np.random.default_rng(1).uniform(5, 100, 498)])
    cols = {"amount": df["amount"].to_numpy(), "tx_datetime": df["tx_datetime"].to_numpy("datetime64[ns]"),
            **{c: list(df[c]) for c in velocity.CUSTOMER.state}}  # lists, as the online lookup gives them
    given = dict(cols)
    out, expect = request_features(cols), request_features(df)
    assert isinstance(out, dict) and list(cols) == list(given)  # no column added to the input
    for c in ("tx_hour", "tx_is_weekend", "tx_is_night", "amount_to_avg_30d", *velocity.CUSTOMER.features):
        assert out[c].dtype == expect[c].dtype, c
        np.testing.assert_array_equal(out[c], expect[c].to_numpy(), err_msg=c)
    assert out["amount"] is cols["amount"]
