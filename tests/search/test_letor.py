"""Bring your own ranking data: LETOR files -> `tenant new --from-letor` -> the pipeline steps
train (LightGBM lambdarank via Ray), evaluate (validation and test NDCG@k, MRR) and register."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlplatform import steps
from mlplatform.cli import app
from mlplatform.config import load_tenant
from mlplatform.ranking.letor import write_letor

pytestmark = pytest.mark.slow
FEATURES = [f"f{i}" for i in range(1, 7)]


def letor_rows(rng: np.random.Generator, queries: range, docs: int = 12) -> pd.DataFrame:
    """Graded labels driven by f1 and an interaction f2*f3; f4..f6 are noise."""
    rows = []
    for q in queries:
        x = rng.normal(size=(docs, len(FEATURES)))
        s = 1.5 * x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(0, 0.4, docs)
        labels = np.digitize(s, [0.0, 1.0, 2.0])
        rows += [{"label": int(labels[i]), "qid": q, **dict(zip(FEATURES, x[i]))} for i in range(docs)]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def letor_files(tmp_path_factory):
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("letor")
    files = {}
    for split, qs in (("train", range(0, 60)), ("vali", range(100, 120)), ("test", range(200, 220))):
        files[split] = write_letor(letor_rows(rng, qs), folder / f"{split}.txt", FEATURES)
    return files


def test_scaffold_from_letor_then_train_evaluate_register(letor_files, tmp_path):
    result = CliRunner().invoke(app, ["tenant", "new", "ltr-demo", "--from-letor", str(letor_files["train"]),
                                      "--valid", str(letor_files["vali"]), "--test", str(letor_files["test"]),
                                      "--dir", str(tmp_path / "tenants")])
    assert result.exit_code == 0, result.output
    tenant = tmp_path / "tenants" / "ltr-demo" / "tenant.yaml"
    cfg = load_tenant(tenant)
    assert cfg.task == "ranking" and cfg.data.source == "letor" and cfg.model.features == FEATURES
    assert cfg.data.column("label").max == 3 and (tenant.parent / "data" / "train.txt").is_file()

    home = tmp_path / "home"
    records = steps.run_all(tenant, home, "r1")
    assert records["ingest"]["rows"] == 100 * 12 and records["validate"]["success"]
    m = records["train"]["metrics"]
    assert m["queries"] == 20 and m["test_queries"] == 20
    # far better than a random ordering of the same documents
    val = pd.read_parquet(home / "tenants" / "ltr-demo" / "data" / "raw")
    val = val[val["split"] == "test"]
    from mlplatform.ranking.metrics import ranking_metrics

    rand = ranking_metrics(val["label"], np.random.default_rng(1).random(len(val)), val["qid"], [10])
    assert m["test_ndcg_at_10"] > rand["ndcg_at_10"] + 0.15, (m, rand)
    assert records["register"]["passed"] and records["register"]["aliases"] == ["champion"]

    # retrained on the same files: the champion is scored on the candidate's validation rows too,
    # and (deterministic training) scores what the candidate scores there
    again = steps.run_all(tenant, home, "r2")
    champ = again["train"]["champion_on_same_rows"]
    assert champ["version"] == "1"
    assert champ["metrics"]["ndcg_at_10"] == pytest.approx(again["train"]["metrics"]["ndcg_at_10"])
    assert again["register"]["passed"] and again["register"]["aliases"] == ["challenger"]


def test_letor_cli_errors(letor_files, tmp_path):
    runner = CliRunner()
    both = runner.invoke(app, ["tenant", "new", "x-y", "--from-letor", str(letor_files["train"]),
                               "--from-table", "t.csv", "--dir", str(tmp_path)])
    assert both.exit_code != 0 and "exactly one" in both.output
    missing = runner.invoke(app, ["tenant", "new", "x-y", "--from-letor", str(tmp_path / "nope.txt"),
                                  "--dir", str(tmp_path)])
    assert missing.exit_code != 0 and "no such file" in missing.output
    bad = tmp_path / "bad.txt"
    bad.write_text("1 1:0.5\n")
    malformed = runner.invoke(app, ["tenant", "new", "x-y", "--from-letor", str(bad), "--dir", str(tmp_path)])
    assert malformed.exit_code != 0 and "qid" in malformed.output
