"""Offline ranking metrics over grouped rows (one group per query), vectorised per group.

NDCG@k uses the exponential gain 2^label - 1 and a log2(rank + 1) discount (Burges et al.; the
definition LightGBM's lambdarank optimises). Queries without a relevant document (ideal DCG 0)
carry no information about the order and are left out of every mean; `queries` counts the rest.
"""

from __future__ import annotations

import numpy as np


def _groups(group: np.ndarray) -> list[np.ndarray]:
    """Row indices of each group, groups in order of first appearance."""
    group = np.asarray(group)
    _, first, inverse = np.unique(group, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    idx = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse))[:-1]
    parts = np.split(idx, bounds)
    return [parts[i] for i in order]


def dcg(labels_in_rank_order: np.ndarray, k: int) -> float:
    top = np.asarray(labels_in_rank_order, dtype=np.float64)[:k]
    return float(((2.0 ** top - 1.0) / np.log2(np.arange(2, len(top) + 2))).sum())


def per_query_metrics(labels, scores, group, k_values: list[int], relevant_min: int = 1) -> dict[str, np.ndarray]:
    """ndcg_at_<k> and mrr of each query with a relevant document (the values ranking_metrics
    averages; what a bootstrap over queries resamples, training/confidence.py)."""
    labels, scores = np.asarray(labels, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    ndcg = {k: [] for k in k_values}
    rr = []
    for rows in _groups(group):
        lab = labels[rows]
        if lab.max(initial=0) <= 0:
            continue
        order = np.argsort(-scores[rows], kind="stable")
        ranked, ideal = lab[order], np.sort(lab)[::-1]
        for k in k_values:
            ndcg[k].append(dcg(ranked, k) / dcg(ideal, k))
        hits = np.flatnonzero(ranked >= relevant_min)
        rr.append(1.0 / (hits[0] + 1) if len(hits) else 0.0)
    out = {f"ndcg_at_{k}": np.asarray(v, dtype=np.float64) for k, v in ndcg.items()}
    out["mrr"] = np.asarray(rr, dtype=np.float64)
    return out


def ranking_metrics(labels, scores, group, k_values: list[int], relevant_min: int = 1,
                    prefix: str = "") -> dict[str, float]:
    """ndcg_at_<k> for each k, mrr (first label >= relevant_min), and the number of queries."""
    values = per_query_metrics(labels, scores, group, k_values, relevant_min)
    out = {f"{prefix}{name}": float(np.mean(v)) if len(v) else 0.0 for name, v in values.items()}
    out[f"{prefix}queries"] = float(len(values["mrr"]))
    return out


def recall_at_k(retrieved: list[np.ndarray], relevant: list[set], ks: list[int]) -> dict[str, float]:
    """Mean over queries with a relevant item of |top k of retrieved ∩ relevant| / |relevant|."""
    pairs = [(r, rel) for r, rel in zip(retrieved, relevant) if rel]
    out = {}
    for k in ks:
        vals = [len(set(np.asarray(r)[:k].tolist()) & rel) / len(rel) for r, rel in pairs]
        out[str(k)] = float(np.mean(vals)) if vals else 0.0
    return out


def group_sizes(group) -> np.ndarray:
    """Sizes of consecutive runs of equal group ids (LightGBM's `group` argument); rows must be sorted by group."""
    group = np.asarray(group)
    if len(group) == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.flatnonzero(group[1:] != group[:-1]) + 1
    return np.diff(np.r_[0, change, len(group)]).astype(np.int64)
