"""A third tenant from outside the repository's examples, with a trainer of its own, runs through
`mlplatform run` (the train_deploy pipeline on kfp.local) without any change to the platform.

The tenant is its own package (pyproject.toml, third_tenant/), installed for this test only with
`pip install --target` into a folder put on PYTHONPATH, never into the shared venv. Its trainer is a
scikit-learn logistic regression that satisfies the `Trainer` protocol (mlplatform/contracts.py);
its tenant file is scaffolded from a table, then names that trainer.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlplatform.config import load_tenant
from mlplatform.contracts import Trainer
from mlplatform.scaffold import scaffold_tenant
from tests.conftest import REPO
from tests.integration.test_scaffolded_tenant import labelled_table

pytestmark = pytest.mark.slow

PYPROJECT = """\
[build-system]
requires = ["setuptools>=70.1"]
build-backend = "setuptools.build_meta"

[project]
name = "third-tenant"
version = "0.1.0"
dependencies = ["mlplatform", "scikit-learn", "mlflow"]

[tool.setuptools.packages.find]
include = ["third_tenant*"]
"""

MODEL = '''\
"""A trainer through the platform's Trainer protocol: standardised logistic regression."""

from dataclasses import dataclass, field
from typing import Any

import mlflow
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


@dataclass
class Trained:
    model: Any
    params: dict
    best_iteration: int = 0
    importance: dict = field(default_factory=dict)


class LogisticTrainer:
    def train(self, cfg, train_df, valid_df, storage=None):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
        model.fit(train_df[cfg.model.features].astype(float), train_df[cfg.data.label])
        return Trained(model, {"max_iter": 500})

    def predict(self, model, frame):
        return model.predict_proba(frame[list(model.feature_names_in_)].astype(float))[:, 1]

    def load(self, uri):
        return mlflow.sklearn.load_model(uri)

    def log(self, model, signature, input_example):
        return mlflow.sklearn.log_model(model, name="model", signature=signature, input_example=input_example)


trainer = LogisticTrainer()
'''


@pytest.fixture(scope="module")
def third_tenant_site(tmp_path_factory) -> Path:
    """The tenant's package, built and installed into a folder of its own (not the venv)."""
    assert importlib.util.find_spec("third_tenant") is None, "third_tenant must not be in the shared venv"
    root = tmp_path_factory.mktemp("third-tenant")
    (root / "third_tenant").mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "third_tenant" / "__init__.py").write_text("")
    (root / "third_tenant" / "model.py").write_text(MODEL)
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(root)], check=True, timeout=300)
    assert (site / "third_tenant" / "model.py").is_file()
    return site


def test_a_third_tenant_with_its_own_trainer_runs_through_mlplatform_run(tmp_path, third_tenant_site, monkeypatch):
    table = tmp_path / "accounts.csv"
    labelled_table().to_csv(table, index=False)
    tenant_file = scaffold_tenant("third", table, "converted", timestamp="created_at", entity="account_id",
                                  out_dir=tmp_path / "tenants")
    raw = yaml.safe_load(tenant_file.read_text())
    raw["model"]["trainer"] = "third_tenant.model:trainer"
    tenant_file.write_text(yaml.safe_dump(raw, sort_keys=False))

    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = str(third_tenant_site)  # the tenant's package, and nothing of the repository
    proc = subprocess.run([sys.executable, "-m", "mlplatform.cli", "run", str(tenant_file), "--home", str(home)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # the champion was trained and logged by the tenant's trainer, and loads back through it
    monkeypatch.syspath_prepend(str(third_tenant_site))
    from mlplatform.registry.loading import load_by_alias
    from mlplatform.workspace import Workspace

    cfg = load_tenant(tenant_file)
    mv, trainer, model = load_by_alias(cfg, Workspace.from_env(home), "champion")
    assert dict(mv.tags)["trainer"] == "third_tenant.model:trainer"
    assert isinstance(trainer, Trainer) and type(trainer).__name__ == "LogisticTrainer"
    assert type(model).__name__ == "Pipeline"
    assert list(model.feature_names_in_) == cfg.model.features
    rows = pd.DataFrame(np.random.default_rng(0).normal(size=(50, len(cfg.model.features))), columns=cfg.model.features)
    scores = trainer.predict(model, rows)
    assert len(scores) == 50 and ((scores >= 0) & (scores <= 1)).all()
    # nothing of it was installed into the shared venv or the platform
    assert importlib.util.find_spec("third_tenant").origin.startswith(str(third_tenant_site))
    assert not list((REPO / "platform").rglob("third_tenant*"))
