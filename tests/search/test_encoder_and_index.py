"""The search tenant's query encoder (MiniLM exported to ONNX by the features step, PyTorch the
reference) and its dense index (exact, or HNSW/IVF gated on recall against exact), on the session's
small search workspace (tests/conftest.py trained_search): real torch, ONNX Runtime, faiss, MLflow."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from mlplatform.config import load_tenant
from mlplatform.ranking import index
from mlplatform.workspace import Workspace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(trained_search):
    cfg = load_tenant(trained_search.tenant_file)
    return cfg, Workspace(trained_search.home), trained_search.records["features"]["retrieval_index"]


@pytest.fixture(scope="module")
def many_queries(tmp_path_factory) -> list[str]:
    """At least 500 distinct generated queries (the simulator's, from seeds the pipeline never used)."""
    from search_tenant.data import generate

    import pandas as pd

    texts: list[str] = []
    for seed in (101, 102, 103):
        out = tmp_path_factory.mktemp(f"queries-{seed}")
        generate(out, items=600, queries=900, days=5, seed=seed)
        texts += pd.read_parquet(out / "tables" / "queries")["query"].astype(str).tolist()
    texts = list(dict.fromkeys(texts))
    assert len(texts) >= 500
    return texts


def test_onnx_fp32_embeddings_equal_pytorch_on_500_queries(built, many_queries):
    from search_tenant import build, encoder

    cfg, ws, _ = built
    folder, record = encoder.export(build.cache_dir(cfg, ws), "int8")
    assert record["reused"]  # the features step exported it; the same weights are not exported again
    reference = encoder.TorchEncoder().encode(many_queries)
    onnx = encoder.OnnxEncoder(folder, "fp32").encode(many_queries)
    cosine = np.einsum("ij,ij->i", reference, onnx)
    assert cosine.min() >= 0.999, (cosine.min(), many_queries[int(cosine.argmin())])
    np.testing.assert_allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)
    # int8 is an approximation: the pipeline gates it on retrieval quality, not on the cosine
    int8 = encoder.OnnxEncoder(folder, "int8").encode(many_queries)
    assert 0.95 < float(np.einsum("ij,ij->i", reference, int8).mean()) < 0.9999


def test_the_build_records_the_int8_gate_and_the_encoder_it_chose(built):
    from search_tenant.encoder_gate import choose

    cfg, _, info = built
    enc = info["encoder"]
    gate = enc["int8_gate"]
    assert enc["runtime"] == "onnx" and enc["precision"] == gate["precision"]
    assert (gate["precision"], gate["reason"]) == choose(gate["fp32"], gate["int8"], cfg.ranking.retrieval.encoder)
    assert gate["fp32"]["queries"] > 50 and 0 < gate["fp32"]["ndcg_at_10"] <= 1
    assert enc["file"] == ("model.int8.onnx" if gate["precision"] == "int8" else "model.onnx")


@pytest.mark.parametrize("fp32, int8, kept, why", [
    ({"ndcg_at_10": 0.90, "recall_at_1000": 0.99}, {"ndcg_at_10": 0.899, "recall_at_1000": 0.99}, "int8", "kept"),
    ({"ndcg_at_10": 0.90, "recall_at_1000": 0.99}, {"ndcg_at_10": 0.894, "recall_at_1000": 0.99}, "fp32",
     "max_ndcg_drop"),
    ({"ndcg_at_10": 0.90, "recall_at_1000": 0.99}, {"ndcg_at_10": 0.91, "recall_at_1000": 0.97}, "fp32",
     "max_recall_drop"),
])
def test_int8_is_kept_only_within_the_allowed_drops(fp32, int8, kept, why):
    from mlplatform.config import EncoderConfig
    from search_tenant.encoder_gate import choose

    precision, reason = choose(fp32, int8, EncoderConfig(quantize="int8", max_ndcg_drop=0.005, max_recall_drop=0.01))
    assert precision == kept and why in reason and "NDCG@10 0.9000" in reason


def test_the_encoder_is_logged_with_the_run_and_the_predictor_serves_with_it(built, trained_search, stop_after):
    from mlflow import MlflowClient

    from mlplatform.serving.ranking_predictor import RankingPredictor
    from search_tenant.encoder import TorchEncoder

    cfg, ws, info = built
    run_id = trained_search.records["train"]["run_id"]
    client = MlflowClient(ws.mlflow_uri)
    logged = {f.path for f in client.list_artifacts(run_id, f"{index.ARTIFACT}/encoder")}
    assert f"{index.ARTIFACT}/encoder/{info['encoder']['file']}" in logged
    metrics = client.get_run(run_id).data.metrics
    assert metrics["encoder_onnx"] == 1.0 and metrics["encoder_int8"] == float(info["encoder"]["precision"] == "int8")
    assert metrics["encoder_fp32_ndcg_at_10"] == pytest.approx(info["encoder"]["int8_gate"]["fp32"]["ndcg_at_10"])
    predictor = RankingPredictor(cfg, ws)
    assert predictor.load()
    stop_after(predictor)
    retriever = predictor.retriever
    assert retriever.info["encoder_loaded"] == {"runtime": "onnx", "precision": info["encoder"]["precision"]}
    assert "torch" not in type(retriever.encoder).__module__
    query = "black wireless earbuds"
    cosine = float(retriever.embed(query) @ TorchEncoder().encode([query])[0])
    assert cosine > (0.999 if info["encoder"]["precision"] == "fp32" else 0.95)
    assert len(predictor.rank(query, 5)[0]) == 5


def _variant(trained_search, tmp_path, **retrieval):
    raw = yaml.safe_load(trained_search.tenant_file.read_text())
    raw["ranking"]["retrieval"].update(retrieval)
    path = tmp_path / "tenant.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_tenant(path)


def test_an_hnsw_index_is_built_measured_against_exact_and_loaded(trained_search, tmp_path):
    from mlplatform.plugins import resolve

    cfg = _variant(trained_search, tmp_path, dense_index={"kind": "hnsw", "min_recall": 0.9, "recall_k": 100})
    ws = Workspace(trained_search.home)
    cls = resolve(cfg.ranking.retrieval.retriever)
    record = cls.build(cfg, ws, tmp_path / "index")
    dense = record["dense_index"]
    assert dense["kind"] == "hnsw" and dense["recall_k"] == 100 and dense["recall_queries"] > 50
    assert 0.9 <= dense["recall_vs_exact"] <= 1.0 and record["metrics"]["index_recall_vs_exact"] == dense["recall_vs_exact"]
    assert (tmp_path / "index" / "dense.faiss").is_file()
    retriever = cls.load(cfg, tmp_path / "index")
    assert type(retriever.index).__name__ == "IndexHNSWFlat" and retriever.index.hnsw.efSearch >= 1000
    assert len(retriever.search("black wireless earbuds", 50)[0]) == 50


def test_an_approximate_index_below_the_minimum_recall_fails_the_build(trained_search, tmp_path):
    from mlplatform.plugins import resolve
    from search_tenant.dense import IndexRecallTooLow

    cfg = _variant(trained_search, tmp_path, dense_index={"kind": "ivf", "ivf": {"lists": 15, "nprobe": 1},
                                                          "min_recall": 0.99, "recall_k": 200})
    with pytest.raises(IndexRecallTooLow, match=r"recall@200 against exact search is 0\.\d+ .* below .*min_recall 0\.99"):
        resolve(cfg.ranking.retrieval.retriever).build(cfg, Workspace(trained_search.home), tmp_path / "index")


def test_runtime_torch_in_the_tenant_file_serves_the_reference(trained_search, tmp_path):
    from mlplatform.plugins import resolve

    cfg = _variant(trained_search, tmp_path, encoder={"runtime": "torch"})
    ws = Workspace(trained_search.home)
    retriever = resolve(cfg.ranking.retrieval.retriever).load(cfg, index.built_dir(cfg, ws))
    assert retriever.info["encoder_loaded"] == {"runtime": "torch", "precision": "fp32"}
    assert json.loads((index.built_dir(cfg, ws) / "info.json").read_text())["encoder"]["runtime"] == "onnx"


def test_an_index_whose_encoder_file_is_missing_is_refused_with_the_reason(trained_search, tmp_path):
    import shutil

    from mlplatform.plugins import resolve

    cfg = load_tenant(trained_search.tenant_file)
    copy = tmp_path / "index"
    shutil.copytree(index.built_dir(cfg, Workspace(trained_search.home)), copy)
    info = json.loads((copy / "info.json").read_text())
    (copy / "encoder" / info["encoder"]["file"]).unlink()
    with pytest.raises(FileNotFoundError, match=r"names an ONNX encoder but .* lacks \['model"):
        resolve(cfg.ranking.retrieval.retriever).load(cfg, copy)
