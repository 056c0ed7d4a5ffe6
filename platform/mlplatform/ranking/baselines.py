"""The baselines of `task: ranking` (training/baselines.py), scored on the model's validation
queries (judged rows only) with the model's metrics (NDCG@k, MRR):

<feature>              each `ranking.baselines` feature alone (for search: BM25 only, dense only)
rrf                    reciprocal rank fusion of the first two of them within each query's
                       candidates, 1 / (60 + rank) summed (k = 60, Cormack et al. 2009; the
                       constant the search tenant's stage-one fusion uses)
linear_fusion          w * a + (1 - w) * b of the same two, each min-max scaled within its query,
                       w tuned on the training queries for the primary metric (a grid of 21)
ranker_judgments_only  the model's trainer with the model's selected parameters and rounds,
                       trained on the judged rows only (no click labels): what the clicks add
hnsw_index             when the dense index is exact: an HNSW index over the same embeddings,
                       its recall of exact search's top k and search time (the retriever's
                       optional compare_index)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlplatform.ranking.metrics import ranking_metrics
from mlplatform.ranking.train import SOURCE
from mlplatform.training.baselines import BaselineInputs, NotApplicable

RRF_K = 60
FUSION_WEIGHTS = np.round(np.linspace(0.0, 1.0, 21), 2)


def _judged(df: pd.DataFrame) -> pd.DataFrame:
    return df[df[SOURCE] == "judgment"].reset_index(drop=True) if SOURCE in df.columns else df


def _metrics(inputs: BaselineInputs, df: pd.DataFrame, scores: np.ndarray) -> dict[str, float]:
    r = inputs.cfg.ranking
    return ranking_metrics(df[inputs.cfg.data.label].to_numpy(), scores, df[r.group].to_numpy(), r.k_values,
                           r.relevant_min)


def _primary(inputs: BaselineInputs) -> str:
    names = [f"ndcg_at_{k}" for k in inputs.cfg.ranking.k_values] + ["mrr"]
    primary = inputs.cfg.metrics.primary
    return primary if primary in names else f"ndcg_at_{max(inputs.cfg.ranking.k_values)}"


def _pair(inputs: BaselineInputs) -> tuple[str, str]:
    features = inputs.cfg.ranking.baselines
    if len(features) < 2:
        raise NotApplicable(f"fusion needs two ranking.baselines features, the tenant names {features}")
    missing = [f for f in features[:2] if f not in inputs.valid_df.columns]
    if missing:
        raise NotApplicable(f"ranking.baselines features {missing} are not columns of the training set")
    return features[0], features[1]


class FeatureOrder:
    """Rank each query's candidates by one feature alone."""

    def __init__(self, feature: str):
        self.name = feature
        self.feature = feature
        self.description = f"{feature} alone: each query's candidates ordered by it"

    def evaluate(self, inputs: BaselineInputs) -> tuple[dict[str, float], dict[str, Any]]:
        if self.feature not in inputs.valid_df.columns:
            raise NotApplicable(f"{self.feature!r} is not a column of the training set")
        return inputs.metrics(inputs.valid_df[self.feature].to_numpy(np.float64)), {}


def rrf_scores(df: pd.DataFrame, group: str, features: tuple[str, ...]) -> np.ndarray:
    """Reciprocal rank fusion within each group: ties keep row order (rank method "first")."""
    out = np.zeros(len(df))
    for feature in features:
        rank = df.groupby(group, sort=False)[feature].rank(method="first", ascending=False)
        out += 1.0 / (RRF_K + rank.to_numpy(np.float64))
    return out


def scaled(df: pd.DataFrame, group: str, feature: str) -> np.ndarray:
    """Min-max scaled within each group (a constant group scales to 0)."""
    x = df[feature].astype(np.float64)
    by = df.groupby(group, sort=False)[feature]
    lo, hi = by.transform("min").astype(np.float64), by.transform("max").astype(np.float64)
    return ((x - lo) / (hi - lo).where(hi > lo, 1.0)).fillna(0.0).to_numpy()


class RRF:
    name = "rrf"
    description = f"reciprocal rank fusion (k={RRF_K}) of the first two ranking.baselines features"

    def evaluate(self, inputs: BaselineInputs) -> tuple[dict[str, float], dict[str, Any]]:
        pair = _pair(inputs)
        return inputs.metrics(rrf_scores(inputs.valid_df, inputs.cfg.ranking.group, pair)), {"features": list(pair)}


class LinearFusion:
    name = "linear_fusion"
    description = ("w * a + (1 - w) * b of the first two ranking.baselines features, min-max scaled per query, "
                   "w tuned on the training queries")

    def evaluate(self, inputs: BaselineInputs) -> tuple[dict[str, float], dict[str, Any]]:
        a, b = _pair(inputs)
        group, primary = inputs.cfg.ranking.group, _primary(inputs)
        train = _judged(inputs.train_df)
        if train.empty:
            raise NotApplicable("no judged training rows to tune the weight on")
        xa, xb = scaled(train, group, a), scaled(train, group, b)
        tuned = [_metrics(inputs, train, w * xa + (1 - w) * xb)[primary] for w in FUSION_WEIGHTS]
        w = float(FUSION_WEIGHTS[int(np.argmax(tuned))])  # the first best: ties go to the lower weight
        valid = inputs.valid_df
        scores = w * scaled(valid, group, a) + (1 - w) * scaled(valid, group, b)
        return inputs.metrics(scores), {"features": [a, b], "weight": w, "tuned_on": f"training queries, {primary}",
                                        f"train_{primary}": float(max(tuned))}


class RankerWithoutClicks:
    name = "ranker_judgments_only"
    description = "the model's ranker, same parameters and rounds, trained without the click-labelled rows"

    def evaluate(self, inputs: BaselineInputs) -> tuple[dict[str, float], dict[str, Any]]:
        train = inputs.train_df
        clicks = int((train[SOURCE] == "clicks").sum()) if SOURCE in train.columns else 0
        if clicks == 0:
            raise NotApplicable("the model trained on no click-labelled rows")
        if inputs.trainer is None or inputs.trained is None:
            raise NotApplicable("no trainer given")
        cfg, trained = inputs.cfg, inputs.trained
        # no search and no early stopping: exactly the model's selected parameters and rounds
        model_cfg = cfg.model.model_copy(update={
            "tune": cfg.model.tune.model_copy(update={"enabled": False}), "params": dict(trained.params),
            "num_boost_round": int(trained.best_iteration), "early_stopping_rounds": None})
        fixed = cfg.model_copy(update={"model": model_cfg})
        judged = _judged(train)
        model = inputs.trainer.train(fixed, judged, inputs.valid_df, inputs.extra.get("storage")).model
        scores = np.asarray(inputs.trainer.predict(model, inputs.valid_df), dtype=np.float64)
        return inputs.metrics(scores), {"train_rows": len(judged), "click_rows_left_out": clicks,
                                        "rounds": int(trained.best_iteration)}


class ApproximateIndex:
    name = "hnsw_index"
    description = ("dense retrieval from an HNSW index (faiss, the tenant file's hnsw parameters) instead of exact "
                   "search: recall of exact search's top k on the validation queries, and search time per query "
                   "(in-process, one batch)")

    def evaluate(self, inputs: BaselineInputs) -> tuple[dict[str, float], dict[str, Any]]:
        retrieval = inputs.cfg.ranking.retrieval
        retriever = inputs.extra.get("retriever")
        if retrieval is None or retriever is None:
            raise NotApplicable("the tenant has no retrieval stage")
        if not callable(getattr(retriever, "compare_index", None)):
            raise NotApplicable("its retriever has no compare_index (optional, mlplatform.contracts.Retriever)")
        if retrieval.dense_index.kind != "exact":
            raise NotApplicable(f"the index is {retrieval.dense_index.kind} already: its recall against exact "
                                "search is the run's index_recall_vs_exact metric")
        queries = inputs.valid_df[inputs.cfg.ranking.query_text].drop_duplicates().tolist()
        hnsw = retrieval.dense_index.model_copy(update={"kind": "hnsw"})
        figures = retriever.compare_index(hnsw, queries, retrieval.candidates)
        return {k: float(v) for k, v in figures.items()}, {"hnsw": hnsw.hnsw.model_dump(), "queries": len(queries)}


def baselines(cfg) -> list:
    """The ranking baselines of a tenant: one per ranking.baselines feature, then the fusions, the
    ranker without clicks and the HNSW index (each says when it does not apply)."""
    return [FeatureOrder(f) for f in cfg.ranking.baselines] + [RRF(), LinearFusion(), RankerWithoutClicks(),
                                                                 ApproximateIndex()]
