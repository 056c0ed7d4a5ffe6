"""Redis ACL users for a tenant's Feast online store: each matches the tenant's keys and no other
tenant's, the predictor reads only, nobody lists keys (KEYS, SCAN are not granted).

Feast's Redis key is the serialised entity key FOLLOWED BY the project name
(feast/infra/online_stores/helpers.py, _redis_key: serialize_entity_key(...) + project.encode()),
and Feast 0.67's RedisOnlineStoreConfig has no key prefix (its fields: redis_type, client,
sentinel_master, connection_string, key_ttl_seconds, full_scan_for_deletion, skip_dedup). So the
only pattern that selects a tenant's keys is a suffix, `*<project>`, and with project = tenant name
`*fraud` would also match every key of `cardfraud`. The project is therefore `T_<slug>`: a slug is
lower case ([a-z0-9_], config.slug), so "T" occurs in a project once, at its start. If `T_<s>` were
a proper suffix of `T_<o>`, that "T" would sit inside <o>: impossible. `*T_fraud` never matches a
key ending in `T_cardfraud` (Redis matches ACL patterns case-sensitively). Feast allows letters,
digits and "_" in a project (repo_operations.is_valid_name); "-" is refused with a SQLite online
store (repo_config.py, _validate_project_name), so it cannot be the marker.

Roles (user names "<tenant>.<role>"; "." never occurs in a tenant name):
- reader (the predictor): %R~ on the tenant's Feast keys; HMGET/HGET/HGETALL only.
- writer (materialisation, the stream worker's push): %RW~ on them. Not write-only: Feast's
  deduplicating write reads each key's stored timestamp (HMGET) before its HSET
  (redis.py, online_write_batch; only `skip_dedup: true` drops that read).
- stream (the stream worker's own state, issue 14): its keys mlplatform:<tenant>:* as well.
Neither KEYS nor SCAN is granted, which also means Feast's delete_table / teardown (SCAN) need an
operator's identity: removing a feature view's rows is an admin task.

Credentials reach Feast through the connection string, `host:port,username=…,password=…`
(redis.py, _parse_connection_string passes them to redis.Redis). `feature_store.yaml` names them as
${MLPLATFORM_REDIS_USERNAME} / ${MLPLATFORM_REDIS_PASSWORD}, which Feast expands when it reads
the file (repo_config.py, load_repo_config: os.path.expandvars): no password on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

USERNAME, PASSWORD = "MLPLATFORM_REDIS_USERNAME", "MLPLATFORM_REDIS_PASSWORD"
CONNECT = ("+ping", "+select")  # health checks, a db other than 0 (redis-py ignores a refused CLIENT SETINFO)
READ = ("+hmget", "+hget", "+hgetall", "+exists", "+ttl", "+pttl")
WRITE = ("+hset", "+expire", "+pexpire", "+hdel", "+del", "+unlink")
STREAM = ("+xreadgroup", "+xack", "+xautoclaim", "+xgroup|create", "+xadd", "+evalsha", "+eval",
          "+script|load", "+script|exists", "+get", "+set", "+incr", "+hincrby", "+hincrbyfloat", "+sadd", "+sismember",
          "+multi", "+exec",
          # the worker's lag gauges (features/stream_metrics.py, stream_lag), read on each scrape
          "+xlen", "+xinfo|groups", "+xpending", "+xrange")
ROLES = ("reader", "writer", "stream")


def feast_project(tenant: str) -> str:
    """The tenant's Feast project: `T_<slug>` (see the module docstring for why)."""
    from mlplatform.config import slug

    return f"T_{slug(tenant)}"


def feast_key_pattern(tenant: str) -> str:
    """The ACL/glob pattern of the tenant's Feast keys (a suffix: the project ends each key)."""
    return f"*{feast_project(tenant)}"


def stream_key_pattern(tenant: str) -> str:
    return f"mlplatform:{tenant}:*"  # the stream worker's keys (features/stream.py); ":" ends the name


def user_name(tenant: str, role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown Redis role {role!r}: one of {ROLES}")
    return f"{tenant}.{role}"


def acl_rules(tenant: str, role: str, password: str) -> list[str]:
    """ACL SETUSER arguments: everything reset first, then only what the role needs."""
    if not password:
        raise ValueError("a Redis ACL user needs a password")
    user_name(tenant, role)  # validates the role
    rules = ["reset", "on", f">{password}", "-@all", *CONNECT, *READ]
    if role == "reader":
        return rules + [f"%R~{feast_key_pattern(tenant)}"]
    rules += [*WRITE, f"~{feast_key_pattern(tenant)}"]
    if role == "stream":
        rules += [*STREAM, f"~{stream_key_pattern(tenant)}"]
    return rules


@dataclass(frozen=True)
class RedisUser:
    username: str
    password: str = field(repr=False)

    def connection_string(self, address: str) -> str:
        """Feast's connection string for `address` (host:port[,db=N]) as this user."""
        return f"{address},username={self.username},password={self.password}"

    def env(self) -> dict[str, str]:
        return {USERNAME: self.username, PASSWORD: self.password}


def create_user(client, tenant: str, role: str, password: str, username: str | None = None) -> RedisUser:
    """ACL SETUSER with `acl_rules` (as an admin connection `client`); `username` defaults to
    user_name(tenant, role)."""
    username = username or user_name(tenant, role)
    client.execute_command("ACL", "SETUSER", username, *acl_rules(tenant, role, password))
    return RedisUser(username, password)


def client_credentials(environ) -> dict[str, str]:
    """redis-py arguments for this process's identity, for the clients that take a URL (the event
    stream's); redis-py lets a URL's own user and password win over these."""
    if environ.get(USERNAME) and environ.get(PASSWORD):
        return {"username": environ[USERNAME], "password": environ[PASSWORD]}
    return {}


def credentials_suffix(environ) -> str:
    """What store_config appends to a Redis connection string when this process has Redis
    credentials: Feast expands the ${...} when it reads feature_store.yaml (see above)."""
    if environ.get(USERNAME) and environ.get(PASSWORD):
        return f",username=${{{USERNAME}}},password=${{{PASSWORD}}}"
    return ""
