"""Each tenant's own Feast SQL registry: a PostgreSQL role and a schema of the same name that the
role owns. A shared registry would show every tenant's definitions (and let any tenant change
them); here a tenant's role has no USAGE on another tenant's schema, so PostgreSQL refuses
("permission denied for schema").

Feast's SqlRegistry creates and reads its tables unqualified (feast/infra/registry/sql.py,
metadata.create_all), so the role's search_path is set to its own schema alone. PostgreSQL's
default (`"$user", public`) is not enough: where `public` already holds a registry (a shared one,
an older install), create_all sees those tables, creates none, and every query reads `public`
("permission denied for table projects"). Role and schema: `feast_<slug>` (a slug is [a-z0-9_],
at most 32 characters: a valid unquoted identifier, distinct per tenant).
"""

from __future__ import annotations

import re

PASSWORD_RE = re.compile(r"^[A-Za-z0-9_-]{16,}$")  # what mlflow_auth.new_password makes; safe to quote


def role(tenant: str) -> str:
    from mlplatform.config import slug

    return f"feast_{slug(tenant)}"


def tenant_url(admin_url: str, tenant: str, password: str | None = None) -> str:
    """The registry URL the tenant's processes use: the admin URL with the tenant's role."""
    from sqlalchemy.engine import make_url

    return make_url(admin_url).set(username=role(tenant), password=password).render_as_string(hide_password=False)


def provision(admin_url: str, tenant: str, password: str | None = None) -> str:
    """As the admin (`admin_url`): the tenant's role (LOGIN; `password` set when given) and its own
    schema; idempotent. Returns tenant_url."""
    from sqlalchemy import create_engine, text

    if password is not None and not PASSWORD_RE.match(password):
        raise ValueError("a registry password must be 16+ characters of [A-Za-z0-9_-]")
    name = role(tenant)
    engine = create_engine(admin_url)
    try:
        with engine.begin() as conn:
            if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": name}).first() is None:
                conn.execute(text(f'CREATE ROLE "{name}" LOGIN'))
            if password is not None:  # utility statements take no bound parameters; checked above
                conn.execute(text(f"ALTER ROLE \"{name}\" PASSWORD '{password}'"))
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{name}" AUTHORIZATION "{name}"'))
            conn.execute(text(f'ALTER ROLE "{name}" SET search_path = "{name}"'))
            conn.execute(text(f'GRANT CONNECT ON DATABASE "{engine.url.database}" TO "{name}"'))
    finally:
        engine.dispose()
    return tenant_url(admin_url, tenant, password)


def drop(admin_url: str, tenant: str) -> None:
    """The tenant's schema (with its registry) and role."""
    from sqlalchemy import create_engine, text

    name = role(tenant)
    engine = create_engine(admin_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
            if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": name}).first() is not None:
                conn.execute(text(f'REVOKE ALL ON DATABASE "{engine.url.database}" FROM "{name}"'))
                conn.execute(text(f'DROP ROLE "{name}"'))
    finally:
        engine.dispose()
