"""`mlplatform rollout TENANT`: shadow -> canary steps -> promote or roll back.

Each analysis runs the policy's PromQL checks (analysis.py) for the challenger's role, `decide`s,
persists the new state, then acts through the backend (backends.py). Registry effects:
    promote    alias `champion` -> the challenger version (the old champion stays registered,
               tagged `superseded_by`); alias `challenger` removed; tag `rollout=promoted`
    rollback   alias `challenger` removed; tags `rollout=rolled_back`, `rollback_reason`

Interruptions: the state is saved before each action, with `pending` set while a promotion or
rollback is applied; a rerun re-applies the saved state (idempotent) and continues, or finishes
the pending decision.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable

from mlflow.exceptions import MlflowException

from mlplatform.config import TenantConfig
from mlplatform.identity.refusal import is_refusal, refused
from mlplatform.registry import champion_eval
from mlplatform.registry.mlflow_registry import CHALLENGER, CHAMPION, connect
from mlplatform.rollout.analysis import CheckResult, decide, evaluate
from mlplatform.rollout.backends import Backend
from mlplatform.rollout.shadow import ShadowExporter, read_agreement
from mlplatform.rollout.state import FileStateStore, RolloutState, StateStore, now_iso
from mlplatform.workspace import Workspace

StepCallback = Callable[[RolloutState, dict], None]  # (state, the step just recorded as a dict)


def _alias_version(client, tenant: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(tenant, alias).version)
    except MlflowException as err:
        if is_refusal(err):  # not "no alias": the caller may not read this model
            raise
        return None


def promote_version(ws: Workspace, tenant: str, version: str) -> None:
    """Idempotent: champion -> version, challenger alias gone, tags set. A refusal: AccessDenied."""
    with refused("move the aliases of", f"registered model {tenant!r}"):
        _promote(ws, tenant, version)


def _promote(ws: Workspace, tenant: str, version: str) -> None:
    client = connect(ws)
    old = _alias_version(client, tenant, CHAMPION)
    if old != version:
        client.set_registered_model_alias(tenant, CHAMPION, version)
        if old is not None:
            client.set_model_version_tag(tenant, old, "superseded_by", f"v{version}")
    if _alias_version(client, tenant, CHALLENGER) == version:
        client.delete_registered_model_alias(tenant, CHALLENGER)
    client.set_model_version_tag(tenant, version, "rollout", "promoted")
    client.set_model_version_tag(tenant, version, "promoted_at", now_iso())


def reject_version(ws: Workspace, tenant: str, version: str, reason: str) -> None:
    """Idempotent: challenger alias removed (when it still names version), reason tagged."""
    with refused("move the aliases of", f"registered model {tenant!r}"):
        _reject(ws, tenant, version, reason)


def _reject(ws: Workspace, tenant: str, version: str, reason: str) -> None:
    client = connect(ws)
    if _alias_version(client, tenant, CHALLENGER) == version:
        client.delete_registered_model_alias(tenant, CHALLENGER)
    client.set_model_version_tag(tenant, version, "rollout", "rolled_back")
    client.set_model_version_tag(tenant, version, "rollback_reason", reason[:4000])


def _seconds_since(iso: str | None) -> float:
    if not iso:
        return 0.0
    return (datetime.now(timezone.utc) - datetime.fromisoformat(iso)).total_seconds()


class RolloutController:
    """One tenant's rollout. `run()` drives it to promoted / rolled_back (or `max_seconds`)."""

    def __init__(self, cfg: TenantConfig, ws: Workspace, backend: Backend, prometheus_url: str, *,
                 on_step: StepCallback | None = None, exporter: ShadowExporter | None = None,
                 sleep: Callable[[float], None] = time.sleep, store: StateStore | None = None):
        self.cfg, self.ws, self.backend = cfg, ws, backend
        self.store = store or FileStateStore(ws)
        self.policy = cfg.rollout
        self.prometheus_url = prometheus_url
        self.on_step, self.exporter, self.sleep = on_step, exporter, sleep
        self.tenant = cfg.name
        self._offline_ks: dict[tuple, float] = {}

    # --- persistence and effects ----------------------------------------------------------------

    def _commit(self, state: RolloutState, action: str, reason: str, checks: list[CheckResult] = ()) -> None:
        step = state.record(action, reason, [c.to_dict() for c in checks])
        self.store.save(state)
        if self.on_step:
            self.on_step(state, step.__dict__)

    def _finish(self, state: RolloutState) -> RolloutState:
        """Apply a pending promote / rollback (idempotent), then mark the final phase."""
        if state.pending == "promote":
            promote_version(self.ws, self.tenant, state.challenger_version)
            state.phase, state.weight = "promoted", 0
            state.stable_version = state.challenger_version
            self.store.save(state)  # still pending until the backend has swapped stable
            self.backend.apply(state)
            state.pending = None
            self._commit(state, "promoted", state.reason)
        elif state.pending == "rollback":
            state.phase, state.weight = "rolled_back", 0
            self.store.save(state)  # first take traffic away (the registry can wait)
            self.backend.apply(state)
            reject_version(self.ws, self.tenant, state.challenger_version, state.reason)
            state.pending = None
            self._commit(state, "rolled_back", state.reason)
        return state

    # --- the loop -------------------------------------------------------------------------------

    def begin(self) -> RolloutState:
        """Resume a saved rollout, finish a pending decision, or start one for the challenger."""
        state = self.store.load(self.tenant)
        if state.pending:
            return self._finish(state)
        if state.active:
            self.backend.apply(state)  # converge after an interruption (servers, proxy / patches)
            self._commit(state, "resume", f"resumed in {state.phase} at {state.weight}%")
            return state
        client = connect(self.ws)
        challenger = _alias_version(client, self.tenant, CHALLENGER)
        if challenger is None:
            if state.phase != "idle":
                self.backend.apply(state)  # idempotent: converge whatever an earlier run left
            state.reason = "no challenger version: nothing to roll out"
            return state
        first = "shadow" if self.policy.shadow_seconds > 0 else "canary"
        state = RolloutState(self.tenant, phase=first,
                             weight=0 if first == "shadow" else self.policy.step_weights[0],
                             stable_version=_alias_version(client, self.tenant, CHAMPION),
                             challenger_version=challenger, phase_started_at=now_iso(), started_at=now_iso())
        self.store.save(state)  # saved before acting: an interruption now resumes into apply()
        self.backend.apply(state)
        self._commit(state, "start", f"v{challenger} vs champion v{state.stable_version}: {first}")
        return state

    def offline_score_ks(self, state: RolloutState) -> float:
        """The challenger's score divergence from the stable version on its validation rows, from
        its training run (champion_eval.py); 0 when that run did not score this stable version."""
        key = (state.stable_version, state.challenger_version)
        if key not in self._offline_ks:
            value = 0.0
            if state.stable_version and state.challenger_version:
                client = connect(self.ws)
                run_id = client.get_model_version(self.tenant, state.challenger_version).run_id
                if run_id:  # a version registered from a file has no training run
                    run = client.get_run(run_id)
                    same_rows = champion_eval.from_run(run.data.metrics, run.data.tags, state.stable_version) or {}
                    value = float(same_rows.get(champion_eval.SCORE_KS, 0.0))
            self._offline_ks[key] = value
        return self._offline_ks[key]

    def analyse(self, state: RolloutState) -> RolloutState:
        """One analysis and its consequence."""
        role = state.phase
        if role == "shadow" and self.exporter is not None:
            metrics = read_agreement(self.ws, self.tenant, since=state.phase_started_at)
            if metrics:
                self.exporter.update(metrics)
        results = evaluate(self.policy, self.prometheus_url, tenant=self.tenant, role=role,
                           stable_version=state.stable_version, challenger_version=state.challenger_version,
                           offline_score_ks=self.offline_score_ks(state))
        d = decide(self.policy, state.phase, state.weight, state.failed_checks, results,
                   _seconds_since(state.phase_started_at))
        state.failed_checks, state.reason = d.failed_checks, d.reason
        if d.action == "hold":
            self._commit(state, "hold", d.reason, results)
        elif d.action == "advance":
            state.phase, state.weight, state.phase_started_at = "canary", d.weight, (
                state.phase_started_at if state.phase == "canary" else now_iso())
            self.store.save(state)
            self.backend.apply(state)
            self._commit(state, "advance", d.reason, results)
        else:
            state.pending = d.action  # "promote" | "rollback"
            self._commit(state, d.action, d.reason, results)
            state = self._finish(state)
        return state

    def run(self, max_seconds: float | None = None) -> RolloutState:
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        state = self.begin()
        while state.active:
            if deadline is not None and time.monotonic() >= deadline:
                self._commit(state, "paused", f"stopped after {max_seconds:g}s; rerun to resume")
                break
            self.sleep(self.policy.interval_seconds)
            state = self.analyse(state)
        return state


def run_rollout(cfg: TenantConfig, ws: Workspace, backend: Backend, prometheus_url: str, *,
                on_step: StepCallback | None = None, metrics_port: int | None = None,
                max_seconds: float | None = None, store: StateStore | None = None) -> RolloutState:
    """Run (or resume) a tenant's rollout to its end; `on_step(state, step)` after every step.
    `metrics_port`: serve mlplatform_shadow_agreement on 127.0.0.1:<port>/metrics meanwhile.
    `store`: where the state lives (default: the workspace's state file)."""
    exporter = ShadowExporter(cfg.name, metrics_port) if metrics_port is not None else None
    try:
        return RolloutController(cfg, ws, backend, prometheus_url, on_step=on_step, exporter=exporter,
                                 store=store).run(max_seconds)
    finally:
        if exporter is not None:
            exporter.close()


def watch_rollouts(cfg: TenantConfig, ws: Workspace, backend: Backend, prometheus_url: str, *,
                   poll_seconds: float, store: StateStore, on_step: StepCallback | None = None,
                   rounds: int | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
    """The cluster's rollout controller (charts/tenant rollout-controller.yaml): resume the stored
    rollout, run it to its end, then look for the next challenger every `poll_seconds`. Whoever
    registered the challenger (a pipeline run, the webhook's retrain, a person) needs no hook into
    this process; a restarted pod resumes from `store`. `rounds`: stop after that many (tests)."""
    n = 0
    while rounds is None or n < rounds:
        run_rollout(cfg, ws, backend, prometheus_url, on_step=on_step, store=store)
        n += 1
        if rounds is None or n < rounds:
            sleep(poll_seconds)
