"""Every tenant's Great Expectations gate rejects its corrupted batches, and nothing downstream runs.

One table for all tenants in examples/*/tenant.yaml: corruptions are derived from each tenant's own
declared columns (main table and auxiliary tables), so a new tenant is covered without new code.
tests/data/test_validation_gate.py checks fraud's failures expectation by expectation; this file
checks the gate's guarantee across tenants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlplatform import steps
from mlplatform.config import load_tenant
from mlplatform.data.ingest import load_raw, load_table
from mlplatform.validation.gate import ValidationFailed, validate
from mlplatform.workspace import Workspace
from tests.conftest import REPO
from tests.reliability.figures import record

TENANTS = sorted(p.parent.name for p in (REPO / "examples").glob("*/tenant.yaml"))
SMALL = {"fraud": {"customers": 200, "terminals": 400, "days": 15, "seed": 7},
         "search": {"items": 400, "queries": 200, "days": 5, "seed": 3}}


def corruptions(cols, min_rows: int | None) -> list[tuple[str, callable]]:
    """(name, corrupt(df) -> df) from a table's declared columns."""
    out = []
    first = cols[0]
    out.append((f"missing column {first.name}", lambda df: df.drop(columns=[first.name])))
    out.append((f"nulls in {first.name}", lambda df: df.assign(**{first.name: df[first.name].astype(object).where(
        np.arange(len(df)) % 7 != 0, None)})))
    ranged = next((c for c in cols if c.type in ("int", "float") and c.min is not None), None)
    if ranged:
        def below(df, c=ranged):
            df = df.copy()
            df[c.name] = df[c.name].astype("float64" if c.type == "float" else "int64")
            df.loc[df.index[:3], c.name] = c.min - 10
            return df
        out.append((f"{ranged.name} below its minimum", below))
    unique = next((c for c in cols if c.unique), None)
    if unique:
        def dup(df, c=unique):
            df = df.copy()
            df.loc[df.index[1], c.name] = df.loc[df.index[0], c.name]
            return df
        out.append((f"duplicate {unique.name}", dup))
    if min_rows:
        out.append(("too few rows", lambda df: df.head(min_rows - 1)))
    return out


@pytest.fixture(scope="module", params=TENANTS)
def batch(request, tmp_path_factory):
    name = request.param
    raw = yaml.safe_load((REPO / "examples" / name / "tenant.yaml").read_text())
    if name in SMALL:
        raw["data"]["generator_args"] = SMALL[name]
    folder = tmp_path_factory.mktemp(f"gate-{name}")
    tenant = folder / "tenant.yaml"
    tenant.write_text(yaml.safe_dump(raw, sort_keys=False))
    home = folder / "home"
    steps.ingest(str(tenant), str(home), "clean")
    cfg, ws = load_tenant(tenant), Workspace(home)
    main = load_raw(cfg, ws)
    tables = {t: load_table(cfg, ws, t) for t in cfg.data.tables}
    return {"name": name, "tenant": tenant, "home": home, "cfg": cfg, "main": main, "tables": tables,
            "folder": folder}


def test_clean_batch_passes_and_every_corruption_fails(batch):
    cfg, main, tables = batch["cfg"], batch["main"], batch["tables"]
    clean = validate(cfg, main, batch["folder"] / "reports-clean", tables)
    assert clean.success, clean.message()
    cases = [("main", n, f) for n, f in corruptions(cfg.data.columns, cfg.data.expectations.min_rows)]
    for tname, spec in cfg.data.tables.items():
        cases += [(tname, n, f) for n, f in corruptions(spec.columns, None)[:2]]
    not_rejected = []
    for i, (table, name, corrupt) in enumerate(cases):
        if table == "main":
            result = validate(cfg, corrupt(main), batch["folder"] / f"r{i}", tables)
        else:
            result = validate(cfg, main, batch["folder"] / f"r{i}", tables | {table: corrupt(tables[table])})
        if result.success or not result.failed:
            not_rejected.append(f"{table}: {name}")
    record("data_gates", **{batch["name"]: {"corrupted_batches": len(cases), "rejected": len(cases) - len(not_rejected),
                                            "not_rejected": not_rejected}})
    assert not not_rejected


def test_a_failing_batch_stops_the_pipeline(batch):
    """Corrupt the ingested snapshot on disk: validate raises, features and train refuse, nothing registered."""
    cfg, home, tenant, run = batch["cfg"], batch["home"], str(batch["tenant"]), "clean"
    ws = Workspace(home)
    first = cfg.data.columns[0].name
    for part in sorted(ws.raw_dir(cfg.name).glob("date=*/*.parquet")):
        df = pd.read_parquet(part)
        df[first] = None
        df.to_parquet(part, index=False)
    with pytest.raises(ValidationFailed):
        steps.validate(tenant, str(home), run)
    failed = ws.read_step(cfg.name, run, "validate")  # the record the validate task hands on
    snapshot = ws.read_step(cfg.name, run, "ingest")
    for step in (lambda: steps.features(tenant, str(home), run, failed),
                 lambda: steps.stage(tenant, str(home), run, snapshot, failed)):
        with pytest.raises(RuntimeError, match="validation failed, refusing to continue"):
            step()
    for step in ("features", "stage", "train", "register"):
        assert not ws.step_file(cfg.name, run, step).exists(), step
    assert not (home / "mlflow.db").exists() or _no_versions(home)
    record("data_gates", **{f"{batch['name']}_pipeline_stopped": True})


def _no_versions(home: Path) -> bool:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}").search_model_versions() == []
