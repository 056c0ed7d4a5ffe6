"""The deployment settings a process takes from its environment, named once, and the `services`
profile: the cluster's topology on one machine (PostgreSQL, Redis, a real `mlflow server`).

The charts pass the same names (charts/tenant predictor, the RayJob in training/rayjob.py; a test
keeps them in step with SETTINGS). Embedded mode sets none of them: SQLite and files in the
workspace, as `make demo` has always run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from mlplatform.envvars import scoped_environ

TRACKING = "MLFLOW_TRACKING_URI"  # MLflow's own variable: a server URL (cluster, services) or a database
ONLINE_STORE = "MLPLATFORM_FEAST_ONLINE_STORE"  # "redis" or "sqlite"
REDIS = "MLPLATFORM_REDIS_ADDRESS"  # host:port[,db=N] of the Feast online store
REGISTRY = "MLPLATFORM_FEAST_REGISTRY"  # SQLAlchemy URL of Feast's SQL registry (PostgreSQL)
STREAM_REDIS = "MLPLATFORM_STREAM_REDIS_URL"  # redis:// URL of the event stream (features.stream.redis_url)
PREDICTION_LOG = "MLPLATFORM_PREDICTION_LOG"  # SQLAlchemy URL of the prediction log (monitoring/prediction_sinks.py)

SETTINGS = {
    TRACKING: "MLflow tracking URI (http://… through `mlflow server` and its artifact proxy)",
    ONLINE_STORE: "Feast online store type: redis or sqlite",
    REDIS: "Redis host:port of the Feast online store (implies redis)",
    REGISTRY: "SQLAlchemy URL of the Feast SQL registry, e.g. postgresql+psycopg://user@host/db",
    STREAM_REDIS: "redis:// URL of the tenant's event stream (replaces features.stream.redis_url)",
    PREDICTION_LOG: "SQLAlchemy URL of the prediction log the predictors append to and the quality job reads "
                    "(PostgreSQL); unset: parquet segments in the workspace",
}


def settings_in(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The deployment settings (SETTINGS) set in `environ`: what a child process must read the same
    stores with, when the rest of the caller's environment is not passed on."""
    return {k: environ[k] for k in SETTINGS if environ.get(k)}


@dataclass(frozen=True)
class Services:
    """Where the services profile's backing services are (defaults: this machine's)."""

    postgres: str = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    redis: str = "127.0.0.1:6379"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Services":
        return cls(postgres=environ.get("MLPLATFORM_SERVICES_POSTGRES", cls.postgres),
                   redis=environ.get("MLPLATFORM_SERVICES_REDIS", cls.redis))

    def env(self, tracking_uri: str) -> dict[str, str]:
        """The settings a process of the services profile gets (what the charts pass in a cluster)."""
        # the event stream on the same Redis (a tenant without features.stream ignores it)
        return {TRACKING: tracking_uri, ONLINE_STORE: "redis", REDIS: self.redis, REGISTRY: self.postgres,
                STREAM_REDIS: redis_url(self.redis), PREDICTION_LOG: self.postgres}


def redis_url(address: str) -> str:
    """The redis:// URL of a Feast Redis connection string (`host:port[,db=N][,password=P][,ssl=true]`,
    Feast's RedisOnlineStoreConfig format): the event stream's client takes URLs."""
    host, *options = [part.strip() for part in address.split(",")]
    opts = dict(option.split("=", 1) for option in options if "=" in option)
    scheme = "rediss" if opts.get("ssl", "").lower() == "true" else "redis"
    auth = f":{quote(opts['password'], safe='')}@" if opts.get("password") else ""
    return f"{scheme}://{auth}{host}/{opts.get('db', '0')}"


ADMIN_PASSWORD = "MLPLATFORM_SERVICES_MLFLOW_ADMIN_PASSWORD"  # the services profile's MLflow admin


@dataclass(frozen=True)
class Auth:
    """MLflow's basic-auth app for a server (identity/mlflow_auth.py): its ini (no password in it)
    and the admin's credentials, the password from ADMIN_PASSWORD or, when unset, new for this run
    (the auth database is this run's own: the admin is created with it at the server's first start)."""

    ini: Path
    admin_password: str = field(repr=False)
    secret_key: str = field(repr=False, default_factory=lambda: secrets.token_urlsafe(32))  # CSRF, per run

    @classmethod
    def create(cls, folder: Path, environ: Mapping[str, str] = os.environ) -> "Auth":
        from mlplatform.identity import mlflow_auth

        folder = Path(folder)
        ini = mlflow_auth.write_auth_ini(folder / "mlflow-auth.ini", f"sqlite:///{folder / 'mlflow-auth.db'}")
        return cls(ini, environ.get(ADMIN_PASSWORD) or mlflow_auth.new_password())

    @property
    def admin(self):
        from mlplatform.identity.mlflow_auth import ADMIN, Credentials

        return Credentials(ADMIN, self.admin_password)

    def server_env(self) -> dict[str, str]:
        from mlplatform.identity import mlflow_auth

        return mlflow_auth.server_env(self.ini, self.admin_password, self.secret_key)


def mlflow_server_command(backend_store_uri: str, artifacts_destination: Path, port: int,
                          host: str = "127.0.0.1", allowed_hosts: Sequence[str] = (),
                          auth: bool = False) -> list[str]:
    """`mlflow server` serving artifacts (its default): clients get `mlflow-artifacts:` URIs and
    upload and download through the server, which alone writes `artifacts_destination`.

    `allowed_hosts`: Host headers accepted besides this machine's (fnmatch patterns, e.g.
    "mlflow.mlplatform.svc.cluster.local:*"); MLflow's DNS-rebinding check answers 403 to any other
    name (mlflow/server/security_utils.py, is_allowed_host_header), as the chart's --allowed-hosts does."""
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    cmd = [mlflow, "server", "--backend-store-uri", backend_store_uri,
           "--artifacts-destination", str(artifacts_destination), "--host", host, "--port", str(port),
           "--workers", "1"]
    if allowed_hosts:
        cmd += ["--allowed-hosts", ",".join([*allowed_hosts, "localhost:*", "127.0.0.1:*"])]
    if auth:
        from mlplatform.identity.mlflow_auth import SERVER_ARGS

        cmd += list(SERVER_ARGS)
    return cmd


@contextlib.contextmanager
def mlflow_server(backend_store_uri: str, artifacts_destination: Path, log: Path,
                  timeout: float = 120, allowed_hosts: Sequence[str] = (), auth: Auth | None = None) -> Iterator[str]:
    """A running `mlflow server` on a free port (with `auth`: the basic-auth app); yields its URL."""
    from mlplatform.processes import free_port, running

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env |= auth.server_env() if auth else {}
    cmd = mlflow_server_command(backend_store_uri, artifacts_destination, port, allowed_hosts=allowed_hosts,
                                auth=auth is not None)
    with running(cmd, f"http://127.0.0.1:{port}/health", log, timeout=timeout, name="mlflow server", env=env):
        yield f"http://127.0.0.1:{port}"


REDIS_ADMIN_PASSWORD = "MLPLATFORM_SERVICES_REDIS_PASSWORD"  # the default user's, when Redis has one


def redis_admin(services: "Services | None" = None, environ: Mapping[str, str] = os.environ):
    """A redis-py client as Redis's default user: it creates the tenants' ACL users (redis_acl.py)."""
    import redis

    host, _, port = (services or Services.from_env()).redis.rpartition(":")
    return redis.Redis(host=host, port=int(port), password=environ.get(REDIS_ADMIN_PASSWORD) or None)


def reachable(address: str, timeout: float = 1.0) -> bool:
    """Whether host:port accepts a TCP connection."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def postgres_address(url: str) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return f"{parsed.host or '127.0.0.1'}:{parsed.port or 5432}"


def require_reachable(services: Services) -> None:
    """UserError naming the service that does not answer."""
    from mlplatform.errors import UserError

    for what, address in (("PostgreSQL", postgres_address(services.postgres)), ("Redis", services.redis)):
        if not reachable(address):
            raise UserError(f"the services profile needs {what} at {address}, which does not answer "
                            f"(set MLPLATFORM_SERVICES_POSTGRES / MLPLATFORM_SERVICES_REDIS)")


@contextlib.contextmanager
def profile(home: Path, log: Path, services: Services | None = None,
            allowed_hosts: Sequence[str] = (), auth: Auth | None = None) -> Iterator[dict[str, str]]:
    """The services profile for everything started inside: a real `mlflow server` (backend store in
    PostgreSQL, artifacts under <home>/mlflow-server-artifacts, the server's own disk as the chart's
    PVC is), and this process's environment set to the SETTINGS its children inherit (kfp.local's
    task subprocesses, the model server), restored on exit. Yields those settings.
    `allowed_hosts`: other names the server answers to (see mlflow_server_command).
    `auth`: the server runs MLflow's basic-auth app; callers onboard each tenant
    (identity.mlflow_auth.onboard) and act as its users."""
    services = services or Services.from_env()
    require_reachable(services)
    with mlflow_server(services.postgres, Path(home) / "mlflow-server-artifacts", log,
                       allowed_hosts=allowed_hosts, auth=auth) as url:
        env = services.env(url)
        with scoped_environ(env):
            yield env
