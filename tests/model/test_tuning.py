"""The shared Ray Tune search (training/tuning.py): bounded, seeded, and selecting on the lower bound
over validation folds; the ranker tunes through it like the classifier."""

from __future__ import annotations

import copy

import pytest
import yaml

from mlplatform.config import TenantConfig, TenantConfigError, parse_tenant
from mlplatform.training import lightgbm_ranker, tuning
from tests.model.test_ray_training import SEARCH_TENANT, ranking_frame


def test_the_rule_prefers_steady_folds_to_one_lucky_one():
    lucky = {"config": {"a": 1}, **tuning.fold_score([0.95, 0.60, 0.62])}
    steady = {"config": {"a": 2}, **tuning.fold_score([0.74, 0.73, 0.75])}
    assert lucky["mean"] < steady["mean"] + 0.01 and lucky["se"] > steady["se"]
    assert tuning.select([lucky, steady]) is steady
    one = tuning.fold_score([0.5])
    assert one["lower"] == one["mean"] == 0.5  # one fold: no spread to subtract


def test_integer_bounds_draw_integers():
    space = tuning.param_space({"num_leaves": [7, 63], "learning_rate": [0.03, 0.15], "eta": [0, 1.0]})
    assert type(space["num_leaves"]).__name__ == "Integer"
    assert type(space["learning_rate"]).__name__ == "Float" and type(space["eta"]).__name__ == "Float"


def test_a_reversed_range_is_a_config_error():
    raw = yaml.safe_load(SEARCH_TENANT.read_text())
    raw["model"]["tune"]["space"] = {"num_leaves": [63, 7]}
    with pytest.raises(TenantConfigError, match="each needs \\[low, high\\]"):
        parse_tenant(raw)


def tuned_cfg(samples: int) -> TenantConfig:
    raw = copy.deepcopy(yaml.safe_load(SEARCH_TENANT.read_text()))
    raw["model"] |= {"ray": {"num_cpus": 2, "num_workers": 1}, "num_boost_round": 20, "early_stopping_rounds": 10}
    raw["model"]["tune"] |= {"num_samples": samples}
    return TenantConfig.model_validate(raw)


def test_the_ranker_tunes_and_trains_the_selected_configuration(tmp_path):
    cfg = tuned_cfg(3)
    assert cfg.model.tune.enabled  # ranking tunes by default (the search tenant, scaffold/letor.py)
    tr, va = ranking_frame(cfg, 150, 1), ranking_frame(cfg, 60, 2)
    trained = lightgbm_ranker.train(cfg, tr, va, tmp_path)
    trials = trained.tune_trials
    assert len(trials) == 3 and len({tuple(sorted(t["config"].items())) for t in trials}) == 3
    [chosen] = [t for t in trials if t["selected"]]
    assert chosen["lower"] == max(t["lower"] for t in trials)
    assert all(len(t["folds"]) == cfg.model.tune.folds and t["metric"] == "ndcg_at_10" for t in trials)
    for name, (low, high) in cfg.model.tune.space.items():
        assert trained.params[name] == chosen["config"][name] and low <= chosen["config"][name] <= high
    assert isinstance(trained.params["num_leaves"], int)
    again = lightgbm_ranker.train(cfg, tr, va, tmp_path / "again")  # seeded: the same search
    assert [t["config"] for t in again.tune_trials] == [t["config"] for t in trials]


def test_a_baseline_is_kept_unless_a_trial_beats_it_on_evidence():
    base = {"config": {"a": 0, "rounds": 100}, "baseline": True, **tuning.fold_score([0.70, 0.72, 0.71])}
    close = {"config": {"a": 1}, **tuning.fold_score([0.78, 0.66, 0.75])}  # higher mean, lower bound below 0.71
    clear = {"config": {"a": 2}, **tuning.fold_score([0.75, 0.76, 0.75])}
    assert close["mean"] > base["mean"] >= close["lower"]
    assert tuning.select([close, base]) is base
    assert tuning.select([close, clear, base]) is clear
    assert tuning.split_rounds(base["config"]) == ({"a": 0}, 100) and tuning.split_rounds({"a": 1}) == ({"a": 1}, None)


def test_the_ranker_scores_a_baseline_beside_the_search_and_trains_what_the_rule_selects(tmp_path):
    raw = copy.deepcopy(yaml.safe_load(SEARCH_TENANT.read_text()))
    raw["model"] |= {"ray": {"num_cpus": 2, "num_workers": 1}, "num_boost_round": 20, "early_stopping_rounds": 10}
    raw["model"]["tune"] |= {"num_samples": 2, "baseline": {"learning_rate": 0.1, "num_leaves": 31, "rounds": 7}}
    cfg = TenantConfig.model_validate(raw)
    trained = lightgbm_ranker.train(cfg, ranking_frame(cfg, 150, 1), ranking_frame(cfg, 60, 2), tmp_path)
    trials = trained.tune_trials
    [base] = [t for t in trials if t.get("baseline")]
    assert len(trials) == 3 and base["rounds"] == 7 and len(base["folds"]) == cfg.model.tune.folds
    [chosen] = [t for t in trials if t["selected"]]
    best = max(trials, key=lambda t: t["lower"])
    assert chosen is (base if best["lower"] <= base["mean"] else best)
    params, fixed = tuning.split_rounds(chosen["config"])
    assert all(trained.params[k] == v for k, v in params.items())
    if fixed:  # the baseline: exactly its rounds, no early stopping
        assert trained.model.current_iteration() == fixed == trained.best_iteration
