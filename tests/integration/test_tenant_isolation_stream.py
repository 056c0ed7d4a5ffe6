"""The stream worker as its tenant's `stream` Redis ACL user (identity/redis_acl.py), on this
machine's Redis: with only that identity it reads its stream, applies the bucket state, pushes the
rows to Feast's online store and reports its lag; it cannot read, add to or acknowledge another
tenant's stream, nor write that tenant's online features or state, nor list keys. The other tenant
is named with this one's name as a suffix (`card<name>`), the case Feast's key layout makes hard.

ACL users carry a uuid and are deleted afterwards (the keys by the `env` fixture). Skipped locally
without Redis; required under CI=true."""

from __future__ import annotations

import uuid

import pytest
import redis

from mlplatform.features.stream import StreamWorker, publish, stream_key
from mlplatform.features.stream_metrics import lag_client, stream_lag
from mlplatform.identity import redis_acl
from mlplatform.identity.mlflow_auth import new_password
from tests.integration.test_stream import REDIS, assert_state_equal, drain, env, events, offline_last_state  # noqa: F401

pytestmark = [pytest.mark.service]


@pytest.fixture
def users(env):  # noqa: F811 - the fixture imported above
    cfg, _, admin, _ = env
    tag = uuid.uuid4().hex[:8]
    other = f"card{cfg.name}"
    made = {(t, role): redis_acl.create_user(admin, t, role, new_password(),
                                             username=f"test-{tag}-{redis_acl.user_name(t, role)}")
            for t, role in ((cfg.name, "stream"), (cfg.name, "reader"), (other, "stream"))}
    yield other, made
    admin.execute_command("ACL", "DELUSER", *[u.username for u in made.values()])
    for key in admin.scan_iter(f"*{redis_acl.feast_project(other)}", count=1000):
        admin.unlink(key)
    admin.unlink(f"mlplatform:{other}:events")


def as_user(user: redis_acl.RedisUser) -> redis.Redis:
    return redis.Redis.from_url(REDIS, decode_responses=True, username=user.username, password=user.password)


def refused(call) -> str:
    with pytest.raises(redis.exceptions.NoPermissionError) as err:
        call()
    return str(err.value)


def test_the_stream_worker_does_its_job_as_its_stream_user_and_nothing_of_another_tenant(env, users, monkeypatch):  # noqa: F811
    cfg, ws, admin, _ = env
    other, made = users
    me = made[(cfg.name, "stream")]
    monkeypatch.setenv(redis_acl.USERNAME, me.username)  # as the chart passes it: this process's identity
    monkeypatch.setenv(redis_acl.PASSWORD, me.password)

    raw = events(60)
    producer = as_user(me)  # the stream role may publish too (a payment service with that identity)
    assert publish(producer, cfg, raw) == 60
    worker = StreamWorker(cfg, ws, "w1")  # its own clients, built from the environment
    assert worker.redis.connection_pool.connection_kwargs["username"] == me.username
    drain(worker)
    assert worker.stats.events["applied"] == 60 and worker.stats.rows["written"] >= 3
    monkeypatch.setenv(redis_acl.USERNAME, made[(cfg.name, "reader")].username)  # read back as the predictor
    monkeypatch.setenv(redis_acl.PASSWORD, made[(cfg.name, "reader")].password)
    from tests.integration.test_stream import online_state

    assert_state_equal(online_state(cfg, ws, [1, 2, 3]), offline_last_state(raw))
    monkeypatch.setenv(redis_acl.USERNAME, me.username)
    monkeypatch.setenv(redis_acl.PASSWORD, me.password)
    # its lag gauges, read with the same identity on each scrape
    lag = stream_lag(lag_client(REDIS), stream_key(cfg), cfg.features.stream.group)
    assert lag["length"] == 60 and lag["pending"] == 0 and lag["undelivered"] == 0

    # the other tenant (its name ends with this one's): its stream, features and state are out of reach
    theirs = as_user(made[(other, "stream")])
    their_stream = f"mlplatform:{other}:events"
    theirs.xadd(their_stream, {"id": "1", "key": "1", "ts_us": "0", "value": "1"})
    theirs.xgroup_create(their_stream, "features", id="0")
    mine = as_user(me)
    assert "no permissions" in refused(lambda: mine.xreadgroup("features", "w1", {their_stream: ">"}))
    assert "no permissions" in refused(lambda: mine.xadd(their_stream, {"id": "2"}))
    assert "no permissions" in refused(lambda: mine.xack(their_stream, "features", "0-1"))
    assert "no permissions" in refused(lambda: mine.xlen(their_stream))
    their_feature_key = b"\x02\x00\x00\x00" + redis_acl.feast_project(other).encode()
    assert "no permissions" in refused(lambda: mine.hset(their_feature_key, "x", "1"))
    assert "no permissions" in refused(lambda: mine.set(f"mlplatform:{other}:customer_velocity:seen:1", "1"))
    assert "no permissions" in refused(lambda: mine.scan(count=10))
    assert "no permissions" in refused(lambda: mine.keys("*"))
    # the predictor's reader may not touch the stream at all
    reader = as_user(made[(cfg.name, "reader")])
    assert "no permissions" in refused(lambda: reader.xadd(stream_key(cfg), {"id": "3"}))
    assert "no permissions" in refused(lambda: reader.xreadgroup("features", "r", {stream_key(cfg): ">"}))
