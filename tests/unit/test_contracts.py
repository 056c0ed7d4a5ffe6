"""Tenant plug-in contracts (mlplatform.contracts): checked when a tenant file is loaded, with an
error naming the field, the dotted path and what is missing; the examples in docs/onboarding.md fit."""

from __future__ import annotations

import importlib
import re
import textwrap
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from mlplatform import contracts
from mlplatform.config import TenantConfigError, load_tenant
from tests.conftest import FRAUD_TENANT, REPO

SEARCH_TENANT = REPO / "examples" / "search" / "tenant.yaml"


def test_example_tenants_fit_their_contracts():
    for path in (FRAUD_TENANT, SEARCH_TENANT):
        cfg = load_tenant(path)
        assert contracts.check_plugins(cfg) == []
    assert [f for f, *_ in contracts.named_plugins(load_tenant(SEARCH_TENANT))] == [
        "data.generator", "features.builder", "ranking.retrieval.retriever", "ranking.feedback.simulator",
        "model.trainer"]


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """Write a module of plug-ins under a fresh name and make it importable."""
    monkeypatch.syspath_prepend(str(tmp_path))
    count = iter(range(100))

    def write(source: str) -> str:
        name = f"contract_plugins_{next(count)}_{tmp_path.name.replace('-', '_')}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        return name

    return write


def _tenant(tmp_path, base, **set_values) -> str:
    raw = yaml.safe_load(base.read_text())
    for dotted, value in set_values.items():
        node = raw
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    path = tmp_path / "tenant.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_a_builder_with_the_old_two_argument_signature_is_refused(tmp_path, plugins):
    mod = plugins("def build(raw, cfg):\n    return {}\n")
    path = _tenant(tmp_path, FRAUD_TENANT, **{"features.builder": f"{mod}:build"})
    with pytest.raises(TenantConfigError) as err:
        load_tenant(path)
    msg = str(err.value)
    assert str(path) in msg and "features.builder" in msg and f"{mod}:build" in msg
    assert "(raw, cfg, tables)" in msg and "FeatureBuilder" in msg


def test_a_retriever_without_search_names_the_missing_member(tmp_path, plugins):
    mod = plugins("""
        class Retriever:
            catalog = None
            @classmethod
            def build(cls, cfg, ws, out): return {}
            @classmethod
            def load(cls, cfg, path): return cls()
            def pair_features(self, query, positions, qvec=None, scores=None): return {}
            def features_for_pairs(self, frame, query_col, item_col): return frame
            def positions_of(self, item_ids): return item_ids
            def retrieve_many(self, queries, k): return []
        """)
    path = _tenant(tmp_path, SEARCH_TENANT, **{"ranking.retrieval.retriever": f"{mod}:Retriever"})
    with pytest.raises(TenantConfigError, match=re.escape(
            f"ranking.retrieval.retriever: {mod}:Retriever has no member 'search' (mlplatform.contracts.Retriever)")):
        load_tenant(path)


def test_a_retriever_whose_load_is_not_a_class_method_is_refused(plugins):
    mod = importlib.import_module(plugins("""
        class Retriever:
            catalog = None
            @classmethod
            def build(cls, cfg, ws, out): return {}
            def load(self, cfg, path): return self
        """))
    problems = contracts.fits(mod.Retriever, contracts.Retriever)
    assert any(p.startswith("load: cannot be called as (cfg, path)") for p in problems)


def test_a_retriever_built_into_the_workspace_is_refused(plugins):
    """The older build(cfg, ws) wrote its index where only the features pod could read it."""
    mod = importlib.import_module(plugins("""
        class Retriever:
            catalog = None
            @classmethod
            def build(cls, cfg, ws): return {}
            @classmethod
            def load(cls, cfg, path): return cls()
        """))
    problems = contracts.fits(mod.Retriever, contracts.Retriever)
    assert any(p.startswith("build: cannot be called as (cfg, ws, out)") for p in problems)


def test_unknown_generator_arguments_and_unimportable_paths_are_named(tmp_path):
    path = _tenant(tmp_path, FRAUD_TENANT, **{"data.generator_args.customer": 10,
                                              "features.request.transform": "no_such_module:transform"})
    with pytest.raises(TenantConfigError) as err:
        load_tenant(path)
    msg = str(err.value)
    assert "2 problem(s)" in msg
    assert "data.generator: fraud_tenant.data:generate cannot be called as" in msg and "'customer'" in msg
    assert "features.request.transform: cannot import 'no_such_module'" in msg


def test_a_simulator_must_take_role_and_seed_as_keywords(plugins):
    mod = importlib.import_module(plugins("def simulate(cfg, ws, role='stable'):\n    return {}\n"))
    [problem] = contracts.fits(mod.simulate, contracts.FeedbackSimulator)
    assert "(cfg, ws, role=, seed=)" in problem and "seed" in problem


def test_the_onboarding_examples_fit_and_run(tmp_path, plugins):
    doc = (REPO / "docs" / "onboarding.md").read_text()
    block = doc.split("## Plug-in contracts", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    mod = importlib.import_module(plugins(block))
    for fn, contract in ((mod.generate, contracts.DataGenerator), (mod.build, contracts.FeatureBuilder),
                         (mod.transform, contracts.RequestTransform), (mod.TitleRetriever, contracts.Retriever),
                         (mod.simulate, contracts.FeedbackSimulator), (mod.trainer, contracts.Trainer)):
        assert contracts.fits(fn, contract, {"rows": 50, "seed": 1}) == [], contract.__name__
    mod.generate(tmp_path / "raw", rows=50, seed=1)
    raw = pd.read_parquet(tmp_path / "raw")
    views = mod.build(raw, None, {})
    assert list(views["events"].columns) == ["event_id", "event_timestamp", "x"]
    assert "x_squared" in mod.transform(raw)
    retriever = mod.TitleRetriever(pd.DataFrame({"item_id": [7, 8, 9], "title": ["red shoe", "blue shoe", "red hat"]}))
    positions, scores = retriever.search("red shoe", 2)
    assert positions.tolist() == [0, 1] and retriever.pair_features("red shoe", positions, None, scores)["overlap"].tolist() == [2, 1]
    pairs = retriever.features_for_pairs(pd.DataFrame({"q": ["red hat", "red hat"], "item": [9, 8]}), "q", "item")
    assert pairs["overlap"].tolist() == [2, 0]
    assert [r["overlap"].tolist() for r in retriever.retrieve_many(["hat"], 1)] == [[2]]
    cfg = SimpleNamespace(model=SimpleNamespace(features=["x"]), data=SimpleNamespace(label="label"))
    trained = mod.trainer.train(cfg, raw, raw)
    scores = mod.trainer.predict(trained.model, raw)
    assert len(scores) == 50 and ((scores >= 0) & (scores <= 1)).all()


def test_a_trainer_without_log_is_refused_and_the_older_function_form_is_accepted(tmp_path, plugins):
    mod = plugins("""
        class Half:
            def train(self, cfg, train_df, valid_df, storage=None): ...
            def predict(self, model, frame): ...
            def load(self, uri): ...

        trainer = Half()
    """)
    path = _tenant(tmp_path, FRAUD_TENANT, **{"model.trainer": f"{mod}:trainer"})
    with pytest.raises(TenantConfigError) as err:
        load_tenant(path)
    assert f"model.trainer: {mod}:trainer has no member 'log' (mlplatform.contracts.Trainer)" in str(err.value)
    # tenant files written when trainers were module functions still load (training/trainers.py adapts them)
    path = _tenant(tmp_path, FRAUD_TENANT, **{"model.trainer": "mlplatform.training.xgboost_trainer:train"})
    assert load_tenant(path).model.trainer.endswith(":train")


def test_a_stream_state_must_declare_key_value_state_and_horizon(plugins):
    mod = importlib.import_module(plugins("class Half:\n    key = 'card'\n    value = 'amount'\n"))
    problems = contracts.fits(mod.Half, contracts.BucketState)
    assert problems == ["has no member 'state'", "has no member 'horizon_hours'"]
    from fraud_tenant.velocity import CUSTOMER

    assert contracts.fits(CUSTOMER, contracts.BucketState) == []
