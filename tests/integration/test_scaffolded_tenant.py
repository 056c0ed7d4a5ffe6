"""A scaffolded tenant runs through the real pipeline: ingest, validate (GE), features (Feast),
train (Ray + XGBoost), register (MLflow), and its champion scores online features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlplatform import steps
from mlplatform.config import load_tenant
from mlplatform.scaffold import scaffold_tenant

pytestmark = pytest.mark.slow

ROWS = 3000


def labelled_table(rows: int = ROWS, seed: int = 3) -> pd.DataFrame:
    """A few numeric columns with signal, one categorical, event times, a ~10% binary label."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    spend = rng.gamma(2.0, 40.0, rows).round(2)
    channel = rng.choice(["web", "store", "phone"], rows, p=[0.5, 0.3, 0.2])
    noise = rng.uniform(0, 1, rows)
    logit = -3.0 + 1.3 * x + 0.012 * (spend - 80) + np.where(channel == "phone", 1.0, 0.0)
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({
        "account_id": rng.integers(0, 400, rows),
        "signup_score": x.round(4),
        "Spend EUR": spend,
        "channel": channel,
        "noise": noise,
        "created_at": (pd.Timestamp("2024-05-01") + pd.to_timedelta(np.sort(rng.uniform(0, 45 * 86400, rows)),
                                                                  unit="s")).strftime("%Y-%m-%d %H:%M:%S"),
        "converted": label,
    })


@pytest.fixture(scope="module")
def table_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("input") / "accounts.csv"
    df = labelled_table()
    assert 0.05 < df["converted"].mean() < 0.2
    df.to_csv(path, index=False)
    return path


def run_all(tenant_file: Path, home: Path) -> dict[str, dict]:
    return steps.run_all(tenant_file, home, "first")


def serve_check(tenant_file: Path, home: Path, keys: list) -> np.ndarray:
    """What the predictor does: online features for entity keys, scored by the champion model."""
    from mlplatform.features.store import OnlineFeatures
    from mlplatform.registry.mlflow_registry import connect
    from mlplatform.training.trainers import resolve_trainer
    from mlplatform.workspace import Workspace

    cfg, ws = load_tenant(tenant_file), Workspace.from_env(home)
    key = cfg.features.join_keys[0]
    feats = OnlineFeatures(cfg, ws).fetch([{key: k} for k in keys])
    assert feats[cfg.model.features].notna().all().all(), feats
    connect(ws)
    trainer = resolve_trainer(cfg.model.trainer)
    model = trainer.load(f"models:/{cfg.name}@champion")
    return trainer.predict(model, feats[cfg.model.features])


def check_records(records: dict[str, dict], name: str) -> None:
    assert records["ingest"]["rows"] == ROWS
    assert records["validate"]["success"] is True, records["validate"]
    metrics = records["train"]["metrics"]
    assert {"pr_auc", "roc_auc"} <= set(metrics)
    assert metrics["roc_auc"] > 0.6, metrics
    reg = records["register"]
    assert reg["name"] == name and reg["version"] == "1"
    assert "champion" in reg["aliases"], reg


def test_scaffolded_tenant_with_timestamp_and_entity_runs_every_step(tmp_path, table_file):
    tenant_file = scaffold_tenant("accounts", table_file, "converted", timestamp="created_at",
                                  entity="account_id", out_dir=tmp_path / "tenants")
    cfg = load_tenant(tenant_file)
    assert cfg.data.timestamp == "created_at" and cfg.features.join_keys == ["account_id"]
    assert set(cfg.model.features) == {"signup_score", "spend_eur", "noise", "channel_code"}

    home = tmp_path / "home"
    records = run_all(tenant_file, home)
    check_records(records, "accounts")

    latest = pd.read_parquet(tenant_file.parent / cfg.data.path).groupby("account_id").tail(1)
    scores = serve_check(tenant_file, home, latest["account_id"].head(20).tolist())
    assert len(scores) == 20 and np.all((scores >= 0) & (scores <= 1))


def test_scaffolded_tenant_without_timestamp_or_entity_runs_every_step(tmp_path, table_file):
    tenant_file = scaffold_tenant("accounts-rows", table_file, "converted", out_dir=tmp_path / "tenants")
    cfg = load_tenant(tenant_file)
    assert cfg.data.timestamp == "event_time" and cfg.features.join_keys == ["row_id"]
    # created_at stays in the table (as a datetime column) but is not a model input
    assert {c.name: c.type for c in cfg.data.columns}["created_at"] == "datetime"

    home = tmp_path / "home"
    records = run_all(tenant_file, home)
    assert records["features"]["tables"] == {"accounts_rows_features": ROWS}
    check_records(records, "accounts-rows")

    scores = serve_check(tenant_file, home, [0, 1, ROWS - 1])
    assert len(scores) == 3 and np.all(np.isfinite(scores))
