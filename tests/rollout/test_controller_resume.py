"""The controller against a real MLflow registry (SQLite), with analyses replayed from recorded
results and a backend that records (or dies on) what it is asked to apply: an interruption at any
point leaves a state the next run resumes or completes."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from mlplatform.config import load_tenant
from mlplatform.rollout import controller as ctl
from mlplatform.rollout.analysis import judge
from mlplatform.rollout.state import load_state
from mlplatform.workspace import Workspace

from tests.conftest import write_small_fraud_tenant


class Interrupted(BaseException):
    """Stands for the process being killed (not an Exception: nothing may catch it)."""


class Backend:
    def __init__(self, die_at: int | None = None):
        self.applied, self.die_at = [], die_at

    def apply(self, state):
        if self.die_at is not None and len(self.applied) == self.die_at:
            raise Interrupted
        self.applied.append((state.phase, state.weight))


@pytest.fixture
def setup(tmp_path, monkeypatch):
    path = write_small_fraud_tenant(tmp_path / "t", **{"rollout": {
        "interval_seconds": 0.01, "shadow_seconds": 0.01, "step_weights": [10, 50], "max_weight": 50,
        "failed_checks_limit": 2}})
    cfg = load_tenant(path)
    ws = Workspace(tmp_path / "home")
    ws.home.mkdir()
    # mlflow.set_tracking_uri() exports MLFLOW_TRACKING_URI, which Workspace honours: pin it per test
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{ws.home / 'mlflow.db'}")
    client = MlflowClient(tracking_uri=ws.mlflow_uri)
    client.create_registered_model(cfg.name)
    for _ in range(2):
        client.create_model_version(cfg.name, source=str(tmp_path))
    client.set_registered_model_alias(cfg.name, "champion", "1")
    client.set_registered_model_alias(cfg.name, "challenger", "2")
    verdict = {"pass": True}

    def fake_evaluate(policy, url, **kw):  # recorded analysis results, not a Prometheus stand-in
        ok = verdict["pass"]
        return [judge(c, {"success_rate": 1.0 if ok else 0.5, "p99_latency_ratio": 1.0,
                          "score_ks": 0.01}[c.name]) for c in policy.checks]

    monkeypatch.setattr(ctl, "evaluate", fake_evaluate)
    return cfg, ws, client, verdict


def run(cfg, ws, backend):
    return ctl.RolloutController(cfg, ws, backend, "http://unused", sleep=lambda s: None).run(max_seconds=30)


def aliases(client, name):
    out = {}
    for alias in ("champion", "challenger"):
        try:
            out[alias] = str(client.get_model_version_by_alias(name, alias).version)
        except Exception:  # noqa: BLE001 - no such alias
            pass
    return out


def test_good_challenger_promoted(setup):
    cfg, ws, client, _ = setup
    backend = Backend()
    state = run(cfg, ws, backend)
    assert state.phase == "promoted" and state.stable_version == "2"
    assert backend.applied == [("shadow", 0), ("canary", 10), ("canary", 50), ("promoted", 0)]
    assert aliases(client, cfg.name) == {"champion": "2"}
    assert client.get_model_version(cfg.name, "1").tags["superseded_by"] == "v2"  # still registered
    assert [s.action for s in state.steps if s.action != "hold"] == ["start", "advance", "advance", "promote",
                                                                      "promoted"]
    assert load_state(ws, cfg.name).phase == "promoted"


def test_bad_challenger_rolled_back_with_reason(setup):
    cfg, ws, client, verdict = setup
    verdict["pass"] = False
    state = run(cfg, ws, Backend())
    assert state.phase == "rolled_back" and state.weight == 0
    assert aliases(client, cfg.name) == {"champion": "1"}
    tags = client.get_model_version(cfg.name, "2").tags
    assert tags["rollout"] == "rolled_back" and "success_rate 0.5 < min 0.99" in tags["rollback_reason"]


@pytest.mark.parametrize("outcome,die_at", [("promote", 0), ("promote", 2), ("promote", 3), ("rollback", 0),
                                            ("rollback", 1)])
def test_interrupted_at_any_apply_then_rerun_finishes_consistently(setup, die_at, outcome):
    cfg, ws, client, verdict = setup
    verdict["pass"] = outcome == "promote"
    try:  # a rollback applies twice (shadow, rolled_back): later interruption points are not reached
        run(cfg, ws, Backend(die_at=die_at))
        assert outcome == "rollback" and die_at >= 2
    except Interrupted:
        pass
    saved = load_state(ws, cfg.name)
    assert saved.phase in ("shadow", "canary", "promoted", "rolled_back")
    backend = Backend()
    state = run(cfg, ws, backend)
    final = {"promote": ("promoted", {"champion": "2"}), "rollback": ("rolled_back", {"champion": "1"})}[outcome]
    assert (state.phase, aliases(client, cfg.name)) == final
    assert state.pending is None and state.weight == 0
    assert backend.applied[-1] == (state.phase, 0)  # the rerun converged the traffic too


def test_offline_score_divergence_comes_from_the_challengers_training_run(setup, tmp_path):
    """The score check allows the divergence training measured against *this* stable version."""
    cfg, ws, client, _ = setup
    exp = client.create_experiment("t")
    run = client.create_run(exp, tags={"champion_evaluated": "1"})
    client.log_metric(run.info.run_id, "champion_score_ks", 0.42)
    client.log_metric(run.info.run_id, "champion_pr_auc", 0.5)
    v3 = client.create_model_version(cfg.name, source=str(tmp_path), run_id=run.info.run_id).version
    controller = ctl.RolloutController(cfg, ws, Backend(), "http://unused", sleep=lambda s: None)
    state = load_state(ws, cfg.name)
    state.stable_version, state.challenger_version = "1", str(v3)
    assert controller.offline_score_ks(state) == pytest.approx(0.42)
    state.stable_version = "2"  # the run scored v1, not v2: nothing known about v2
    assert controller.offline_score_ks(state) == 0.0
    state.stable_version, state.challenger_version = "1", "2"  # a version without a training run
    assert controller.offline_score_ks(state) == 0.0
