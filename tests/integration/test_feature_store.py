"""Feast, for real: point-in-time joins leak nothing from the future, the online store serves what the
offline store would have joined (no training/serving skew), and unknown entities come back as nulls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlplatform.config import load_tenant
from mlplatform.data.ingest import load_raw
from mlplatform.features import store
from mlplatform.plugins import resolve
from mlplatform.workspace import Workspace
from tests.conftest import FRAUD_TENANT

D0 = pd.Timestamp("2026-03-02", tz="UTC")  # a Monday


def at(day: int, hour: int, minute: int = 0) -> pd.Timestamp:
    return D0 + pd.Timedelta(days=day, hours=hour, minutes=minute)


# id, time, customer, terminal, amount, fraud, label available at
ROWS = [
    (0, at(0, 8), 1, 10, 10.0, 0, at(1, 8)),
    (1, at(0, 9), 1, 10, 20.0, 0, at(1, 9)),
    (2, at(0, 10), 1, 10, 30.0, 0, at(1, 10)),   # probe: card 1 has paid twice before (10, 20)
    (3, at(0, 11), 1, 10, 1000.0, 0, at(1, 11)),
    (4, at(1, 12), 2, 10, 500.0, 1, at(4, 9)),   # a fraud at terminal 10, reported three days later
    (5, at(3, 15), 3, 10, 40.0, 0, at(4, 15)),   # probe: the fraud is not known yet; card 3 is new
    (6, at(5, 10), 3, 10, 50.0, 0, at(6, 10)),   # probe: the fraud is known since midnight of day 5
]
CUTOFF = at(3, 15)  # rows 0..5 are at or before it


def raw_frame(rows) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["transaction_id", "tx_datetime", "customer_id", "terminal_id", "amount",
                                     "is_fraud", "label_available_at"])
    df["fraud_scenario"] = df["is_fraud"] * 2
    return df.sort_values("tx_datetime", ignore_index=True)


def feature_columns(cfg) -> list[str]:
    return [f.name for v in cfg.features.feature_views for f in v.features]


def numeric_columns(cfg) -> list[str]:
    """The model's inputs: stored scalars and the velocity windows computed at the event."""
    return list(cfg.model.features)


def joined(cfg, home, raw: pd.DataFrame) -> pd.DataFrame:
    """Build the tables from `raw` in a fresh workspace, apply, and join the events of `raw` through Feast."""
    ws = Workspace(home)
    store.build_tables(cfg, ws, raw)
    store.apply(cfg, ws)
    events = raw[["transaction_id", "customer_id", "terminal_id", "tx_datetime", "amount", "is_fraud"]]
    out = store.training_frame(cfg, ws, events)
    assert list(out["transaction_id"]) == list(events["transaction_id"])  # original order kept
    return out.set_index("transaction_id")


@pytest.fixture(scope="module")
def cfg():
    return load_tenant(FRAUD_TENANT)


@pytest.fixture(scope="module")
def pit(cfg, tmp_path_factory) -> pd.DataFrame:
    return joined(cfg, tmp_path_factory.mktemp("pit"), raw_frame(ROWS))


# --- a constructed case: no future leakage ----------------------------------------------------


def test_velocity_excludes_the_event_itself_and_everything_after(pit):
    row = pit.loc[2]
    assert row["customer_nb_tx_1d"] == 2  # 3 would include the payment itself, 4 a later one
    assert row["customer_avg_amount_1d"] == pytest.approx(15.0)
    assert row["customer_nb_tx_30d"] == 2
    # the request transform sees the same point-in-time state
    assert row["amount_to_avg_30d"] == pytest.approx(30.0 / 15.0)
    row = pit.loc[3]
    assert row["customer_nb_tx_1d"] == 3 and row["customer_avg_amount_1d"] == pytest.approx(20.0)


def test_velocity_window_is_counted_back_from_the_scored_event(pit):
    # card 3 paid once, on day 3 at 15:00; payment 6 is on day 5 at 10:00, 43 hours later
    assert pit.loc[6, "customer_nb_tx_7d"] == 1
    assert pit.loc[6, "customer_nb_tx_1d"] == 0


def test_first_payment_of_a_card_has_no_history(pit):
    for tx in (0, 5):  # card 1's and card 3's first payments
        assert pd.isna(pit.loc[tx, "customer_nb_tx_30d"]), tx
        assert pit.loc[tx, "amount_to_avg_30d"] == 1.0  # neutral ratio without history


def test_terminal_risk_ignores_labels_not_yet_available(pit):
    row = pit.loc[5]
    # payments at terminal 10 in the 7 days before day 3: four legitimate ones and the fraud
    assert row["terminal_nb_tx_7d"] == 5
    assert row["terminal_risk_7d"] == 0.0  # the fraud (day 1) is reported on day 4, after this payment
    assert row["terminal_risk_30d"] == 0.0
    row = pit.loc[6]
    assert row["terminal_nb_tx_7d"] == 6
    # by midnight of day 5 all six earlier payments are labelled, one of them fraud
    assert row["terminal_risk_7d"] == pytest.approx(1 / 6)


def test_terminal_risk_has_no_same_day_information(pit):
    # day-0 payments are scored before the terminal has any daily row: nothing, not a partial day
    for tx in (0, 1, 2, 3):
        assert pd.isna(pit.loc[tx, "terminal_nb_tx_7d"]), tx


def test_the_probe_detects_leakage_when_the_event_is_included(cfg, tmp_path):
    """Control: joined `at_event` instead of `before_event`, the payment leaks into its own features,
    and the assertions above would catch it."""
    leaky = cfg.model_copy(update={"features": cfg.features.model_copy(update={"as_of": "at_event"})})
    out = joined(leaky, tmp_path, raw_frame(ROWS))
    assert out.loc[2, "customer_nb_tx_1d"] == 3
    assert out.loc[2, "customer_avg_amount_1d"] == pytest.approx(20.0)


def test_changing_the_future_does_not_change_the_past(cfg, pit, tmp_path):
    future = [r for r in ROWS if r[1] <= CUTOFF]
    future += [
        (6, at(5, 10), 3, 10, 4999.0, 1, at(5, 11)),  # the probe after the cutoff, changed
        (7, at(3, 15, 1), 3, 10, 900.0, 1, at(3, 16)),  # a minute after the cutoff, same card and terminal
        (8, at(3, 18), 1, 10, 700.0, 1, at(3, 19)),    # a fraud reported within the hour, same day
        (9, at(4, 1), 2, 10, 5.0, 0, at(4, 2)),
    ]
    changed = joined(cfg, tmp_path, raw_frame(future))
    past = [tx for tx, ts, *_ in ROWS if ts <= CUTOFF]
    cols = numeric_columns(cfg)
    pd.testing.assert_frame_equal(changed.loc[past, cols], pit.loc[past, cols], check_dtype=False)
    # while the future itself did change: the fast-reported frauds are visible on day 4
    assert changed.loc[9, "terminal_risk_1d"] > 0


# --- list features: Feast joins a row id, the lists are taken by it ---------------------------


def test_only_views_with_lists_get_a_row_id_twin(cfg):
    from mlplatform.features.definitions import feast_objects

    views = {o.name: o for o in feast_objects(cfg, Path("/nonexistent")) if hasattr(o, "ttl")}
    twin, velocity = views["customer_velocity__rows"], views["customer_velocity"]
    assert not twin.online and velocity.online  # never materialized, never served
    assert (twin.ttl, twin.entities, twin.batch_source.path) == (velocity.ttl, velocity.entities,
                                                                 velocity.batch_source.path)
    assert "terminal_risk__rows" not in views  # scalars only: asked for as they are
    assert [r for r in store.training_refs(cfg) if r.startswith("terminal_risk:")] == \
        [r for r in store.feature_refs(cfg) if r.startswith("terminal_risk:")]
    assert "customer_velocity__rows:customer_velocity__row_id" in store.training_refs(cfg)
    assert not any(r.startswith("customer_velocity:") for r in store.training_refs(cfg))


def test_a_tenant_with_only_scalars_is_asked_for_its_features_as_they_are(cfg):
    scalars = cfg.features.model_copy(update={"feature_views": [v for v in cfg.features.feature_views
                                                                  if v.name == "terminal_risk"]})
    only = cfg.model_copy(update={"features": scalars})
    assert store.training_refs(only) == store.feature_refs(only)


def test_a_list_table_without_row_ids_is_refused_clearly(cfg, tmp_path):
    ws = Workspace(tmp_path)
    store.build_tables(cfg, ws, raw_frame(ROWS))
    store.apply(cfg, ws)
    path = ws.features_dir(cfg.name) / "customer_velocity.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["customer_velocity__row_id"]), path)  # an old table
    with pytest.raises(ValueError, match="no 'customer_velocity__row_id' column: rebuild"):
        store.training_frame(cfg, ws, raw_frame(ROWS)[["customer_id", "terminal_id", "tx_datetime", "amount"]])


def test_lists_taken_by_row_id_equal_feasts_own_join(trained_fraud):
    """training_frame asks Feast for the state row's id and takes the lists by it: the same frame,
    value for value and null for null, as Feast joining the lists itself (its to_df)."""
    cfg = load_tenant(trained_fraud.tenant_file)
    ws = Workspace(trained_fraud.home)
    raw = load_raw(cfg, ws).sort_values("tx_datetime")
    events = pd.concat([raw.head(50), raw.sample(400, random_state=1)])  # first payments: no state yet
    events = events[["customer_id", "terminal_id", "tx_datetime", "amount"]].reset_index(drop=True)
    events.loc[0, "customer_id"] = 10**9  # a card the store never saw
    got = store.training_frame(cfg, ws, events)

    entity_df = store.entity_frame(cfg, events).reset_index(drop=True)
    entity_df["_row"] = range(len(entity_df))
    feast_df = store.open_store(cfg, ws).get_historical_features(entity_df=entity_df,
                                                                 features=store.feature_refs(cfg)).to_df()
    feast_df = feast_df.sort_values("_row").drop(columns=["_row", store.EVENT_TIMESTAMP]).reset_index(drop=True)
    expect = store.apply_request_transform(cfg, feast_df)
    pd.testing.assert_frame_equal(got, expect)
    assert got["customer_bucket_hour"].isna().sum() >= 1 and got["customer_bucket_hour"].notna().sum() >= 300


# --- training/serving skew on the trained workspace --------------------------------------------


@pytest.fixture(scope="module")
def trained_store(trained_fraud):
    cfg = load_tenant(trained_fraud.tenant_file)
    ws = Workspace(trained_fraud.home)
    return cfg, ws, store.OnlineFeatures(cfg, ws)


def test_online_equals_offline_as_of_materialization(trained_fraud, trained_store):
    cfg, ws, online = trained_store
    raw = load_raw(cfg, ws)
    until = pd.Timestamp(trained_fraud.records["features"]["materialized_until"])
    recent = raw[raw["tx_datetime"] > until - pd.Timedelta(days=3)]
    sample = recent.drop_duplicates("customer_id").sample(20, random_state=0)[["customer_id", "terminal_id"]]
    sample = sample.reset_index(drop=True)
    events = sample.assign(tx_datetime=until + pd.Timedelta(seconds=1), amount=1.0)

    offline = store.training_frame(cfg, ws, events)
    served = online.lookup(sample.to_dict("records"))
    assert served["customer_id"] == list(sample["customer_id"])
    assert served["terminal_id"] == list(sample["terminal_id"])
    # online, the predictor's way: the looked-up state and the request go through the same transform
    transform = resolve(cfg.features.request.transform)
    request = {"amount": events["amount"].to_numpy(np.float64),
               "tx_datetime": events["tx_datetime"].to_numpy("datetime64[ns]")}
    online_inputs = transform({**request, **served})

    for col in numeric_columns(cfg):
        off = pd.to_numeric(offline[col], errors="coerce").to_numpy(np.float64)
        on = np.asarray(online_inputs[col], dtype=np.float64)
        np.testing.assert_allclose(on, off, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=col)
    # the sample is meaningful: recent customers and terminals have values, not only nulls
    assert np.isfinite(np.asarray(online_inputs["customer_nb_tx_30d"], dtype=np.float64)).all()
    assert (np.asarray(online_inputs["customer_nb_tx_1d"], dtype=np.float64) > 0).sum() >= 1
    assert pd.Series(served["terminal_nb_tx_30d"]).notna().sum() >= 15


def test_online_store_returns_nulls_for_an_unknown_entity(trained_fraud, trained_store):
    cfg, ws, online = trained_store
    raw = load_raw(cfg, ws)
    known = raw.iloc[-1]
    rows = [
        {"customer_id": int(known["customer_id"]), "terminal_id": int(known["terminal_id"])},
        {"customer_id": 10**9, "terminal_id": 10**9},
    ]
    out = online.fetch(rows)
    assert len(out) == 2
    cols = feature_columns(cfg)
    assert out.loc[1, cols].isna().all(), out.loc[1, cols]
    assert out.loc[0, ["customer_bucket_count", "customer_bucket_amount"]].notna().all()


def test_lookup_equals_feasts_to_dict(trained_fraud, trained_store):
    """OnlineFeatures.lookup (the predictor's call: key columns in, values read off the response
    proto) returns exactly what Feast's OnlineResponse.to_dict() does, types included, for known
    and unknown entities, from key columns or from row dicts."""
    cfg, ws, online = trained_store
    raw = load_raw(cfg, ws)
    known = raw.sort_values("tx_datetime").drop_duplicates("customer_id", keep="last").tail(30)  # recent: in the store
    rows = [{"customer_id": int(c), "terminal_id": int(t)} for c, t in zip(known["customer_id"], known["terminal_id"])]
    rows += [{"customer_id": 10**9, "terminal_id": int(known["terminal_id"].iloc[0])}, rows[0]]  # unknown; repeated
    expect = online.store.get_online_features(features=online.refs, entity_rows=rows).to_dict()
    columns = {k: [r[k] for r in rows] for k in cfg.features.join_keys}
    for got in (online.lookup(columns), online.lookup(rows)):
        assert list(got) == list(expect)
        for name, values in expect.items():
            assert got[name] == values, name
            assert [type(v) for v in got[name]] == [type(v) for v in values], name
    assert expect["customer_bucket_count"][-2] is None and expect["customer_bucket_count"][0] is not None
