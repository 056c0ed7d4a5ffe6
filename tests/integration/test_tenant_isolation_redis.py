"""Tenants cannot touch each other's online features: Redis ACL users (identity/redis_acl.py) on
this machine's Redis, tenants `fraud` and `cardfraud` (one name a suffix of the other, as Feast's
key is entity key + project). Rows go in and out through Feast's own RedisOnlineStore
(online_write_batch, online_read) with the users' connection strings; each cross-tenant attempt
gets Redis's NOPERM, which the platform raises as AccessDenied naming user and tenant.

The ACL users carry a uuid and are deleted afterwards, with the keys written. Skipped locally
without Redis; required under CI=true."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest
import redis
from feast import Entity, FeatureView, Field, FileSource
from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.repo_config import RepoConfig
from feast.types import Float64

from mlplatform import services
from mlplatform.identity import redis_acl
from mlplatform.identity.mlflow_auth import new_password
from mlplatform.identity.refusal import AccessDenied, refused
from tests.conftest import require

pytestmark = [pytest.mark.service]
A, B = "fraud", "cardfraud"
VIEW = FeatureView(name="card_stats", entities=[Entity(name="card", join_keys=["card_id"])],
                   schema=[Field(name="amount_sum", dtype=Float64)],
                   source=FileSource(path="unused.parquet", timestamp_field="ts"))


@pytest.fixture(scope="module")
def admin():
    address = services.Services.from_env().redis
    require(services.reachable(address), f"Redis is not reachable on {address}")
    host, port = address.split(":")
    client = redis.Redis(host=host, port=int(port))
    yield address, client
    client.close()


@pytest.fixture(scope="module")
def users(admin):
    _, client = admin
    tag = uuid.uuid4().hex[:8]
    made = {(t, role): redis_acl.create_user(client, t, role, new_password(),
                                             username=f"test-{tag}-{redis_acl.user_name(t, role)}")
            for t in (A, B) for role in ("reader", "writer")}
    yield made
    client.execute_command("ACL", "DELUSER", *[u.username for u in made.values()])


@pytest.fixture(scope="module")
def entity():
    """A card id of this run only (other tests share the Redis): its keys are deleted afterwards."""
    return EntityKey(join_keys=["card_id"], entity_values=[Value(int64_val=uuid.uuid4().int % 2**62)])


@pytest.fixture(scope="module", autouse=True)
def cleanup(admin, entity):
    yield
    from feast.infra.online_stores.helpers import _redis_key

    admin[1].delete(*[_redis_key(redis_acl.feast_project(t), entity, 3) for t in (A, B)])


def config(tenant: str, user: redis_acl.RedisUser, address: str) -> RepoConfig:
    return RepoConfig(project=redis_acl.feast_project(tenant), provider="local", registry="unused.db",
                      online_store=RedisOnlineStoreConfig(connection_string=user.connection_string(address)),
                      entity_key_serialization_version=3)


def write(tenant: str, user: redis_acl.RedisUser, address: str, entity: EntityKey, value: float) -> None:
    now = datetime.now(timezone.utc)
    with refused("write", f"the online features of tenant {tenant!r}", user.username):
        RedisOnlineStore().online_write_batch(config(tenant, user, address), VIEW,
                                              [(entity, {"amount_sum": Value(double_val=value)}, now, now)], None)


def read(tenant: str, user: redis_acl.RedisUser, address: str, entity: EntityKey) -> float | None:
    with refused("read", f"the online features of tenant {tenant!r}", user.username):
        [(_, row)] = RedisOnlineStore().online_read(config(tenant, user, address), VIEW, [entity], ["amount_sum"])
    return row["amount_sum"].double_val if row else None


def _denied(excinfo, user: redis_acl.RedisUser, tenant: str) -> None:
    err = excinfo.value
    assert err.identity == user.username and f"tenant {tenant!r}" in str(err) and "NOPERM" in err.reason, err


def test_each_tenant_reads_and_writes_its_own_features(admin, users, entity):
    address = admin[0]
    write(A, users[A, "writer"], address, entity, 1.5)
    write(B, users[B, "writer"], address, entity, 7.0)
    assert read(A, users[A, "reader"], address, entity) == 1.5
    assert read(B, users[B, "reader"], address, entity) == 7.0


def test_no_tenant_reads_or_writes_another_tenants_keys(admin, users, entity):
    address = admin[0]
    write(B, users[B, "writer"], address, entity, 7.0)
    write(A, users[A, "writer"], address, entity, 1.5)
    for (me, other) in ((A, B), (B, A)):
        for role in ("reader", "writer"):
            with pytest.raises(AccessDenied) as excinfo:
                read(other, users[me, role], address, entity)
            _denied(excinfo, users[me, role], other)
        with pytest.raises(AccessDenied) as excinfo:
            write(other, users[me, "writer"], address, entity, -1.0)
        _denied(excinfo, users[me, "writer"], other)
    assert read(B, users[B, "reader"], address, entity) == 7.0  # untouched by the attempts
    assert read(A, users[A, "reader"], address, entity) == 1.5


def test_the_predictor_identity_is_read_only(admin, users, entity):
    with pytest.raises(AccessDenied) as excinfo:
        write(A, users[A, "reader"], admin[0], entity, 9.0)
    _denied(excinfo, users[A, "reader"], A)


def test_no_tenant_lists_key_names(admin, users):
    host, port = admin[0].split(":")
    for user in users.values():
        client = redis.Redis(host=host, port=int(port), username=user.username, password=user.password)
        assert client.ping()
        for command in (("KEYS", "*"), ("SCAN", "0"), ("SCAN", "0", "MATCH", "*T_fraud")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.execute_command(*command)
        client.close()


def test_a_bare_suffix_pattern_would_have_leaked(admin, entity, users):
    """Why the project is decorated: an ACL on `*fraud` (the project named as the tenant) reads
    cardfraud's key too. Here with the decorated projects, so the check is on Redis's own matcher."""
    address, client = admin
    write(B, users[B, "writer"], address, entity, 7.0)
    naive = f"test-{uuid.uuid4().hex[:8]}-naive"
    password = new_password()
    client.execute_command("ACL", "SETUSER", naive, "reset", "on", f">{password}", "-@all", "+hmget",
                           f"%R~*{A}")  # matches keys ending in "fraud": T_cardfraud's too
    try:
        assert read(B, redis_acl.RedisUser(naive, password), address, entity) == 7.0
        assert redis_acl.feast_key_pattern(A) == "*T_fraud" and redis_acl.feast_key_pattern(B) == "*T_cardfraud"
    finally:
        client.execute_command("ACL", "DELUSER", naive)
