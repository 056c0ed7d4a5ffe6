"""The baseline runner, the rules search, the ranking fusions and the bootstrap, on small frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from mlplatform.config import ConfidenceConfig, TenantConfigError, load_tenant, parse_tenant
from mlplatform.ranking.baselines import rrf_scores, scaled
from mlplatform.training import baselines, confidence
from mlplatform.training.classification_baselines import choose_rules
from mlplatform.training.metrics import classification_metrics
from tests.conftest import FRAUD_TENANT


def _fraud(**baseline_fields):
    cfg = load_tenant(FRAUD_TENANT)
    return cfg.model_copy(update={"model": cfg.model.model_copy(
        update={"baselines": cfg.model.baselines.model_copy(update=baseline_fields)})})


def _inputs(cfg, train, valid):
    y = valid[cfg.data.label].to_numpy()
    return baselines.BaselineInputs(cfg, train, valid, lambda s: classification_metrics(y, s, cfg.metrics))


def _rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cfg = load_tenant(FRAUD_TENANT)
    frame = pd.DataFrame(rng.normal(size=(n, len(cfg.model.features))), columns=cfg.model.features)
    frame["amount"] = rng.uniform(1, 300, n)
    frame["is_fraud"] = (frame["amount"] > 220).astype(int)  # the generator's first scenario, alone
    return frame


def test_the_rules_search_finds_the_amount_threshold_on_training_rows():
    cfg = _fraud(rule_features=["amount", "customer_nb_tx_1d"])
    rules = choose_rules(_inputs(cfg, _rows(4000, 0), _rows(100, 1)))
    assert list(rules) == ["amount"]  # the velocity rule lowers no cost here: left out
    assert 210 < rules["amount"] < 225


class _Broken:
    name, description = "broken", "raises"

    def evaluate(self, inputs):
        raise RuntimeError("boom")


class _Inapplicable:
    name, description = "nothing", "does not apply"

    def evaluate(self, inputs):
        raise baselines.NotApplicable("no such column")


def test_the_runner_records_what_failed_or_did_not_apply_and_runs_the_rest():
    from mlplatform.training.classification_baselines import RulesBaseline

    cfg = _fraud(rule_features=["amount"])
    inputs = _inputs(cfg, _rows(2000, 0), _rows(500, 1))
    records = baselines.run(cfg, [_Broken(), _Inapplicable(), RulesBaseline()], inputs)
    assert [r["status"] for r in records] == ["failed", "not_applicable", "ok"]
    assert records[0]["reason"] == "RuntimeError: boom" and records[1]["reason"] == "no such column"
    figures = baselines.metrics_of(records)
    assert figures["baseline.rules.recall_at_threshold"] == 1.0  # the rule is the label here
    assert not [k for k in figures if k.startswith(("baseline.broken", "baseline.nothing"))]
    assert baselines.run(_fraud(enabled=False), [RulesBaseline()], inputs) == []


def test_rule_features_must_be_model_inputs():
    raw = yaml.safe_load(FRAUD_TENANT.read_text())
    raw["model"]["baselines"]["rule_features"] = ["amount", "no_such_feature"]
    with pytest.raises(TenantConfigError, match=r"no_such_feature.*not in model.features"):
        parse_tenant(raw)


def test_rrf_and_scaling_work_within_each_query():
    df = pd.DataFrame({"q": [1, 1, 1, 2, 2], "a": [3.0, 2.0, 1.0, 5.0, 5.0], "b": [1.0, 2.0, 3.0, 0.0, 1.0]})
    fused = rrf_scores(df, "q", ("a", "b"))
    assert fused[0] == fused[2] == pytest.approx(1 / 61 + 1 / 63)  # first by one list, last by the other
    assert fused[1] == pytest.approx(2 / 62)
    assert scaled(df, "q", "a").tolist() == [1.0, 0.5, 0.0, 0.0, 0.0]  # a constant query scales to 0


def test_the_bootstrap_is_seeded_and_skips_undefined_resamples():
    values = np.r_[np.zeros(50), np.ones(50)]
    stat = confidence.per_unit_means({"mean": values})
    cfg = ConfidenceConfig(resamples=300, level=0.9, seed=3)
    one, two = confidence.bootstrap(stat, 100, cfg, "rows"), confidence.bootstrap(stat, 100, cfg, "rows")
    assert one == two
    iv = one["intervals"]["mean"]
    assert iv["low"] < 0.5 < iv["high"] and iv["high"] - iv["low"] < 0.25 and iv["resamples"] == 300
    assert confidence.metrics_of(one) == {"mean.ci_low": iv["low"], "mean.ci_high": iv["high"]}
    # a figure undefined on some resamples counts only where it is defined
    sometimes = confidence.bootstrap(lambda idx: {"x": 1.0} if values[idx].mean() > 0.5 else {}, 100, cfg, "rows")
    assert 0 < sometimes["intervals"]["x"]["resamples"] < 300
    assert confidence.bootstrap(stat, 100, ConfidenceConfig(resamples=0), "rows")["intervals"] == {}


def test_the_bootstrap_draws_nothing_from_numpys_global_state():
    np.random.seed(5)
    expected = np.random.random()
    np.random.seed(5)
    confidence.bootstrap(confidence.per_unit_means({"m": np.arange(10.0)}), 10, ConfidenceConfig(), "rows")
    assert np.random.random() == expected
