"""The services profile's identities (`make demo-services`): each tenant onboarded in MLflow
(mlflow_auth.onboard), given Redis ACL users (redis_acl.py) and its own Feast registry schema
(sql_registry.py), then its pipeline run as its trainer and its model server as its predictor,
through the variables the charts set in a cluster. The Redis users are deleted on close (this
profile's passwords are new each run); registry roles and schemas stay, as the registries do."""

from __future__ import annotations

from dataclasses import dataclass

from mlplatform.envvars import scoped_environ
from mlplatform.identity import mlflow_auth, redis_acl, sql_registry
from mlplatform.identity.mlflow_auth import Credentials, TenantIdentity


@dataclass(frozen=True)
class TenantAccess:
    mlflow: TenantIdentity
    redis_writer: redis_acl.RedisUser
    redis_reader: redis_acl.RedisUser
    registry_url: str | None = None


_env = scoped_environ


class Onboarding:
    """As the admins of MLflow (`admin`) and Redis (`redis_admin`, a redis-py client)."""

    def __init__(self, tracking_uri: str, admin: Credentials, redis_admin=None, registry_admin_url: str | None = None):
        self.tracking_uri, self.admin, self.redis_admin = tracking_uri, admin, redis_admin
        self.registry_admin_url = registry_admin_url
        self.tenants: dict[str, TenantAccess] = {}

    def onboard(self, tenant: str) -> TenantAccess:
        if tenant not in self.tenants:
            ident = mlflow_auth.onboard(self.tracking_uri, self.admin, tenant)
            users = {role: redis_acl.RedisUser(redis_acl.user_name(tenant, role), mlflow_auth.new_password())
                     for role in ("writer", "reader")}
            if self.redis_admin is not None:
                for role, user in users.items():
                    redis_acl.create_user(self.redis_admin, tenant, role, user.password)
            registry = sql_registry.provision(self.registry_admin_url, tenant) if self.registry_admin_url else None
            self.tenants[tenant] = TenantAccess(ident, users["writer"], users["reader"], registry)
        return self.tenants[tenant]

    def trainer(self, tenant: str):
        """Inside: this process and its children act as the tenant's pipeline."""
        access = self.onboard(tenant)
        return _env(access.mlflow.trainer.env() | self._redis_env(access.redis_writer) | self._registry_env(access))

    def predictor(self, tenant: str):
        """Inside: this process and its children act as the tenant's (read-only) predictor."""
        access = self.onboard(tenant)
        return _env(access.mlflow.predictor.env() | self._redis_env(access.redis_reader) | self._registry_env(access))

    def _redis_env(self, user: redis_acl.RedisUser) -> dict[str, str]:
        return user.env() if self.redis_admin is not None else {}

    @staticmethod
    def _registry_env(access: TenantAccess) -> dict[str, str]:
        from mlplatform.services import REGISTRY

        return {REGISTRY: access.registry_url} if access.registry_url else {}

    def close(self) -> None:
        if self.redis_admin is not None and self.tenants:
            names = [u.username for a in self.tenants.values() for u in (a.redis_writer, a.redis_reader)]
            self.redis_admin.execute_command("ACL", "DELUSER", *names)
        self.tenants.clear()
