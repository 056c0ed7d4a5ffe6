"""Generic onboarding: scaffold a binary-classification tenant from any labelled CSV or parquet table.

`scaffold_tenant` (behind `mlplatform tenant new NAME --from-table PATH --label COL`) writes

    <out_dir>/<name>/tenant.yaml           loadable by `load_tenant`; data.source "table"
    <out_dir>/<name>/data/<table>.parquet  the prepared copy of the table (the tenant is self-contained)
    <out_dir>/<name>/README.md             what was inferred, and what to review

so that the pipeline steps (ingest, validate, features, train, register) run with no code written:
the features are the table's own columns (the platform's passthrough builder), the trainer is the
platform's XGBoost trainer.

What the copy changes (all of it recorded in the README):
- column names that are not identifiers (or clash with names the platform uses) are renamed;
- the label is mapped to 0/1 (bool, 0/1 numbers, or any two distinct values);
- rows without a label or a timestamp are dropped (reported: the CLI prints it, the README says it);
- a numeric `--timestamp` column stays numbers; `--timestamp-unit` (and `--timestamp-origin`) go into
  the tenant file as data.timestamp_unit / timestamp_origin, and ingest converts them to date/times;
- without `--timestamp`: an `event_time` column, one row per second from SYNTHETIC_EPOCH (infer.py),
  in file order;
- without `--entity`: a `row_id` column, the row's position in the file (a stable integer per row);
- low-cardinality string columns get an integer-coded copy `<col>_code` used as a model input
  (code = position in the sorted list of values, -1 for a missing value); high-cardinality strings,
  datetimes and id-like integer columns are kept in the table but are not model inputs.
It is always written as parquet, so the types inferred here are the types ingest and validation see
(numeric time: as converted by ingest).

The modules: infer.py reads the table and infers the plan (columns.py: names, dtypes, per-column checks
and model inputs); render.py turns the plan into tenant.yaml, the notes and the README; this module
writes them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from mlplatform.config import TenantConfigError, load_tenant, slug
from mlplatform.scaffold.errors import ScaffoldError
from mlplatform.scaffold.infer import infer_plan
from mlplatform.scaffold.render import notes, readme, tenant_dict, tenant_yaml


def scaffold_tenant(name: str, table: Path, label: str, *, timestamp: str | None = None,
                    timestamp_unit: str | None = None, timestamp_origin: str | None = None,
                    entity: str | None = None, out_dir: Path, overwrite: bool = False,
                    on_note: Callable[[str], None] | None = None) -> Path:
    """Scaffold `<out_dir>/<name>/` (tenant.yaml, data copy, README.md) and return the tenant file's path.

    A numeric `timestamp` column needs `timestamp_unit` (s, ms, us, ns): its numbers count from
    `timestamp_origin` (ISO 8601; default the Unix epoch); the copy keeps them and ingest converts.
    `on_note` receives what the user must know before running it (rows dropped, how time was read).

    Raises ScaffoldError (a ValueError) for an invalid name or option, a table that cannot be read,
    unknown column names (listing the available ones), a label that is not binary, a table that
    cannot be split by time with both classes on each side, or an existing tenant folder when
    `overwrite` is false.
    """
    out_dir = Path(out_dir)
    target = out_dir / name
    if target.exists() and not overwrite:
        raise ScaffoldError(f"{target} already exists; pass overwrite=True (--overwrite) to replace it")
    plan = infer_plan(name, Path(table), label, timestamp, entity, timestamp_unit, timestamp_origin)

    stem = slug(plan.source.stem if plan.source.is_file() else plan.source.name) or "table"
    data_path = f"data/{stem}.parquet"
    tenant = tenant_dict(plan, data_path)

    staging = out_dir / f".{name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "data").mkdir(parents=True)
    try:
        plan.df.to_parquet(staging / data_path, index=False)
        (staging / "tenant.yaml").write_text(tenant_yaml(plan, tenant))
        (staging / "README.md").write_text(readme(plan, tenant, data_path))
        try:
            load_tenant(staging / "tenant.yaml")
        except TenantConfigError as err:  # a scaffold that does not load is a bug here, not the user's
            raise RuntimeError(f"the scaffolded tenant file does not load: {err}") from err
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if on_note is not None:
        for note in notes(plan):
            on_note(note)
    return target / "tenant.yaml"
