"""Ranking building blocks on numbers alone: NDCG/MRR/recall, group sizes, IPW click labels,
LETOR parsing, reciprocal rank fusion, and the ranking section of the tenant file."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from mlplatform.config import ClickLabels, TenantConfigError, load_tenant, parse_tenant
from mlplatform.ranking.clicks import click_labels, ipw_ctr, propensity
from mlplatform.ranking.letor import read_letor, read_letor_set, write_letor
from mlplatform.ranking.metrics import dcg, group_sizes, ranking_metrics, recall_at_k
from tests.conftest import REPO

SEARCH_TENANT = REPO / "examples" / "search" / "tenant.yaml"


def test_ndcg_perfect_reversed_and_by_hand():
    labels = np.array([3, 2, 0, 1])
    group = np.zeros(4)
    perfect = ranking_metrics(labels, labels.astype(float), group, [2, 4])
    assert perfect["ndcg_at_2"] == pytest.approx(1.0) and perfect["ndcg_at_4"] == pytest.approx(1.0)
    worst = ranking_metrics(labels, -labels.astype(float), group, [4])
    ideal = 7 + 3 / math.log2(3) + 1 / math.log2(4)
    got = 0 + 1 / math.log2(3) + 3 / math.log2(4) + 7 / math.log2(5)
    assert worst["ndcg_at_4"] == pytest.approx(got / ideal)
    assert dcg(np.array([3, 2]), 1) == pytest.approx(7.0)


def test_mrr_and_queries_without_relevant_documents_are_skipped():
    labels = np.array([0, 0, 2, 0, 0, 0])
    scores = np.array([3, 2, 1, 3, 2, 1], dtype=float)
    group = np.array(["a", "a", "a", "b", "b", "b"])
    m = ranking_metrics(labels, scores, group, [10], relevant_min=1)
    assert m["queries"] == 1 and m["mrr"] == pytest.approx(1 / 3)


def test_recall_at_k_and_group_sizes():
    r = recall_at_k([np.array([5, 1, 9]), np.array([2])], [{1, 2}, set()], [1, 2, 3])
    assert r == {"1": 0.0, "2": 0.5, "3": 0.5}  # the query without relevant items does not count
    assert group_sizes(np.array([7, 7, 3, 3, 3, 9])).tolist() == [2, 3, 1]


def test_ipw_removes_position_bias_from_ctr():
    rng = np.random.default_rng(0)
    n = 200_000
    pos = rng.integers(1, 11, size=n)
    clicked = (rng.random(n) < propensity(pos, 1.0) * 0.4).astype(int)  # same relevance everywhere
    stats = ipw_ctr(pd.DataFrame({"pos_group": pos, "position": pos, "clicked": clicked}), ["pos_group"])
    stats = stats.set_index("pos_group")
    assert stats.loc[1, "ctr_raw"] > 5 * stats.loc[10, "ctr_raw"]  # raw CTR: mostly position
    assert stats["ctr_ipw"].to_numpy() == pytest.approx(np.full(10, 0.4), abs=0.03)  # IPW: the relevance


def test_click_labels_grade_and_weight():
    clicks = pd.DataFrame({"q": [1] * 6 + [2] * 2, "i": [10] * 3 + [11] * 3 + [12] * 2,
                           "position": [1, 2, 4, 1, 1, 1, 1, 1], "clicked": [1, 1, 1, 0, 0, 0, 1, 1]})
    spec = ClickLabels(table="clicks", eta=1.0, min_impressions=3, grade_thresholds=[0.1, 0.5, 1.5], weight=0.3)
    out = click_labels(clicks, spec, "q", "i").set_index("i")
    assert set(out.index) == {10, 11}  # item 12 has too few impressions
    assert out.loc[10, "label"] == 3 and out.loc[11, "label"] == 0  # (1+2+4)/3 = 2.33 -> grade 3
    assert (out["weight"] == 0.3).all()


def test_letor_roundtrip_and_errors(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("2 qid:1 1:0.5 3:1.5 # doc a\n0 qid:1 2:1\n\n1 qid:7 1:-1 2:0 3:2\n")
    df = read_letor(path)
    assert df["label"].tolist() == [2, 0, 1] and df["qid"].tolist() == ["1", "1", "7"]
    assert df[["f1", "f2", "f3"]].to_numpy().tolist() == [[0.5, 0, 1.5], [0, 1, 0], [-1, 0, 2]]
    out = write_letor(df, tmp_path / "copy.txt", ["f1", "f2", "f3"])
    assert read_letor(out)[["label", "f1", "f2", "f3"]].equals(df[["label", "f1", "f2", "f3"]])
    both = read_letor_set(path, out)
    assert set(both["split"]) == {"train", "valid"} and both["qid"].nunique() == 4  # qids kept apart per file
    assert both["doc_id"].is_unique
    bad = tmp_path / "bad.txt"
    bad.write_text("1 1:0.5 2:1\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        read_letor(bad)


def test_rrf_fuses_and_rewards_agreement():
    from search_tenant.retrieval import RRF_K, rrf

    fused = rrf([np.array([1, 2, 3]), np.array([3, 4, 1])], 10)
    assert fused[0] in (1, 3) and set(fused.tolist()) == {1, 2, 3, 4}
    assert fused.tolist().index(4) > fused.tolist().index(3)
    assert len(rrf([np.arange(50), np.arange(50, 100)], 7)) == 7 and RRF_K == 60


def test_search_tenant_loads():
    cfg = load_tenant(SEARCH_TENANT)
    assert cfg.task == "ranking" and cfg.ranking.group == "query_id"
    assert cfg.ranking.retrieval.rerank <= cfg.ranking.retrieval.candidates
    assert set(cfg.model.features) <= set(cfg.available_features)
    assert "ndcg_at_10" in cfg.metrics.gates.max_regression


@pytest.fixture
def search_raw() -> dict:
    return copy.deepcopy(yaml.safe_load(SEARCH_TENANT.read_text()))


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.pop("ranking"), "task 'ranking' needs a ranking section"),
    (lambda r: r["ranking"].update(group="session_id"), "ranking.group"),
    (lambda r: r["ranking"]["retrieval"].update(rerank=5000), "rerank"),
    (lambda r: r["ranking"]["clicks"].update(table="impressions"), "ranking.clicks.table"),
    (lambda r: r["ranking"].update(colour=1), "ranking.colour: unknown key"),
])
def test_bad_ranking_sections_are_rejected(search_raw, mutate, message):
    mutate(search_raw)
    with pytest.raises(TenantConfigError, match=message.replace("(", r"\(")):
        parse_tenant(search_raw, SEARCH_TENANT)


def test_classification_tenant_may_not_have_a_ranking_section(search_raw):
    fraud = yaml.safe_load((REPO / "examples" / "fraud" / "tenant.yaml").read_text())
    fraud["ranking"] = search_raw["ranking"]
    with pytest.raises(TenantConfigError, match="only for task 'ranking'"):
        parse_tenant(fraud)


def test_early_stopping_watches_the_gate_metric(search_raw):
    """LightGBM sorts eval_at and stops on the first: only the gate's k is evaluated in training."""
    from mlplatform.training.lightgbm_ranker import base_params

    search_raw["metrics"]["primary"] = "ndcg_at_10"
    search_raw["ranking"]["k_values"] = [1, 5, 10]
    assert base_params(parse_tenant(search_raw))["eval_at"] == [10]
    search_raw["metrics"]["primary"] = "mrr"
    search_raw["metrics"]["gates"] = {"minimum": {"mrr": 0.1}}
    assert base_params(parse_tenant(search_raw))["eval_at"] == [10]  # no NDCG primary: the largest k
