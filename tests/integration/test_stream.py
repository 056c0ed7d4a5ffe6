"""The stream worker against this machine's Redis (issue 14, item 2): events in a consumer group ->
hourly bucket state -> Feast's Redis online store through the PushSource. The state online equals
the offline state table; redelivery after a crash between apply and ack does not double-count;
a dead consumer's pending messages are claimed; late events follow the stated policy."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pandas as pd
import pytest
from prometheus_client import REGISTRY

from fraud_tenant import velocity
from mlplatform.config import StreamConfig, load_tenant
from mlplatform.features import store
from mlplatform.features.stream import StreamWorker, publish, stream_key
from mlplatform.loop_stream import PaymentReplay
from mlplatform.processes import free_port
from mlplatform.workspace import Workspace
from tests.conftest import FRAUD_TENANT, require

REDIS = "redis://127.0.0.1:6379/0"
T0 = pd.Timestamp("2026-03-02 08:00", tz="UTC")


def redis_client():
    try:
        import redis

        client = redis.Redis.from_url(REDIS, decode_responses=True)
        client.ping()
        return client
    except Exception:  # noqa: BLE001
        return None


@pytest.fixture
def env(tmp_path):
    client = redis_client()
    require(client is not None, "Redis at 127.0.0.1:6379 is not reachable")
    name = f"st{uuid.uuid4().hex[:10]}"  # its own Feast project, stream and state keys
    cfg = load_tenant(FRAUD_TENANT)
    feats = cfg.features.model_copy(update={
        "online_store": cfg.features.online_store.model_copy(update={"type": "redis", "connection_string": "127.0.0.1:6379"}),
        # linger 0: the tests drive the rounds themselves (test_a_round_lingers_for_more_events: linger)
        "stream": StreamConfig(view="customer_velocity", state="fraud_tenant.velocity:CUSTOMER", redis_url=REDIS,
                               claim_idle_ms=0, linger_ms=0),
    })
    cfg = type(cfg).model_validate({**cfg.model_dump(), "name": name, "features": feats.model_dump()})
    ws = Workspace(tmp_path)
    seed = events(3, start=T0 - pd.Timedelta(days=40))  # the tables need rows; long before the test events
    store.build_tables(cfg, ws, seed)
    fs = store.apply(cfg, ws)
    yield cfg, ws, client, fs
    fs.teardown()  # the project's online rows
    pipe = client.pipeline(transaction=False)
    for k in client.scan_iter(f"mlplatform:{name}:*", count=1000):
        pipe.unlink(k)
    pipe.execute()


def events(n: int, start=T0, cards: int = 3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(3 * 3600, n).cumsum()  # a payment every 3 h on average, over 3 cards
    return pd.DataFrame({
        "transaction_id": np.arange(n) + seed * 10**6,
        "tx_datetime": start + pd.to_timedelta(np.round(gaps), unit="s"),
        "customer_id": rng.integers(1, cards + 1, n), "terminal_id": 10,
        "amount": np.round(rng.uniform(1, 200, n), 2), "is_fraud": 0,
        "label_available_at": start + pd.Timedelta(days=60), "fraud_scenario": 0,
    })


def online_state(cfg, ws, cards) -> pd.DataFrame:
    out = store.OnlineFeatures(cfg, ws).lookup({"customer_id": list(cards), "terminal_id": [10] * len(cards)})
    return pd.DataFrame({c: out[c] for c in ["customer_id", *velocity.CUSTOMER.state]})


def drain(worker: StreamWorker) -> None:
    while worker.run_once():
        pass


def offline_last_state(raw: pd.DataFrame) -> pd.DataFrame:
    table = velocity.state_table(velocity.CUSTOMER, raw, "tx_datetime")
    return table.sort_values("event_timestamp").groupby("customer_id").tail(1).set_index("customer_id")


def assert_state_equal(online: pd.DataFrame, offline: pd.DataFrame) -> None:
    for _, row in online.iterrows():
        want = offline.loc[row["customer_id"]]
        assert list(row["customer_bucket_hour"]) == list(want["customer_bucket_hour"])
        assert list(row["customer_bucket_count"]) == list(want["customer_bucket_count"])
        np.testing.assert_allclose(row["customer_bucket_amount"], want["customer_bucket_amount"], rtol=1e-12)


def test_streamed_state_equals_the_offline_state(env):
    cfg, ws, client, _ = env
    raw = events(200)
    assert publish(client, cfg, raw) == 200
    worker = StreamWorker(cfg, ws, "a", client=client)
    drain(worker)
    assert worker.stats.events["applied"] == 200 and worker.stats.events["duplicate"] == 0
    assert worker.stats.rows["written"] >= 3
    assert_state_equal(online_state(cfg, ws, [1, 2, 3]), offline_last_state(raw))
    assert client.xpending(stream_key(cfg), "features")["pending"] == 0


def test_redelivery_after_a_crash_between_apply_and_ack_is_not_counted_twice(env):
    cfg, ws, client, _ = env
    raw = events(30, seed=1)
    publish(client, cfg, raw)
    # a worker process reads all 30, applies 20 and is killed (SIGKILL): nothing pushed, nothing acked
    tenant = ws.home / "tenant.json"
    tenant.write_text(cfg.model_dump_json())
    script = textwrap.dedent(f"""
        import os, signal
        from mlplatform.config import TenantConfig
        from mlplatform.features.stream import StreamWorker, stream_key
        from mlplatform.workspace import Workspace
        cfg = TenantConfig.model_validate_json(open({str(tenant)!r}).read())
        w = StreamWorker(cfg, Workspace({str(ws.home)!r}), "dying")
        (_, messages), = w.redis.xreadgroup("features", "dying", {{stream_key(cfg): ">"}}, count=100)
        w.apply(messages[:20])
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    died = subprocess.run([sys.executable, "-c", script], env=os.environ, capture_output=True, text=True, timeout=120)
    assert died.returncode == -9, died.stderr
    assert client.xpending(stream_key(cfg), "features")["pending"] == 30
    live = StreamWorker(cfg, ws, "live", client=client)
    drain(live)  # claims the dead consumer's pending messages (claim_idle_ms = 0 here)
    assert live.stats.claimed == 30
    assert live.stats.events["duplicate"] == 20 and live.stats.events["applied"] == 10
    assert client.xpending(stream_key(cfg), "features")["pending"] == 0
    assert_state_equal(online_state(cfg, ws, sorted(raw["customer_id"].unique())), offline_last_state(raw))
    # a second delivery of everything changes nothing: every row is left as it is
    publish(client, cfg, raw)
    again = StreamWorker(cfg, ws, "again", client=client)
    drain(again)
    assert again.stats.events["duplicate"] == 30 and again.stats.rows["written"] == 0
    assert again.stats.rows["skipped"] == raw["customer_id"].nunique()


def test_late_events_policy(env):
    cfg, ws, client, _ = env
    now = pd.DataFrame({"transaction_id": [1], "tx_datetime": [T0], "customer_id": [7], "amount": [10.0]})
    publish(client, cfg, now)
    worker = StreamWorker(cfg, ws, "w", client=client)
    drain(worker)
    late = pd.DataFrame({"transaction_id": [2, 3], "customer_id": [7, 7], "amount": [5.0, 40.0],
                         "tx_datetime": [T0 - pd.Timedelta(days=31), T0 - pd.Timedelta(hours=2)]})
    publish(client, cfg, late)
    drain(worker)
    assert worker.stats.events["late"] == 1  # beyond the 30-day horizon: dropped, counted
    assert worker.stats.events["out_of_order"] == 1  # inside it: applied to its hour
    assert worker.stats.rows["restamped"] == 1  # same newest time, changed state: written 1 µs later
    (row,) = online_state(cfg, ws, [7]).to_dict("records")
    hour = T0.value // velocity.HOUR_NS
    assert list(row["customer_bucket_hour"]) == [hour - 2, hour]
    assert list(row["customer_bucket_count"]) == [1, 1]
    counted = velocity.windows(velocity.CUSTOMER, [row["customer_bucket_hour"]], [row["customer_bucket_count"]],
                               [row["customer_bucket_amount"]], np.array([T0.value + 1]))
    assert counted["customer_nb_tx_1d"][0] == 2 and counted["customer_avg_amount_1d"][0] == 25.0


def test_malformed_messages_are_counted_and_acknowledged(env):
    cfg, ws, client, _ = env
    client.xadd(stream_key(cfg), {"id": "x", "key": "1", "ts_us": "not a time", "value": "1"})
    worker = StreamWorker(cfg, ws, "w", client=client)
    drain(worker)
    assert worker.stats.events["malformed"] == 1
    assert client.xpending(stream_key(cfg), "features")["pending"] == 0


def test_lag_and_event_age_are_measured_and_the_row_carries_its_event_time(env):
    """The lag gauges read at scrape time (a stopped worker's backlog shows), the event-to-online age
    is observed per applied event, and the online row is stamped with the card's newest event time
    (what the predictor's mlplatform_feature_age_seconds is computed from)."""
    from prometheus_client import CollectorRegistry

    from mlplatform.features.stream_metrics import register_lag, stream_lag

    cfg, ws, client, _ = env
    registry = CollectorRegistry()
    register_lag(client, cfg.name, stream_key(cfg), "features", registry)
    raw = events(40, seed=3)
    publish(client, cfg, raw)

    def gauge(name):
        return registry.get_sample_value(name, {"tenant": cfg.name})

    assert gauge("mlplatform_stream_redis_up") == 1
    assert gauge("mlplatform_stream_length") == 40 and gauge("mlplatform_stream_undelivered") == 40
    assert gauge("mlplatform_stream_oldest_unacked_age_seconds") >= 0
    # no group yet: the oldest entry's age is counted from its id (its time of arrival)
    first_ms = int(client.xrange(stream_key(cfg), count=1)[0][0].split("-")[0])
    lag = stream_lag(client, stream_key(cfg), "features", now_ms=first_ms + 7_000)
    assert lag["oldest_unacked_age_seconds"] == 7.0 and lag["pending"] == 0

    worker = StreamWorker(cfg, ws, "w", client=client)
    age = ("mlplatform_stream_event_age_seconds_count", {"tenant": cfg.name, "view": "customer_velocity"})
    before = REGISTRY.get_sample_value(*age) or 0.0
    (_, messages), = client.xreadgroup("features", "w", {stream_key(cfg): ">"}, count=10)  # delivered, not acked
    lag = stream_lag(client, stream_key(cfg), "features", now_ms=first_ms + 7_000)
    assert lag["pending"] == 10 and lag["undelivered"] == 30 and lag["oldest_unacked_age_seconds"] == 7.0
    drain(worker)  # claims the 10 (claim_idle_ms 0) and reads the 30
    assert REGISTRY.get_sample_value(*age) - before == 40  # every applied event observed once
    assert gauge("mlplatform_stream_pending") == 0 and gauge("mlplatform_stream_undelivered") == 0
    assert gauge("mlplatform_stream_oldest_unacked_age_seconds") == 0

    cards = sorted(raw["customer_id"].unique())
    _, times = store.OnlineFeatures(cfg, ws).lookup_timed({"customer_id": cards, "terminal_id": [10] * len(cards)})
    newest = raw.groupby("customer_id")["tx_datetime"].max()
    assert times["customer_velocity"] == [newest[c].timestamp() for c in cards]


def test_a_scrape_without_redis_says_so(env):
    from prometheus_client import CollectorRegistry

    from mlplatform.features.stream_metrics import lag_client, register_lag

    cfg, *_ = env
    registry = CollectorRegistry()
    register_lag(lag_client(f"redis://127.0.0.1:{free_port()}/0"), cfg.name, stream_key(cfg), "features", registry)
    assert registry.get_sample_value("mlplatform_stream_redis_up", {"tenant": cfg.name}) == 0
    assert registry.get_sample_value("mlplatform_stream_length", {"tenant": cfg.name}) is None


def test_a_card_with_an_online_row_but_no_worker_state_starts_from_that_row(env):
    """A worker that starts after the batch state was materialised (or whose keys expired) takes the
    card's online row as its state: a later payment adds to it; one at or before the row's time is
    taken as already counted (`before_seed`)."""
    cfg, ws, client, _ = env
    raw = events(12, cards=1, seed=4)
    publish(client, cfg, raw.iloc[:10])
    drain(StreamWorker(cfg, ws, "first", client=client))
    for k in client.scan_iter(f"mlplatform:{cfg.name}:*"):  # the worker's state gone; the online row stays
        if not k.endswith(":events"):
            client.delete(k)
    publish(client, cfg, raw.iloc[[9, 10, 11]])  # one already in the row, two new
    fresh = StreamWorker(cfg, ws, "fresh", client=client)
    drain(fresh)
    assert fresh.stats.seeded == 1
    assert fresh.stats.events["before_seed"] == 1 and fresh.stats.events["applied"] == 2
    assert_state_equal(online_state(cfg, ws, [1]), offline_last_state(raw))


def test_a_private_redis_server_starts_answers_and_stops(tmp_path):
    """mlplatform.redis_local: what the bench (and a loop without Redis) runs its stream on."""
    import shutil

    import redis

    from mlplatform.redis_local import local_redis

    require(shutil.which("redis-server") is not None, "redis-server not installed")
    with local_redis(tmp_path / "redis") as url:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, retry=None)
        assert client.ping() and client.config_get("save")["save"] == ""  # in memory only
    with pytest.raises(redis.ConnectionError):
        client.ping()


def test_the_loops_replayed_payments_move_the_online_state(env):
    """`make demo-loop`'s payments (mlplatform.loop_stream): the data's last week, for whole cards,
    shifted by whole weeks past its end (weekday and hour kept) and published to the stream, take
    each replayed card's online state to the offline state of its history plus the replay."""
    cfg, ws, client, _ = env
    history = events(300, cards=6, seed=5)  # ~37 days, a payment every 3 h over 6 cards
    publish(client, cfg, history)
    drain(StreamWorker(cfg, ws, "history", client=client))
    replay = PaymentReplay(cfg, history, week_seconds=1.0, events_per_second=30.0)
    assert replay.due(0.0) == []
    due = replay.due(1.0)  # one simulated week: every payment of the chosen cards' last week
    week = history[history["tx_datetime"] > history["tx_datetime"].max() - pd.Timedelta(days=7)]
    cards = sorted({row["customer_id"] for _, row in due})
    assert len(cards) > 1 and len(cards) < week["customer_id"].nunique() and replay.cards == len(cards)
    replayed = pd.DataFrame([row for _, row in due]).assign(tx_datetime=lambda d: pd.to_datetime(d["tx_datetime"], utc=True))
    source = week[week["customer_id"].isin(cards)]
    assert len(due) == len(source) == replay.events_per_week
    assert list(replayed["tx_datetime"] - pd.Timedelta(days=7)) == list(source["tx_datetime"])  # weekday, hour kept
    assert list(replayed["amount"]) == list(source["amount"])
    pipe = client.pipeline(transaction=False)
    for eid, row in due:
        pipe.xadd(stream_key(cfg), replay.message(eid, row))
    pipe.execute()
    worker = StreamWorker(cfg, ws, "loop", client=client)
    drain(worker)
    assert worker.stats.events["applied"] == len(due) and worker.stats.events["before_seed"] == 0
    both = pd.concat([history, replayed.assign(transaction_id=10**7 + np.arange(len(replayed)))], ignore_index=True)
    assert_state_equal(online_state(cfg, ws, cards), offline_last_state(both[both["customer_id"].isin(cards)]))
    again = replay.due(2.0)  # the next cycle: the same week once more, a week later, new event ids
    assert [pd.Timestamp(r["tx_datetime"]) - pd.Timedelta(days=7) for _, r in again] == list(replayed["tx_datetime"])
    assert not {eid for eid, _ in again} & {eid for eid, _ in due}


def test_a_round_lingers_for_more_events(env):
    """A read of fewer than `batch` messages waits `linger_ms` for more, so one round (one Feast
    push, ~10 ms of CPU whatever its size) applies them together."""
    import threading

    cfg, ws, client, _ = env
    cfg = cfg.model_copy(update={"features": cfg.features.model_copy(update={
        "stream": cfg.features.stream.model_copy(update={"linger_ms": 400})})})
    raw = events(20, cards=2, seed=6)
    publish(client, cfg, raw.iloc[:10])
    later = threading.Timer(0.1, publish, args=(client, cfg, raw.iloc[10:]))
    later.start()
    worker = StreamWorker(cfg, ws, "lingering", client=client)
    assert worker.run_once(block_ms=1000) == 20  # the ten published 0.1 s into the linger came along
    later.join()
    assert worker.stats.events["applied"] == 20 and worker.stats.rows["written"] == 2
