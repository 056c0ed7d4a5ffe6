"""The search tenant's dense indexes (search_tenant.dense) on clustered synthetic vectors: real faiss,
exact vs HNSW vs IVF, the recall gate, save and load; and the typed config that chooses them."""

from __future__ import annotations

import numpy as np
import pytest

from mlplatform.config import DenseIndexConfig


def clustered(n: int, d: int = 32, clusters: int = 20, seed: int = 0) -> np.ndarray:
    """Unit vectors around a few centres (as embeddings are): random unit vectors would make every
    item nearly equidistant and approximate recall meaningless."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    x = centres[rng.integers(clusters, size=n)] + 0.35 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    x = clustered(4000)
    return x[200:], x[:200]  # items, queries (same distribution)


def test_exact_search_is_its_own_reference(data):
    from search_tenant import dense

    items, queries = data
    index, record = dense.build_checked(items, queries, DenseIndexConfig(kind="exact"), 50)
    assert record == {"kind": "exact", "items": len(items), "build_seconds": record["build_seconds"]}
    top = dense.search(index, queries[:3], 5)
    expected = np.argsort(-(items @ queries[:3].T).T, axis=1)[:, :5]
    np.testing.assert_array_equal(top, expected)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_recall_is_measured_and_survives_save_and_load(data, kind, tmp_path):
    from search_tenant import dense

    items, queries = data
    cfg = DenseIndexConfig(kind=kind, min_recall=0.9)
    index, record = dense.build_checked(items, queries, cfg, 100)
    assert record["recall_k"] == 100 and record["recall_queries"] == 200
    assert 0.9 <= record["recall_vs_exact"] <= 1.0
    dense.save(index, tmp_path)
    loaded = dense.load(tmp_path, items, cfg, 100)
    np.testing.assert_array_equal(dense.search(loaded, queries, 100), dense.search(index, queries, 100))
    assert dense.recall_against_exact(loaded, items, queries, 100) == pytest.approx(record["recall_vs_exact"], abs=1e-4)


def test_a_weak_index_fails_the_gate_with_its_figures(data):
    from search_tenant import dense

    items, queries = data
    cfg = DenseIndexConfig(kind="ivf", ivf={"lists": 60, "nprobe": 1}, min_recall=0.99)
    with pytest.raises(dense.IndexRecallTooLow, match=r"ivf: recall@100 .* is 0\.\d+ on 200 queries.*raise ivf\.nprobe"):
        dense.build_checked(items, queries, cfg, 100)


def test_hnsw_visits_at_least_k_nodes(data):
    from search_tenant import dense

    items, _ = data
    index = dense.build(items, DenseIndexConfig(kind="hnsw", hnsw={"ef_search": 16}))
    dense.tune(index, DenseIndexConfig(kind="hnsw", hnsw={"ef_search": 16}), 300)
    assert index.hnsw.efSearch == 300


def test_ivf_cells_follow_the_catalog_size():
    from search_tenant.dense import ivf_lists

    assert ivf_lists(1_000_000, DenseIndexConfig(kind="ivf")) == 4000
    assert ivf_lists(1000, DenseIndexConfig(kind="ivf")) == 25  # capped: 39 training points per cell
    assert ivf_lists(100_000, DenseIndexConfig(kind="ivf", ivf={"lists": 512})) == 512


def test_the_tenant_file_types_the_index_and_the_encoder(tmp_path):
    import yaml

    from mlplatform.config import TenantConfigError, load_tenant
    from tests.conftest import REPO

    raw = yaml.safe_load((REPO / "examples" / "search" / "tenant.yaml").read_text())
    raw["ranking"]["retrieval"]["dense_index"] = {"kind": "annoy", "min_recall": 1.5}
    raw["ranking"]["retrieval"]["encoder"] = {"runtime": "onnx", "quantize": "int4"}
    path = tmp_path / "tenant.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(TenantConfigError) as err:
        load_tenant(path)
    text = str(err.value)
    for where in ("dense_index.kind", "dense_index.min_recall", "encoder.quantize"):
        assert f"ranking.retrieval.{where}" in text, text
