"""Find a tenant file from a name or a path, and apply the deployment's environment overrides.

The CLI takes `mlplatform serve fraud` as well as `mlplatform serve path/to/tenant.yaml`; in a
cluster the chart mounts the file and names it in MLPLATFORM_TENANT_FILE.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from mlplatform import services
from mlplatform.config import FeatureRegistry, OnlineStore, TenantConfig, TenantConfigError


class UnknownTenant(LookupError):
    """No tenant of this name anywhere the caller looks (no file; on a cluster, no tenant ConfigMap)."""


def tenant_candidates(name: str, environ: Mapping[str, str] = os.environ) -> list[Path]:
    """Where a tenant called `name` may live, in the order they are tried."""
    places = []
    if environ.get("MLPLATFORM_TENANTS_DIR"):
        places.append(Path(environ["MLPLATFORM_TENANTS_DIR"]) / name / "tenant.yaml")
    places += [Path("tenants") / name / "tenant.yaml", Path("examples") / name / "tenant.yaml"]
    return places


def resolve_tenant_path(name_or_path: str | Path, environ: Mapping[str, str] = os.environ) -> Path:
    """An existing file or tenant folder as given; else the first of tenant_candidates(name)."""
    given = Path(name_or_path)
    if given.is_file():
        return given.resolve()
    if given.is_dir() and (given / "tenant.yaml").is_file():
        return (given / "tenant.yaml").resolve()
    places = tenant_candidates(str(name_or_path), environ)
    for place in places:
        if place.is_file():
            return place.resolve()
    looked = "\n".join(f"  - {p if p.is_absolute() else Path.cwd() / p}" for p in [given, *places])
    raise TenantConfigError(f"no tenant {str(name_or_path)!r}; looked for a tenant file at:\n{looked}")


def tenant_file(name: str) -> Path:
    """resolve_tenant_path for a tenant's name; UnknownTenant when no candidate file exists."""
    try:
        return resolve_tenant_path(name)
    except TenantConfigError as err:  # it looked everywhere and found no file
        raise UnknownTenant(str(err)) from None


def apply_env_overrides(cfg: TenantConfig, environ: Mapping[str, str] = os.environ) -> TenantConfig:
    """Deployment settings passed as environment variables (names: mlplatform.services; the charts
    and the services profile set them):

    MLPLATFORM_FEAST_ONLINE_STORE  "redis" or "sqlite": the Feast online store type
    MLPLATFORM_REDIS_ADDRESS       host:port of Redis (implies redis when the type is not given)
    MLPLATFORM_FEAST_REGISTRY      SQLAlchemy URL of Feast's SQL registry (PostgreSQL)
    MLPLATFORM_STREAM_REDIS_URL    redis:// URL of the event stream (features.stream.redis_url)

    Returns a new config; the tenant file keeps describing the embedded defaults.
    """
    store_type = environ.get(services.ONLINE_STORE, "").strip().lower()
    address = environ.get(services.REDIS, "").strip()
    registry_url = environ.get(services.REGISTRY, "").strip()
    features = cfg.features
    if store_type or address:
        store_type = store_type or "redis"
        if store_type not in ("redis", "sqlite"):
            raise TenantConfigError(f"{services.ONLINE_STORE} must be 'redis' or 'sqlite', got {store_type!r}")
        current = features.online_store
        online = OnlineStore(type=store_type,
                             connection_string=(address or current.connection_string) if store_type == "redis" else None)
        features = features.model_copy(update={"online_store": online})
    if registry_url:
        if "://" not in registry_url:
            raise TenantConfigError(f"{services.REGISTRY} must be a SQLAlchemy URL (postgresql+psycopg://…), "
                                    f"got {registry_url!r}")
        features = features.model_copy(update={"registry": FeatureRegistry(type="sql", path=registry_url)})
    stream_url = environ.get(services.STREAM_REDIS, "").strip()
    if stream_url and features.stream is not None:
        if not stream_url.startswith(("redis://", "rediss://", "unix://")):
            raise TenantConfigError(f"{services.STREAM_REDIS} must be a redis:// URL, got {stream_url!r}")
        features = features.model_copy(update={"stream": features.stream.model_copy(update={"redis_url": stream_url})})
    return cfg if features is cfg.features else cfg.model_copy(update={"features": features})
