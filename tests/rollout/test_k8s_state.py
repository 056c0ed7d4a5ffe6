"""The cluster controller's rollout state in a ConfigMap survives a pod restart.

NO CLUSTER: the real Kubernetes client (V1ConfigMap models, ApiException) talks to
tests/rollout/k8s_wire.py, which answers ConfigMap get and replace at the HTTP pool as the API
server would for these two calls (a new resourceVersion per write, 409 on a stale one, 404 when
missing). A "restart" is a new client and a new store: nothing survives but the ConfigMap.
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from mlplatform.rollout import controller as ctl
from mlplatform.rollout.k8s_state import STATE_KEY, ConfigMapStateStore, RolloutStateError
from mlplatform.rollout.state import RolloutState
from tests.rollout.k8s_wire import Wire
from tests.rollout.test_controller_resume import Backend, Interrupted, aliases, setup  # noqa: F401 (fixture)

HELM_METADATA = {"labels": {"app.kubernetes.io/managed-by": "Helm"},
                 "annotations": {"meta.helm.sh/release-name": "fraud", "helm.sh/resource-policy": "keep"}}


def chart_configmap(namespace="fraud", name="fraud-rollout-state") -> dict:
    """What charts/tenant creates: no data."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, **json.loads(json.dumps(HELM_METADATA))}}


def new_store(wire: Wire, namespace="fraud", name="fraud-rollout-state") -> ConfigMapStateStore:
    return ConfigMapStateStore(namespace, name, api=client.CoreV1Api(wire.api_client()))


@pytest.fixture
def wire() -> Wire:
    w = Wire()
    w.put_configmap(chart_configmap())
    return w


def test_an_empty_configmap_is_idle_and_a_saved_state_survives_a_restart(wire):
    store = new_store(wire)
    state = store.load("fraud")
    assert (state.phase, state.weight, state.steps) == ("idle", 0, [])
    state.phase, state.weight, state.pending = "canary", 25, None
    state.stable_version, state.challenger_version = "3", "4"
    state.record("advance", "checks passed at 10%: canary at 25%", [{"name": "success_rate", "value": 1.0}])
    store.save(state)

    restarted = new_store(wire).load("fraud")  # a new pod: a new client, the same ConfigMap
    assert restarted.to_dict() == state.to_dict()
    stored = wire.configmaps[("fraud", "fraud-rollout-state")]
    assert stored["metadata"]["labels"] == HELM_METADATA["labels"]  # a replace keeps Helm's ownership
    assert stored["metadata"]["annotations"] == HELM_METADATA["annotations"]
    assert json.loads(stored["data"][STATE_KEY])["phase"] == "canary"


def test_successive_saves_follow_their_own_resource_version(wire):
    store = new_store(wire)
    state = store.load("fraud")
    for weight in (10, 25, 50):
        state.phase, state.weight = "canary", weight
        store.save(state)
    assert new_store(wire).load("fraud").weight == 50


def test_a_write_by_someone_else_is_not_overwritten(wire):
    first, second = new_store(wire), new_store(wire)
    state = first.load("fraud")
    second.save(second.load("fraud"))  # another writer changes the ConfigMap meanwhile
    state.phase = "shadow"
    with pytest.raises(RolloutStateError, match="changed since this controller read it"):
        first.save(state)


def test_a_missing_configmap_says_how_to_create_it():
    with pytest.raises(RolloutStateError, match="does not exist: install charts/tenant with cluster.rollout.enabled"):
        new_store(Wire()).load("fraud")


@pytest.mark.parametrize("data,message", [("{not json", "is not JSON"),
                                          (json.dumps(RolloutState("search").to_dict()), "state of tenant 'search'")])
def test_unreadable_or_foreign_state_is_an_error_not_a_fresh_start(wire, data, message):
    cm = chart_configmap()
    cm["data"] = {STATE_KEY: data}
    wire.put_configmap(cm)
    with pytest.raises(RolloutStateError, match=message):
        new_store(wire).load("fraud")


@pytest.mark.parametrize("outcome,die_at", [("promote", 2), ("rollback", 1)])
def test_controller_killed_mid_rollout_resumes_from_the_configmap(setup, outcome, die_at):
    """The controller (real MLflow registry, recorded analyses: test_controller_resume.py) with the
    ConfigMap store: killed at a backend action, a new pod's controller finishes the rollout."""
    cfg, ws, mlflow_client, verdict = setup
    verdict["pass"] = outcome == "promote"
    wire = Wire()
    wire.put_configmap(chart_configmap(cfg.name, f"{cfg.name}-rollout-state"))

    def run(backend):
        store = new_store(wire, cfg.name, f"{cfg.name}-rollout-state")
        return ctl.RolloutController(cfg, ws, backend, "http://unused", sleep=lambda s: None,
                                     store=store).run(max_seconds=30)

    with pytest.raises(Interrupted):
        run(Backend(die_at=die_at))
    saved = new_store(wire, cfg.name, f"{cfg.name}-rollout-state").load(cfg.name)
    assert saved.phase in ("shadow", "canary") or saved.pending  # mid-rollout, in the ConfigMap
    assert not (ws.home / "tenants" / cfg.name / "rollout" / "state.json").exists()  # no local file

    backend = Backend()
    state = run(backend)
    final = {"promote": ("promoted", {"champion": "2"}), "rollback": ("rolled_back", {"champion": "1"})}[outcome]
    assert (state.phase, aliases(mlflow_client, cfg.name)) == final
    assert state.pending is None and backend.applied[-1] == (state.phase, 0)
    assert new_store(wire, cfg.name, f"{cfg.name}-rollout-state").load(cfg.name).phase == state.phase


def test_the_controller_loop_rolls_out_each_new_challenger(setup, tmp_path):
    """watch_rollouts (the pod's loop): v2 promoted; while it sleeps, a run registers v3 as the
    challenger; the next round rolls v3 out from the same ConfigMap."""
    cfg, ws, mlflow_client, _ = setup
    wire = Wire()
    wire.put_configmap(chart_configmap(cfg.name, f"{cfg.name}-rollout-state"))
    steps = []

    def register_next(_seconds):
        version = mlflow_client.create_model_version(cfg.name, source=str(tmp_path)).version
        mlflow_client.set_registered_model_alias(cfg.name, "challenger", version)

    ctl.watch_rollouts(cfg, ws, Backend(), "http://unused", poll_seconds=1, rounds=2, sleep=register_next,
                       store=new_store(wire, cfg.name, f"{cfg.name}-rollout-state"),
                       on_step=lambda state, step: steps.append((step["action"], state.challenger_version)))
    assert ("promoted", "2") in steps and ("promoted", "3") in steps
    assert aliases(mlflow_client, cfg.name) == {"champion": "3"}
