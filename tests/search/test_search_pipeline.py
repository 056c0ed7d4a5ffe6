"""The search tenant through the real pipeline steps: retrieval recall against the judgments, a
LambdaMART ranker (Ray Train) that beats BM25-only ordering on NDCG@10, registration behind the
NDCG@10 gate, and the same features offline and online."""

from __future__ import annotations

import numpy as np
import pytest

from mlplatform.config import load_tenant
from mlplatform.plugins import resolve
from mlplatform.ranking import index
from mlplatform.workspace import Workspace

pytestmark = pytest.mark.slow


def test_every_step_recorded_and_validation_covered_all_tables(trained_search):
    r = trained_search.records
    assert r["validate"]["success"] and r["validate"]["evaluated"] > 40
    assert r["features"]["tables"]["item_stats"] > 0
    index = r["features"]["retrieval_index"]
    assert index["items"] == 600 and index["embedding_model"] == "all-MiniLM-L6-v2"


def test_retrieval_recall_at_k_of_each_retriever_and_the_fusion(trained_search):
    recall = trained_search.records["train"]["retrieval"]["recall_at_k"]
    assert set(recall) == {"bm25", "dense", "fused"}
    for name, at in recall.items():
        assert at["10"] <= at["100"] <= at["1000"] <= 1.0, name
    # synonyms the titles never use: exact terms miss items that embeddings find
    assert recall["dense"]["100"] > recall["bm25"]["100"]
    # fusion keeps (nearly) the best of both at the funnel's cut-off
    assert recall["fused"]["100"] >= max(recall["bm25"]["100"], recall["dense"]["100"]) - 0.02
    assert recall["fused"]["100"] > 0.85


def test_ranker_beats_bm25_only_ordering_on_ndcg_at_10(trained_search):
    m = trained_search.records["train"]["metrics"]
    assert m["ndcg_at_10"] > m["ndcg_at_10_baseline_bm25"] + 0.05, m
    assert m["ndcg_at_10"] > m["ndcg_at_10_baseline_dense_sim"], m
    assert 0 < m["mrr"] <= 1 and m["queries"] >= 10
    assert m["click_labelled_train_rows"] > 0  # IPW click labels joined the judgments in training


def test_registered_behind_the_ndcg_gate(trained_search):
    reg = trained_search.records["register"]
    assert reg["passed"] and reg["aliases"] == ["champion"]
    assert "ndcg_at_10" in reg["decision"]


def test_offline_features_equal_what_the_predictor_computes(trained_search):
    """Query-item features: the retriever's training path and its serving path agree."""
    cfg = load_tenant(trained_search.tenant_file)
    ws = Workspace.from_env(trained_search.home)
    retriever = resolve(cfg.ranking.retrieval.retriever).load(cfg, index.built_dir(cfg, ws))
    query = "black wireless earbuds"
    fused, scores = retriever.search(query, cfg.ranking.retrieval.candidates)
    online = retriever.pair_features(query, fused[:20], None, scores)
    import pandas as pd

    frame = pd.DataFrame({"query": query, "item_id": retriever.item_ids[fused[:20]]})
    offline = retriever.features_for_pairs(frame, "query", "item_id")
    for name, values in online.items():
        np.testing.assert_allclose(offline[name].to_numpy(), values, rtol=1e-5, atol=1e-6, err_msg=name)


def test_the_predictor_loads_the_index_logged_with_the_version_not_the_workspace_folder(trained_search, tmp_path, stop_after):
    """The features step's index folder lives where the features task ran; the predictor needs none:
    a copy of the workspace without it still serves, from the `retrieval_index` artifact."""
    import shutil

    from mlflow import MlflowClient

    from mlplatform.serving.ranking_predictor import RankingPredictor

    cfg = load_tenant(trained_search.tenant_file)
    ws = Workspace(tmp_path / "home")
    shutil.copytree(trained_search.home, ws.home)
    shutil.rmtree(index.built_dir(cfg, ws))
    run_id = trained_search.records["train"]["run_id"]
    logged = {f.path for f in MlflowClient(ws.mlflow_uri).list_artifacts(run_id, index.ARTIFACT)}
    assert f"{index.ARTIFACT}/info.json" in logged and f"{index.ARTIFACT}/catalog.parquet" in logged
    predictor = RankingPredictor(cfg, ws)
    assert predictor.load()
    stop_after(predictor)
    assert not index.built_dir(cfg, ws).exists()
    assert len(predictor.item_ids) == trained_search.records["features"]["retrieval_index"]["items"]
    assert len(predictor.rank("black wireless earbuds", 5)[0]) == 5


def test_a_version_without_a_logged_index_is_refused_with_the_reason(trained_search, tmp_path):
    from mlflow import MlflowClient

    ws = Workspace(trained_search.home)
    client = MlflowClient(ws.mlflow_uri)
    exp = client.get_experiment_by_name(load_tenant(trained_search.tenant_file).name)
    bare = client.create_run(exp.experiment_id, run_name="no-index").info.run_id
    with pytest.raises(FileNotFoundError, match=f"training run {bare} has no 'retrieval_index' artifact"):
        index.fetch(ws, bare, "search")
