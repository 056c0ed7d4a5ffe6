"""Each tenant has its own Feast SQL registry (identity/sql_registry.py): a PostgreSQL role and a
schema it owns. Through Feast's own SqlRegistry, one tenant's definitions are invisible to the
other, and reading the other's schema directly is refused by PostgreSQL (reported as AccessDenied).
Names carry a uuid; roles and schemas are dropped afterwards. Skipped locally without PostgreSQL;
required under CI=true."""

from __future__ import annotations

import uuid

import pytest
from feast import Entity
from feast.infra.registry.sql import SqlRegistry, SqlRegistryConfig
from sqlalchemy import create_engine, text

from mlplatform import services
from mlplatform.identity import sql_registry
from mlplatform.identity.refusal import AccessDenied, refused
from tests.conftest import require

pytestmark = [pytest.mark.service]


@pytest.fixture
def tenants():
    """Two tenants' registries, with a shared registry's `projects` table in `public` as on a
    database that already holds one (the services profile's; CI once failed on exactly that)."""
    admin = services.Services.from_env().postgres
    require(services.reachable(services.postgres_address(admin)), f"PostgreSQL is not reachable ({admin})")
    tag = uuid.uuid4().hex[:8]
    names = (f"fraud-{tag}", f"cardfraud-{tag}")
    engine = create_engine(admin)
    with engine.begin() as conn:
        created = conn.execute(text("SELECT to_regclass('public.projects') IS NULL")).scalar()
        if created:
            conn.execute(text("CREATE TABLE public.projects (project_id VARCHAR(255) PRIMARY KEY)"))
    try:
        yield {t: sql_registry.provision(admin, t) for t in names}
    finally:
        for t in names:
            sql_registry.drop(admin, t)
        if created:  # a table that was there before stays
            with engine.begin() as conn:
                conn.execute(text("DROP TABLE public.projects"))
        engine.dispose()


def registry(url: str) -> SqlRegistry:
    return SqlRegistry(SqlRegistryConfig(registry_type="sql", path=url, cache_ttl_seconds=0), None, None)


def test_a_tenant_sees_only_its_own_registry(tenants):
    (a, url_a), (b, url_b) = tenants.items()
    project_a, project_b = "T_a", "T_b"
    reg_a, reg_b = registry(url_a), registry(url_b)
    reg_a.apply_entity(Entity(name="card", join_keys=["card_id"]), project=project_a, commit=True)
    reg_b.apply_entity(Entity(name="merchant", join_keys=["merchant_id"]), project=project_b, commit=True)
    assert [e.name for e in reg_a.list_entities(project_a)] == ["card"]
    assert reg_b.list_entities(project_a) == []  # B's registry has no trace of A's project
    assert [e.name for e in reg_b.list_entities(project_b)] == ["merchant"]

    engine = create_engine(url_b)
    try:  # connections closed before the schemas and roles are dropped
        for reg in (reg_a, reg_b):
            reg.write_engine.dispose()
        with pytest.raises(AccessDenied) as excinfo, engine.connect() as conn, \
                refused("read", f"the Feast registry of tenant {a!r}", sql_registry.role(b)):
            conn.execute(text(f'SELECT entity_name FROM "{sql_registry.role(a)}".entities')).all()
        assert "permission denied for schema" in excinfo.value.reason and a in str(excinfo.value)
        with engine.connect() as conn:  # its own schema, unqualified (the role's search_path)
            assert conn.execute(text("SELECT count(*) FROM entities")).scalar() == 1
    finally:
        engine.dispose()
