"""Dense retrieval indexes over L2-normalised embeddings (inner product = cosine), by the tenant
file's `ranking.retrieval.dense_index` (mlplatform.config.DenseIndexConfig):

exact   faiss IndexFlatIP: every item scored per query; nothing to build or to save (made from the
        embeddings at load time); recall 1 by definition.
hnsw    faiss IndexHNSWFlat: a navigable graph, no training; a query visits max(ef_search, k) nodes.
ivf     faiss IndexIVFFlat: k-means cells trained on a sample, a query scans `nprobe` of them.

An approximate index is built by the features step, measured there against exact on the snapshot's
queries (recall@k: the share of exact's top k it returns), and refused below `min_recall`
(`IndexRecallTooLow`, which fails the step with the figures). The bench (bench/scale_bench.py) uses
the same functions on generated catalogs up to 10^6 items.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from mlplatform.config import DenseIndexConfig
from mlplatform.errors import UserError

INDEX_FILE = "dense.faiss"


class IndexRecallTooLow(UserError, RuntimeError):
    """The approximate index returns too little of what exact search returns."""


def ivf_lists(n: int, cfg: DenseIndexConfig) -> int:
    """Cells: the configured number, else 4 x sqrt(n); at most n / 39 (faiss warns below 39 training
    points per centroid), at least 1."""
    lists = cfg.ivf.lists or int(4 * math.sqrt(n))
    return max(1, min(lists, n // 39))


def build(vectors: np.ndarray, cfg: DenseIndexConfig):
    """A faiss index of `vectors` (n, d) float32, as the config says."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = vectors.shape
    if cfg.kind == "exact":
        index = faiss.IndexFlatIP(d)
    elif cfg.kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, cfg.hnsw.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = cfg.hnsw.ef_construction
    else:
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, ivf_lists(n, cfg), faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(cfg.seed)
        sample = vectors[np.sort(rng.choice(n, size=min(n, cfg.ivf.train_size), replace=False))]
        index.train(sample)
    index.add(vectors)
    return index


def tune(index, cfg: DenseIndexConfig, k: int) -> None:
    """Search-time parameters (not all of them survive write_index): HNSW visits at least k nodes."""
    import faiss

    if cfg.kind == "hnsw":
        faiss.downcast_index(index).hnsw.efSearch = max(cfg.hnsw.ef_search, k)
    elif cfg.kind == "ivf":
        ivf = faiss.extract_index_ivf(index)
        ivf.nprobe = min(cfg.ivf.nprobe, ivf.nlist)


def search(index, queries: np.ndarray, k: int) -> np.ndarray:
    """Positions of the top k per query (n_queries, k); -1 where the index returns fewer."""
    _, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, index.ntotal))
    return ids


def recall_against_exact(index, vectors: np.ndarray, queries: np.ndarray, k: int) -> float:
    """Mean over queries of |approximate top k ∩ exact top k| / k (k clipped to the catalog)."""
    import faiss

    k = min(k, len(vectors))
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(np.ascontiguousarray(vectors, dtype=np.float32))
    truth, found = search(exact, queries, k), search(index, queries, k)
    hits = [len(np.intersect1d(t, f[f >= 0], assume_unique=True)) for t, f in zip(truth, found)]
    return float(np.mean(hits) / k) if hits else 1.0


def build_checked(vectors: np.ndarray, queries: np.ndarray, cfg: DenseIndexConfig, k: int) -> tuple[object, dict]:
    """Build, tune for k, and (approximate kinds) measure recall@k against exact on `queries`;
    raises IndexRecallTooLow below cfg.min_recall. Returns the index and its record."""
    t = time.monotonic()
    index = build(vectors, cfg)
    tune(index, cfg, k)
    record = {"kind": cfg.kind, "items": int(len(vectors)), "build_seconds": round(time.monotonic() - t, 2)}
    if cfg.kind == "hnsw":
        record["params"] = cfg.hnsw.model_dump() | {"ef_search_used": max(cfg.hnsw.ef_search, k)}
    elif cfg.kind == "ivf":
        record["params"] = cfg.ivf.model_dump() | {"lists_used": ivf_lists(len(vectors), cfg)}
    if cfg.kind != "exact":
        k = min(k, len(vectors))
        recall = recall_against_exact(index, vectors, queries, k)
        record |= {"recall_k": k, "recall_queries": int(len(queries)), "recall_vs_exact": round(recall, 4),
                   "min_recall": cfg.min_recall}
        if recall < cfg.min_recall:
            raise IndexRecallTooLow(
                f"dense_index {cfg.kind}: recall@{k} against exact search is {recall:.4f} on {len(queries)} "
                f"queries, below ranking.retrieval.dense_index.min_recall {cfg.min_recall}; raise "
                + ("hnsw.ef_search or hnsw.m" if cfg.kind == "hnsw" else "ivf.nprobe") + ", or use kind: exact")
    return index, record


def compare_with_exact(vectors: np.ndarray, queries: np.ndarray, cfg: DenseIndexConfig, k: int) -> dict[str, float]:
    """An index as `cfg` says beside exact search on the same queries (the training step's index
    baseline, mlplatform.ranking.baselines): recall@k against exact, and each one's search time per
    query, measured in-process on one batch of the queries."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    k = min(k, len(vectors))
    exact, index = build(vectors, DenseIndexConfig()), build(vectors, cfg)
    tune(index, cfg, k)
    t = time.perf_counter()
    truth = search(exact, queries, k)
    exact_ms = (time.perf_counter() - t) * 1000 / max(len(queries), 1)
    t = time.perf_counter()
    found = search(index, queries, k)
    ms = (time.perf_counter() - t) * 1000 / max(len(queries), 1)
    hits = [len(np.intersect1d(a, b[b >= 0], assume_unique=True)) for a, b in zip(truth, found)]
    return {"recall_vs_exact": float(np.mean(hits) / k) if hits else 1.0, "k": float(k),
            "search_ms_per_query": ms, "exact_search_ms_per_query": exact_ms}


def save(index, folder: Path) -> None:
    import faiss

    faiss.write_index(index, str(Path(folder) / INDEX_FILE))


def load(folder: Path, vectors: np.ndarray, cfg: DenseIndexConfig, k: int):
    """The saved approximate index, or an exact one made from the embeddings (kind exact)."""
    import faiss

    if cfg.kind == "exact":
        return build(vectors, cfg)
    path = Path(folder) / INDEX_FILE
    if not path.exists():
        raise FileNotFoundError(f"no {INDEX_FILE} in {folder}: the index was built as exact; run the features step")
    index = faiss.read_index(str(path))
    tune(index, cfg, k)
    return index
