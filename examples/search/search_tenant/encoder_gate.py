"""The int8 gate of the query encoder, run by the features step when the tenant file asks for int8
(ranking.retrieval.encoder.quantize): the snapshot's judged queries are embedded by the fp32 and the
int8 export, and dense retrieval is scored with each against the judgments,

  NDCG@10      of the cosine ordering of each query's judged items (the `dense_sim` baseline of
               training, i.e. what the encoder alone contributes to the order);
  recall@K     of exact dense retrieval over the whole catalog (K = retrieval.candidates),

with the items embedded once in fp32 (the catalog is embedded offline, where int8 saves nothing).
int8 is kept only when NDCG@10 falls by at most `max_ndcg_drop` and recall@K by at most
`max_recall_drop`; otherwise the build keeps fp32 and its record (info.json, the MLflow run) says why.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from mlplatform.config import EncoderConfig, TenantConfig
from mlplatform.ranking.metrics import ranking_metrics, recall_at_k


def judged(cfg: TenantConfig, raw: pd.DataFrame, position: pd.Series) -> tuple[list[str], pd.DataFrame]:
    """Distinct query texts and the judged pairs as (query index, item position, label)."""
    r = cfg.ranking
    frame = raw[raw[r.item].isin(position.index)]
    texts = frame[r.query_text].astype(str)
    queries = list(dict.fromkeys(texts))
    qidx = pd.Series(np.arange(len(queries)), index=queries)
    pairs = pd.DataFrame({"q": qidx.loc[texts].to_numpy(), "pos": position.loc[frame[r.item]].to_numpy(),
                          "label": frame[cfg.data.label].to_numpy(np.float64)})
    return queries, pairs


def dense_quality(items: np.ndarray, queries: np.ndarray, pairs: pd.DataFrame, k: int, relevant_min: int) -> dict:
    """NDCG@10 of the cosine ordering of judged pairs, recall@k of exact dense retrieval."""
    cos = np.einsum("ij,ij->i", queries[pairs["q"].to_numpy()], items[pairs["pos"].to_numpy()])
    ndcg = ranking_metrics(pairs["label"].to_numpy(), cos, pairs["q"].to_numpy(), [10], relevant_min)["ndcg_at_10"]
    rel = pairs[pairs["label"] >= relevant_min].groupby("q")["pos"].agg(set)
    k = min(k, len(items))
    top = [np.argpartition(-(items @ queries[q]), k - 1)[:k] for q in rel.index]
    return {"ndcg_at_10": round(float(ndcg), 6),
            f"recall_at_{k}": round(recall_at_k(top, list(rel), [k])[str(k)], 6), "queries": int(len(rel))}


def choose(fp32: dict, int8: dict, enc: EncoderConfig) -> tuple[str, str]:
    """The precision kept and why."""
    recall_key = next(key for key in fp32 if key.startswith("recall_at_"))
    ndcg_drop = fp32["ndcg_at_10"] - int8["ndcg_at_10"]
    recall_drop = fp32[recall_key] - int8[recall_key]
    said = f"NDCG@10 {fp32['ndcg_at_10']:.4f} -> {int8['ndcg_at_10']:.4f} (drop {ndcg_drop:+.4f}), " \
           f"{recall_key.replace('_at_', '@')} {fp32[recall_key]:.4f} -> {int8[recall_key]:.4f} (drop {recall_drop:+.4f})"
    if ndcg_drop > enc.max_ndcg_drop:
        return "fp32", f"int8 refused: {said}; NDCG@10 drop above max_ndcg_drop {enc.max_ndcg_drop}"
    if recall_drop > enc.max_recall_drop:
        return "fp32", f"int8 refused: {said}; recall drop above max_recall_drop {enc.max_recall_drop}"
    return "int8", f"int8 kept: {said}; within max_ndcg_drop {enc.max_ndcg_drop}, max_recall_drop {enc.max_recall_drop}"


def gate(cfg: TenantConfig, raw: pd.DataFrame, position: pd.Series, items: np.ndarray, fp32, int8) -> dict:
    """Run the gate with two encoders (fp32, int8) over the judged queries; the record says what
    was kept and why, with both sets of figures."""
    r = cfg.ranking
    t = time.monotonic()
    texts, pairs = judged(cfg, raw, position)
    scores = {name: dense_quality(items, enc.encode(texts), pairs, r.retrieval.candidates, r.relevant_min)
              for name, enc in (("fp32", fp32), ("int8", int8))}
    precision, reason = choose(scores["fp32"], scores["int8"], r.retrieval.encoder)
    return {"precision": precision, "reason": reason, "fp32": scores["fp32"], "int8": scores["int8"],
            "seconds": round(time.monotonic() - t, 2)}
