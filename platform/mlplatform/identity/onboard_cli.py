"""`mlplatform onboard TENANT`: a tenant's identities in the shared services, created by their admins
(the cluster's onboarding Job and CronJob: charts/tenant/templates/onboarding.yaml).

- MLflow (as its admin): the users `<tenant>.trainer` (MANAGE) and `<tenant>.predictor` (READ) on the
  tenant's experiment and registered model, created now when missing (mlflow_auth.onboard);
- Redis (as its default user): the ACL users `<tenant>.reader`, `.writer`, `.stream` (redis_acl.py);
- PostgreSQL (as its superuser): the role `feast_<slug>` and its own schema, which hold the tenant's
  Feast registry and prediction log (sql_registry.py).

Passwords are files of mounted Secrets (the tenant's `<tenant>-identity`, the admins' own), never
arguments or environment, so no process listing shows them. Every step is idempotent: re-running
sets the same passwords again and recreates what a restarted service lost (Redis keeps its ACL users
in memory). The output names what was done, never a password.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Optional

import typer

from mlplatform.errors import UserError

IDENTITY_KEYS = ("mlflow-trainer", "mlflow-predictor", "redis-reader", "redis-writer", "redis-stream", "postgres")
PLATFORM_DATABASE = "MLPLATFORM_PLATFORM_DATABASE"  # the database URL without user or password


class OnboardingError(UserError):
    """A Secret file is missing or a service refused the admin."""


def read_secret_dir(folder: Path, keys: tuple[str, ...]) -> dict[str, str]:
    """The files `keys` of a mounted Secret (a trailing newline, as `kubectl create secret
    --from-file` may leave, is not part of the value)."""
    values = {}
    for key in keys:
        path = Path(folder) / key
        if not path.is_file():
            raise OnboardingError(f"{path} is missing: the Secret mounted at {folder} has no key {key!r}")
        values[key] = path.read_text().rstrip("\n")
        if not values[key]:
            raise OnboardingError(f"{path} is empty")
    return values


def onboard_mlflow(tenant: str, tracking_uri: str, admin_dir: Path, identity: dict[str, str]) -> dict:
    from mlplatform.identity import mlflow_auth

    admin = read_secret_dir(admin_dir, ("username", "password"))
    try:
        ident = mlflow_auth.onboard(tracking_uri, mlflow_auth.Credentials(admin["username"], admin["password"]), tenant,
                                    trainer_password=identity["mlflow-trainer"],
                                    predictor_password=identity["mlflow-predictor"])
    except Exception as err:  # noqa: BLE001 - reported with the server's reason
        raise OnboardingError(f"MLflow at {tracking_uri} refused onboarding {tenant!r} as {admin['username']!r}: "
                              f"{type(err).__name__}: {err}") from err
    return {"users": [ident.trainer.username, ident.predictor.username], "experiment_id": ident.experiment_id,
            "registered_model": tenant}


def onboard_redis(tenant: str, address: str, admin_dir: Path, identity: dict[str, str]) -> dict:
    import redis

    from mlplatform.identity import redis_acl
    from mlplatform.services import redis_url

    password = read_secret_dir(admin_dir, ("password",))["password"]
    client = redis.Redis.from_url(redis_url(address), password=password)
    try:
        users = [redis_acl.create_user(client, tenant, role, identity[f"redis-{role}"]).username
                 for role in redis_acl.ROLES]
    except (redis.RedisError, ValueError) as err:
        raise OnboardingError(f"Redis at {address} refused creating {tenant!r}'s ACL users: {err}") from err
    finally:
        client.close()
    return {"users": users}


def onboard_postgres(tenant: str, database_url: str, admin_dir: Path, identity: dict[str, str]) -> dict:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from mlplatform.identity import sql_registry

    admin = read_secret_dir(admin_dir, ("username", "password"))
    admin_url = make_url(database_url).set(username=admin["username"], password=admin["password"])
    try:
        sql_registry.provision(admin_url.render_as_string(hide_password=False), tenant, identity["postgres"])
    except (SQLAlchemyError, ValueError) as err:
        raise OnboardingError(f"PostgreSQL at {admin_url.render_as_string()} refused creating {tenant!r}'s role: "
                              f"{str(err).splitlines()[0]}") from err
    return {"role": sql_registry.role(tenant), "schema": sql_registry.role(tenant)}


def onboard(
    tenant: Annotated[str, typer.Argument(help="tenant name")],
    identity: Annotated[Path, typer.Option(help="the tenant's <tenant>-identity Secret, mounted")],
    mlflow_admin: Annotated[Path, typer.Option(help="the mlflow-admin Secret (username, password), mounted")],
    redis_admin: Annotated[Optional[Path], typer.Option(help="the redis-admin Secret (password), mounted")] = None,
    postgres_admin: Annotated[Optional[Path], typer.Option(help="the postgres-auth Secret (username, password), mounted")] = None,
) -> None:
    """As the services' admins: the tenant's Redis ACL users, database role and MLflow users (idempotent).

    Redis first: re-creating its users after a Redis restart is why a cluster runs this every few
    minutes, and a service that is down does not keep the others from being done. An admin Secret
    mounted empty (optional and absent: MLflow without its auth app, say) skips that service."""
    from mlplatform import services
    from mlplatform.config import NAME_RE

    if not re.match(NAME_RE, tenant):
        raise OnboardingError(f"{tenant!r} is not a tenant name ({NAME_RE})")
    secrets = read_secret_dir(identity, IDENTITY_KEYS)
    steps = {"redis": (redis_admin, lambda: onboard_redis(tenant, _setting(services.REDIS), redis_admin, secrets)),
             "postgres": (postgres_admin, lambda: onboard_postgres(tenant, _setting(PLATFORM_DATABASE), postgres_admin,
                                                                   secrets)),
             "mlflow": (mlflow_admin, lambda: onboard_mlflow(tenant, _setting(services.TRACKING), mlflow_admin, secrets))}
    done: dict = {"tenant": tenant}
    failed = []
    for name, (admin_dir, step) in steps.items():
        if admin_dir is None or not any(Path(admin_dir).glob("[!.]*")):
            done[name] = {"skipped": f"no admin Secret mounted at {admin_dir}"}
            continue
        try:
            done[name] = step()
        except OnboardingError as err:
            done[name] = {"error": str(err)}
            failed.append(str(err))
    typer.echo(json.dumps(done))
    if failed:
        raise OnboardingError("; ".join(failed))


def _setting(name: str) -> str:
    if not os.environ.get(name):
        raise OnboardingError(f"{name} is not set: the onboarding pod's env names the service (onboarding.yaml)")
    return os.environ[name]
