"""MLflow's basic-auth app (`mlflow server --app-name basic-auth`, the `mlflow[auth]` extra): one
user per tenant with MANAGE on its own experiment and registered model, a read-only user for its
predictor, and nothing for anyone else.

Upstream, MLflow 3.17.2 (mlflow/server/auth/):
- config.py, read_auth_config: the ini named by MLFLOW_AUTH_CONFIG_PATH gives default_permission,
  database_uri and admin_username; MLFLOW_AUTH_ADMIN_PASSWORD wins over the file's admin_password,
  so the password lives only in the server's environment (a Secret in the cluster). The admin user
  is created with it the first time the auth database is empty.
- default_permission is what a user gets on a resource nobody granted them; MLflow's default, READ,
  lets every user read every model. NO_PERMISSIONS here: only grants open anything.
- __init__.py, _can_create_in_workspace: with workspaces off (the default) any authenticated user may
  create an experiment or a registered model under a free name and becomes its MANAGE owner. So the
  admin creates each tenant's experiment and registered model at onboarding (`onboard`): no tenant
  can claim another's name first.
- Clients authenticate with MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD
  (mlflow/utils/credentials.py, get_default_host_creds), read at each request.

User names: "<tenant>.trainer" and "<tenant>.predictor". A dot never occurs in a tenant name
(config.NAME_RE), so no tenant's user name can be another tenant's.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlplatform.envvars import scoped_environ

ADMIN = "admin"
DEFAULT_PERMISSION = "NO_PERMISSIONS"
USERNAME, PASSWORD = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"  # MLflow's own variables
CONFIG_PATH, ADMIN_PASSWORD = "MLFLOW_AUTH_CONFIG_PATH", "MLFLOW_AUTH_ADMIN_PASSWORD"
# The auth app's CSRF protection refuses to start without it (auth/__init__.py,
# get_flask_server_secret_key); every worker of a server must share it.
SECRET_KEY = "MLFLOW_FLASK_SERVER_SECRET_KEY"
SERVER_ARGS = ("--app-name", "basic-auth")
TRAINER_PERMISSION, PREDICTOR_PERMISSION = "MANAGE", "READ"
# The auth app checks the password of every request with werkzeug's scrypt hash (mlflow/server/auth/
# sqlalchemy_store.py, authenticate_user): 160 ms of CPU per request on the 2-core machines here, so
# a training run's hundreds of requests took minutes longer. MLflow 3.17 can cache a successful
# check (auth/__init__.py, _authenticate_cached; off unless auth_cache_ttl_seconds > 0): an old
# password or a deleted user may be accepted this long by a server process that cached it;
# permissions are still read per request.
AUTH_CACHE_SECONDS = 60


def auth_ini(database_uri: str) -> str:
    """The auth app's configuration: no password in it (MLFLOW_AUTH_ADMIN_PASSWORD carries it)."""
    return (
        "[mlflow]\n"
        f"default_permission = {DEFAULT_PERMISSION}\n"
        f"database_uri = {database_uri}\n"
        f"admin_username = {ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = false\n"
        f"auth_cache_ttl_seconds = {AUTH_CACHE_SECONDS}\n"
    )


def write_auth_ini(path: Path, database_uri: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(auth_ini(database_uri))
    return path


def server_env(ini: Path, admin_password: str, secret_key: str) -> dict[str, str]:
    """What `mlflow server --app-name basic-auth` needs in its environment."""
    if not admin_password or not secret_key:
        raise ValueError("the MLflow admin password and the server's secret key must not be empty")
    return {CONFIG_PATH: str(ini), ADMIN_PASSWORD: admin_password, SECRET_KEY: secret_key}


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def env(self) -> dict[str, str]:
        return {USERNAME: self.username, PASSWORD: self.password}


def new_password() -> str:
    return secrets.token_urlsafe(24)


def trainer_user(tenant: str) -> str:
    return f"{tenant}.trainer"


def predictor_user(tenant: str) -> str:
    return f"{tenant}.predictor"


@contextlib.contextmanager
def as_user(creds: Credentials) -> Iterator[None]:
    """MLflow calls inside act as `creds`; the variables are restored on exit."""
    with scoped_environ(creds.env()):
        yield


@dataclass(frozen=True)
class TenantIdentity:
    tenant: str
    trainer: Credentials
    predictor: Credentials
    experiment_id: str


def _user(auth, tracking_uri: str, username: str, password: str) -> None:
    """Create the user, or set its password when it exists and the password is another (a cluster's
    onboarding CronJob re-runs every few minutes: an unchanged password is left alone)."""
    from mlflow.exceptions import MlflowException

    try:
        auth.create_user(username, password)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        if not _authenticates(tracking_uri, Credentials(username, password)):
            auth.update_user_password(username, password)


def _authenticates(tracking_uri: str, creds: Credentials) -> bool:
    """Whether the server accepts `creds` (GET users/current: any authenticated user may)."""
    import requests

    response = requests.get(f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/users/current",
                            auth=(creds.username, creds.password), timeout=30)
    return response.status_code == 200


def onboard(tracking_uri: str, admin: Credentials, tenant: str, trainer_password: str | None = None,
            predictor_password: str | None = None) -> TenantIdentity:
    """As the admin: the tenant's two users, its experiment and registered model (named after the
    tenant, created now when missing), MANAGE for the trainer and READ for the predictor on both.
    Idempotent; passwords not given are generated."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    trainer = Credentials(trainer_user(tenant), trainer_password or new_password())
    predictor = Credentials(predictor_user(tenant), predictor_password or new_password())
    with as_user(admin):
        auth = get_app_client("basic-auth", tracking_uri=tracking_uri)
        for creds in (trainer, predictor):
            _user(auth, tracking_uri, creds.username, creds.password)
        client = MlflowClient(tracking_uri=tracking_uri)
        exp = client.get_experiment_by_name(tenant)
        experiment_id = exp.experiment_id if exp else client.create_experiment(tenant, tags={"tenant": tenant})
        try:
            client.get_registered_model(tenant)
        except MlflowException:
            client.create_registered_model(tenant, tags={"tenant": tenant})
        for creds, permission in ((trainer, TRAINER_PERMISSION), (predictor, PREDICTOR_PERMISSION)):
            _grant(auth, creds.username, "experiment", experiment_id, permission)
            _grant(auth, creds.username, "registered_model", tenant, permission)
    return TenantIdentity(tenant, trainer, predictor, experiment_id)


def _grant(auth, username: str, resource_type: str, resource_id: str, permission: str) -> None:
    """Grant `permission`; a grant already there is left alone when it is the same (the onboarding
    CronJob re-runs every few minutes: no window without access) and replaced when it differs."""
    from mlflow.exceptions import MlflowException

    try:
        auth.grant_user_permission(username, resource_type, resource_id, permission)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        if auth.get_user_permission(username, resource_type, resource_id).permission != permission:
            auth.revoke_user_permission(username, resource_type, resource_id)
            auth.grant_user_permission(username, resource_type, resource_id, permission)
