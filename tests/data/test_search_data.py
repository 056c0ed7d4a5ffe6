"""The search simulator and the Great Expectations gate on its tables: deterministic output,
position-biased clicks that IPW corrects, and bad judgments that the gate rejects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from search_tenant.data import CLICK_GIVEN_EXAMINED, simulate

from mlplatform.config import load_tenant
from mlplatform.ranking.clicks import ipw_ctr
from mlplatform.validation.gate import validate
from tests.conftest import REPO

SMALL = {"items": 400, "queries": 80, "days": 10, "seed": 5}


@pytest.fixture(scope="module")
def cfg():
    return load_tenant(REPO / "examples" / "search" / "tenant.yaml")


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return simulate(**SMALL)


def test_same_seed_same_tables_other_seed_other_tables(tables):
    again = simulate(**SMALL)
    for name, df in tables.items():
        pd.testing.assert_frame_equal(df, again[name])
    other = simulate(**(SMALL | {"seed": 6}))
    assert not other["judgments"].equals(tables["judgments"])


def test_tables_have_the_promised_shape(tables):
    j, q, c = tables["judgments"], tables["queries"], tables["clicks"]
    assert set(j["relevance"].unique()) <= set(range(5)) and j["relevance"].nunique() == 5
    assert not j.duplicated(["query_id", "item_id"]).any()
    assert set(q["intent"]) == {"navigational", "category", "attribute"}
    assert set(j["query_id"]) == set(q["query_id"])  # every query has judged candidates
    assert j.groupby("query_id").size().min() >= 5
    # some shown items were never judged: clicks are their only label
    shown = c[["query_id", "item_id"]].drop_duplicates()
    assert len(shown.merge(j, on=["query_id", "item_id"], how="left").query("relevance.isna()")) > 0


def test_clicks_are_position_biased_and_ipw_undoes_it(tables):
    """Same relevance, different positions: raw CTR falls with position, IPW CTR does not."""
    c, j = tables["clicks"], tables["judgments"]
    top = c.merge(j[j["relevance"] == 4][["query_id", "item_id"]], on=["query_id", "item_id"])
    stats = ipw_ctr(top.assign(band=np.where(top["position"] <= 2, "top", "low")), ["band"]).set_index("band")
    assert stats.loc["top", "ctr_raw"] > 2 * stats.loc["low", "ctr_raw"]
    assert stats.loc["top", "ctr_ipw"] == pytest.approx(CLICK_GIVEN_EXAMINED[4], rel=0.25)
    assert stats.loc["low", "ctr_ipw"] == pytest.approx(CLICK_GIVEN_EXAMINED[4], rel=0.35)
    # and clicks still carry relevance: judged-relevant items are clicked more at the same position
    first = c[c["position"] == 1].merge(j, on=["query_id", "item_id"])
    assert first[first["relevance"] >= 3]["clicked"].mean() > 2 * first[first["relevance"] <= 1]["clicked"].mean()


def _aux(tables):
    return {k: v for k, v in tables.items() if k != "judgments"}


def test_clean_batch_passes(cfg, tables, tmp_path):
    result = validate(cfg, tables["judgments"], tmp_path / "r", _aux(tables))
    assert result.success, result.message()


def test_bad_judgments_are_rejected_each_by_its_expectation(cfg, tables, tmp_path):
    """One batch with four faults (one validation run: GE over four tables takes seconds): labels
    out of range, a duplicated query-document pair, a query without candidates, and a query with
    too few candidates to rank. Each is named by the expectation that caught it."""
    j = tables["judgments"].copy()
    j.loc[j.index[:3], "relevance"] = 7
    short = j["query_id"].iloc[-1]
    j = pd.concat([j[j["query_id"] != short], j[j["query_id"] == short].head(2)], ignore_index=True)
    assert j["query_id"].iloc[10] != short
    j = pd.concat([j, j.iloc[[10, 11]]], ignore_index=True)
    orphan = tables["queries"].head(1).assign(query_id=99_999, query="lonely query")
    aux = _aux(tables) | {"queries": pd.concat([tables["queries"], orphan], ignore_index=True)}
    result = validate(cfg, j, tmp_path / "r", aux)
    assert not result.success
    for expectation in ("expect_column_values_to_be_between(column='relevance'",
                        "expect_compound_columns_to_be_unique(column_list=['query_id', 'item_id']",
                        "expect_column_values_to_be_between(column='rows_per_query_id'",
                        "table queries: expect_column_values_to_be_in_set(column='query_id'"):
        assert any(line.startswith(expectation) for line in result.failed), (expectation, result.failed)
    assert len(result.failed) == 4, result.failed
