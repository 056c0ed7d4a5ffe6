"""`mlplatform onboard` (identity/onboard_cli.py), what the tenant chart's onboarding Job runs, against
the real servers: an `mlflow server --app-name basic-auth`, a private `redis-server` whose default
user has a password (as the platform chart's), this machine's PostgreSQL. The passwords come from
folders laid out as the mounted Secrets are; afterwards each identity can do its own work and the
predictor cannot do the trainer's. Required under CI=true (tests/topology runs the same command in
the Job's sandbox)."""

from __future__ import annotations

import importlib.util
import json
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlplatform import services
from mlplatform.cli import app
from mlplatform.identity import mlflow_auth, redis_acl, sql_registry
from mlplatform.identity.onboard_cli import IDENTITY_KEYS, PLATFORM_DATABASE
from mlplatform.redis_local import local_redis
from tests.conftest import require

pytestmark = [pytest.mark.service, pytest.mark.usefixtures("restore_tracking_uri"), pytest.mark.timeout(900)]


def _secret(folder: Path, values: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for key, value in values.items():
        (folder / key).write_text(value + "\n")  # a trailing newline, as `--from-file` may leave
    return folder


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    require(importlib.util.find_spec("flask_wtf") is not None, "the mlflow[auth] extra is not installed")
    svc = services.Services.from_env()
    require(services.reachable(services.postgres_address(svc.postgres)), f"PostgreSQL is not reachable ({svc.postgres})")
    folder = tmp_path_factory.mktemp("onboarding")
    auth = services.Auth.create(folder, environ={})
    with local_redis(folder / "redis") as url, services.mlflow_server(
            f"sqlite:///{folder / 'mlflow.db'}", folder / "artifacts", folder / "server.log", auth=auth, timeout=600) as mlflow:
        import redis

        admin = redis.Redis.from_url(url)
        admin.config_set("requirepass", "redis-admin-password")  # the default user, as the chart starts it
        address = url.removeprefix("redis://").split("/", 1)[0]
        yield {"mlflow": mlflow, "auth": auth, "redis": address, "postgres": svc.postgres, "folder": folder}


def _onboard(servers, tenant: str, identity: Path, **overrides) -> object:
    folder = servers["folder"] / uuid.uuid4().hex[:8]
    mlflow_admin = overrides.get("mlflow_admin") or _secret(folder / "mlflow-admin", {
        "username": servers["auth"].admin.username, "password": servers["auth"].admin_password})
    redis_admin = _secret(folder / "redis-admin", {"password": "redis-admin-password"})
    from sqlalchemy.engine import make_url

    url = make_url(servers["postgres"])
    postgres_admin = _secret(folder / "postgres-auth", {"username": url.username, "password": "trust-ignores-it"})
    env = {services.TRACKING: servers["mlflow"], services.REDIS: servers["redis"],
           PLATFORM_DATABASE: f"{url.drivername}://{url.host}:{url.port}/{url.database}"}
    args = ["onboard", tenant, "--identity", str(identity), "--mlflow-admin", str(mlflow_admin),
            "--redis-admin", str(redis_admin), "--postgres-admin", str(postgres_admin)]
    return CliRunner().invoke(app, args, env=env)


def test_onboarding_creates_each_identity_and_each_can_do_its_own_work_only(servers, tmp_path):
    import redis
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    tenant = f"onb-{uuid.uuid4().hex[:6]}"
    passwords = {key: f"{key.replace('-', '_')}_{uuid.uuid4().hex}" for key in IDENTITY_KEYS}
    identity = _secret(tmp_path / "identity", passwords)
    try:
        first = _onboard(servers, tenant, identity)
        assert first.exit_code == 0, first.output
        done = json.loads(first.output.strip().splitlines()[-1])
        assert done["mlflow"]["users"] == [f"{tenant}.trainer", f"{tenant}.predictor"]
        assert done["redis"]["users"] == [f"{tenant}.{r}" for r in redis_acl.ROLES]
        assert done["postgres"]["role"] == sql_registry.role(tenant)
        assert not [p for p in passwords.values() if p in first.output], "a password in the output"

        url = servers["mlflow"]
        trainer = mlflow_auth.Credentials(f"{tenant}.trainer", passwords["mlflow-trainer"])
        predictor = mlflow_auth.Credentials(f"{tenant}.predictor", passwords["mlflow-predictor"])
        experiment_id = done["mlflow"]["experiment_id"]
        with mlflow_auth.as_user(trainer):
            run = MlflowClient(url).create_run(experiment_id)
            MlflowClient(url).set_registered_model_tag(tenant, "owner", "trainer")
        with mlflow_auth.as_user(predictor):
            assert MlflowClient(url).get_run(run.info.run_id).info.experiment_id == experiment_id
            with pytest.raises(MlflowException) as denied:
                MlflowClient(url).set_registered_model_tag(tenant, "owner", "predictor")
            assert denied.value.get_http_status_code() == 403

        host, port = servers["redis"].rsplit(":", 1)
        key = b"entity" + redis_acl.feast_project(tenant).encode()
        writer = redis.Redis(host=host, port=int(port), username=f"{tenant}.writer", password=passwords["redis-writer"])
        reader = redis.Redis(host=host, port=int(port), username=f"{tenant}.reader", password=passwords["redis-reader"])
        writer.hset(key, "f", "1")
        assert reader.hget(key, "f") == b"1"
        with pytest.raises(redis.exceptions.NoPermissionError):
            reader.hset(key, "f", "2")

        from sqlalchemy import create_engine, text

        engine = create_engine(sql_registry.tenant_url(servers["postgres"], tenant, passwords["postgres"]))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_user, current_schema()")).one() == (sql_registry.role(tenant),) * 2
        engine.dispose()

        again = _onboard(servers, tenant, identity)  # the CronJob's next run: nothing changes, nothing fails
        assert again.exit_code == 0, again.output
        assert reader.hget(key, "f") == b"1"
    finally:
        sql_registry.drop(servers["postgres"], tenant)


def test_onboarding_says_which_secret_key_is_missing_and_which_server_refused(servers, tmp_path):
    tenant = f"onb-{uuid.uuid4().hex[:6]}"
    partial = _secret(tmp_path / "partial", {"mlflow-trainer": "x" * 20})
    missing = _onboard(servers, tenant, partial)
    assert missing.exit_code == 2, missing.output
    assert "has no key 'mlflow-predictor'" in " ".join(missing.output.split())  # (rich wraps lines)

    identity = _secret(tmp_path / "identity", {key: uuid.uuid4().hex for key in IDENTITY_KEYS})
    wrong = _secret(tmp_path / "wrong-admin", {"username": "admin", "password": "not-the-admin-password"})
    refused = _onboard(servers, tenant, identity, mlflow_admin=wrong)
    assert refused.exit_code == 2, refused.output
    said = " ".join(refused.output.split())
    assert "refused onboarding" in said and "as 'admin'" in said and "401" in said, said
    # MLflow's refusal did not keep the others from being done (Redis first: after a Redis restart
    # its users are what the CronJob is for)
    record = json.loads(refused.output.splitlines()[0])
    assert record["redis"]["users"] == [f"{tenant}.{r}" for r in redis_acl.ROLES]
    assert record["postgres"]["role"] == sql_registry.role(tenant) and "error" in record["mlflow"]
    sql_registry.drop(servers["postgres"], tenant)


def test_an_admin_secret_mounted_empty_skips_its_service(servers, tmp_path):
    """The chart mounts the admins' Secrets optional: a platform without one (MLflow's auth app
    off, say) gets the others done and that one skipped, by name."""
    tenant = f"onb-{uuid.uuid4().hex[:6]}"
    identity = _secret(tmp_path / "identity", {key: uuid.uuid4().hex for key in IDENTITY_KEYS})
    empty = tmp_path / "mlflow-admin"
    (empty / "..data").mkdir(parents=True)  # what an optional, absent Secret's volume may hold: nothing of ours
    try:
        result = _onboard(servers, tenant, identity, mlflow_admin=empty)
        assert result.exit_code == 0, result.output
        record = json.loads(result.output.splitlines()[0])
        assert record["mlflow"] == {"skipped": f"no admin Secret mounted at {empty}"}
        assert record["redis"]["users"] and record["postgres"]["role"] == sql_registry.role(tenant)
    finally:
        sql_registry.drop(servers["postgres"], tenant)
