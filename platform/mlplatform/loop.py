"""`make demo-loop`: the feedback loop, live, on one machine.

traffic -> nginx -> stable model server -> Prometheus (drift gauges, rules rendered from the tenant's
chart) -> alert -> Alertmanager -> retraining webhook -> `mlplatform run` on fresh data -> a new
version registered (gate: challenger) -> rollout: shadow -> canary steps -> promote or roll back.

A ranking tenant (no drift gauges: the ranker logs no drift reference) runs the quality half of
the loop instead: query traffic through the proxy, simulated users clicking the served lists
(`ranking.feedback.simulator`), the delayed-feedback quality job (click NDCG@10, IPW) every few
seconds, `mlplatform_model_quality` scraped by Prometheus and MLPlatformModelQualityDecay
evaluated against the gate minimum.

Every step is printed with a timestamp and written to runs/<stamp>/loop.json.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.markup import escape

from mlplatform.config import LoopDrift, load_tenant
from mlplatform.workspace import Workspace

# The loop runs the tenant with short windows so it completes in minutes; the tenant file keeps
# its production values. Each key is a dotted path into the tenant file.
LOOP_OVERRIDES: dict[str, Any] = {
    "drift.window_rows": 150,  # drift computed over the last 150 requests
    "drift.min_rows": 100,
    "rollout.interval_seconds": 6,
    "rollout.window": "30s",
    "rollout.shadow_seconds": 12,
    "rollout.step_weights": [25, 50],
    "rollout.max_weight": 50,
    "retraining.cooldown_minutes": 30,
}
RULE_OVERRIDES = {"drift": {"for_minutes": 0.1}}  # alerts fire after 6 s above threshold, not 10 min
# ranking tenants: simulated clicks + the quality job every FEEDBACK_SECONDS, for QUALITY_SECONDS at most
FEEDBACK_SECONDS = 10.0
QUALITY_SECONDS = 120.0
QUALITY_MIN_LISTS = 300  # result lists with feedback before the quality figure is reported


def _set(raw: dict, dotted: str, value: Any) -> None:
    node = raw
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value


def loop_tenant_file(tenant_file: Path, out_dir: Path, data_args: dict[str, Any],
                     drift: LoopDrift | None = None) -> Path:
    """A copy of the tenant file with the loop's short windows, and fresh data for retraining
    (the generator's seed moves on: the retrained model sees data the champion never saw).
    `drift` (the tenant's loop.drift): the fresh data lives through the same shift the loop injects
    into the traffic, as the world a drift alert reports would, through the generator arguments
    it names (loop.drift.generator; none named: no shift)."""
    raw = yaml.safe_load(tenant_file.read_text())
    for dotted, value in LOOP_OVERRIDES.items():
        _set(raw, dotted, value)
    args = raw["data"].setdefault("generator_args", {})
    args.update(data_args)
    if "seed" in args:
        args["seed"] = int(args["seed"]) + 1
    if drift is not None and drift.generator is not None:
        args.update(shift_args(drift, args))
    path = out_dir / "tenants" / raw["name"] / "tenant.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def shift_args(drift: LoopDrift, generator_args: dict[str, Any]) -> dict[str, Any]:
    """The generator arguments that shift the data as the loop shifts the traffic: `factor`, from
    `from_fraction` of the generated days on (enough shifted days to train and to validate on)."""
    names = drift.generator
    return {names.factor: drift.factor, names.from_day: int(int(generator_args[names.days]) * drift.from_fraction)}


def injected_drift(cfg) -> LoopDrift:
    """The drift the loop injects into the traffic: the tenant file declares it (loop.drift)."""
    if cfg.loop.drift is None:
        raise RuntimeError(f"tenant {cfg.name!r} declares no loop.drift: the loop does not know which request field "
                           "to shift, by how much (see examples/fraud/tenant.yaml)")
    return cfg.loop.drift


def drifted(row: dict[str, Any], drift: LoopDrift) -> dict[str, Any]:
    """A request row with the loop's drift: `column` x `factor`, to 2 decimals, capped at `max`."""
    if drift.column in row:
        value = round(float(row[drift.column]) * drift.factor, 2)
        row[drift.column] = value if drift.max is None else min(drift.max, value)
    return row


class Journal:
    """Timestamped steps, printed as they happen and kept for loop.json."""

    def __init__(self, console: Console):
        self.console, self.t0, self.steps = console, time.monotonic(), []

    def __call__(self, event: str, **details: Any) -> None:
        at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        elapsed = time.monotonic() - self.t0
        self.steps.append({"at": at, "elapsed_s": round(elapsed, 1), "event": event, **details})
        extra = " ".join(f"{k}={v}" for k, v in details.items() if v is not None)
        self.console.print(f"[dim]{at}[/] [bold]+{elapsed:5.0f}s[/] {escape(f'{event} {extra}')}")


class Traffic(threading.Thread):
    """Requests through the proxy at a steady rate; while `drift` is set (the tenant's loop.drift),
    each request carries it."""

    def __init__(self, url: str, path: str, rows: list[dict], rate: float = 20.0):
        super().__init__(daemon=True)
        self.url, self.path, self.rows, self.rate = url, path, rows, rate
        self.drift: LoopDrift | None = None
        self.stop_event = threading.Event()
        self.sent = self.errors = 0

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            i = 0
            while not self.stop_event.is_set():
                row = dict(self.rows[i % len(self.rows)])
                drift = self.drift
                if drift is not None:
                    row = drifted(row, drift)
                with contextlib.suppress(httpx.HTTPError):
                    resp = client.post(self.path, json={"instances": [row]})
                    self.errors += resp.status_code >= 400
                self.sent += 1
                i += 1
                time.sleep(1.0 / self.rate)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)


def traffic_rows(cfg, ws: Workspace, n: int = 400, seed: int = 0) -> list[dict]:
    """Request rows sampled across the validation window (so hours and weekdays look like the
    data the drift reference was built from), keeping entities the online store knows."""
    import numpy as np
    import pandas as pd

    from mlplatform.data.ingest import load_raw
    from mlplatform.features.store import OnlineFeatures
    from mlplatform.serving.inputs import RequestSchema
    from mlplatform.serving.smoke import _json_value

    names = [s.name for s in RequestSchema(cfg).specs]
    raw = load_raw(cfg, ws)
    ts = pd.to_datetime(raw[cfg.data.timestamp], utc=True)
    recent = raw[ts >= ts.max() - pd.Timedelta(days=cfg.model.split.validation_days)]
    sample = recent[names].sample(n=min(2 * n, len(recent)), random_state=seed).reset_index(drop=True)
    rows = [{k: _json_value(v) for k, v in r.items()} for r in sample.to_dict("records")]
    keys = cfg.features.join_keys
    feats = OnlineFeatures(cfg, ws).fetch([{k: r[k] for k in keys} for r in rows])
    known = np.ones(len(rows), dtype=bool)
    for view in cfg.features.feature_views:
        known &= ~feats[[f.name for f in view.features]].isna().all(axis=1).to_numpy()
    return [r for r, ok in zip(rows, known) if ok][:n]


def ranking_traffic_rows(cfg, ws: Workspace, n: int = 100, seed: int = 0) -> list[dict]:
    """Queries for a ranking tenant's traffic: `n` distinct query texts of its data (the traffic
    repeats them, as real search traffic repeats its head queries, so clicks accumulate per query)."""
    import numpy as np

    from mlplatform.data.ingest import load_raw

    texts = load_raw(cfg, ws)[cfg.ranking.query_text].dropna().astype(str).unique()
    rng = np.random.default_rng(seed)
    return [{"query": str(q)} for q in rng.permutation(texts)[:n]]


def ranking_quality_round(cfg, ws: Workspace, seed: int) -> dict[str, Any]:
    """One round of the ranking quality loop: the tenant's simulated users give feedback on the
    lists logged since the last round, then the quality job runs (writes quality/latest.json)."""
    from mlplatform.plugins import resolve
    from mlplatform.tasks import task_for

    simulator = cfg.ranking.feedback.simulator
    if not simulator:
        raise RuntimeError(f"tenant {cfg.name!r} names no ranking.feedback.simulator: in embedded mode nobody "
                           f"clicks the served lists, so there is no feedback to measure quality on")
    feedback = resolve(simulator)(cfg, ws, role="stable", seed=seed)
    return {"feedback": feedback, "quality": task_for(cfg).quality_job(cfg, ws)}


def _ranking_quality(cfg, ws: Workspace, stack, traffic: "Traffic", log: "Journal", result: dict[str, Any]) -> None:
    primary = cfg.metrics.primary
    minimum = cfg.metrics.gates.minimum.get(primary)
    deadline = time.monotonic() + QUALITY_SECONDS
    seen = None
    rnd = 0
    while True:
        time.sleep(FEEDBACK_SECONDS)
        rnd += 1
        out = ranking_quality_round(cfg, ws, seed=rnd)
        rec = out["quality"]
        exported = stack.query(f'max(mlplatform_model_quality{{tenant="{cfg.name}", metric="{primary}"}})')
        log("feedback and quality", lists_with_feedback=rec.get("labelled"), clicks=out["feedback"].get("clicks"),
            exported=None if exported is None else round(exported, 3))
        seen = exported if exported is not None else seen
        if (seen is not None and rec.get("labelled", 0) >= QUALITY_MIN_LISTS) or time.monotonic() > deadline:
            break
    if seen is None:
        raise RuntimeError(f"Prometheus never saw mlplatform_model_quality{{metric={primary!r}}} for {cfg.name}; "
                           f"see {ws.tenant(cfg.name) / 'quality' / 'latest.json'}")
    decay = [a for a in stack.alerts() if a["labels"].get("alertname") == "MLPlatformModelQualityDecay"]
    result["quality"] = {"metric": primary, "exported": seen, "gate_minimum": minimum,
                         "versions": rec["versions"], "lists": rec.get("predictions"),
                         "lists_with_feedback": rec.get("labelled"),
                         "decay_alert": decay[0]["state"] if decay else None}
    below = minimum is not None and seen < minimum
    result["decision"] = {"outcome": "quality below the gate" if below else "quality measured",
                          "reason": f"{primary} {seen:.3f} from clicks vs gate minimum {minimum}; a ranking tenant "
                                    f"has no drift detector: MLPlatformModelQualityDecay (for 30m) starts retraining"}
    log("online quality", metric=primary, value=round(seen, 3), gate_minimum=minimum,
        decay_alert=result["quality"]["decay_alert"])
    result["traffic"] = {"requests": traffic.sent, "errors": traffic.errors}


def _wait(what: str, check, timeout: float, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f}s")


def run_loop(tenant_file: Path, ws: Workspace | None, runs: Path, data_args: dict[str, Any],
             console: Console | None = None, timeout: float = 900) -> dict[str, Any]:
    """One pass of the loop. `ws` None: a new workspace in the run folder, so every run tells the same
    story from a champion of the world before the shift (a workspace where an earlier loop already
    retrained on shifted data would see "drift" from the first request)."""
    from mlplatform.demo import new_run_dir, run_pipeline
    from mlplatform.monitoring.rules import render_rules
    from mlplatform.monitoring.stack import MonitoringStack
    from mlplatform.monitoring.webhook import start_webhook
    from mlplatform.processes import free_port
    from mlplatform.registry.mlflow_registry import champion_version, connect
    from mlplatform.rollout.backends import EmbeddedNginxBackend
    from mlplatform.rollout.controller import run_rollout
    from mlplatform.rollout.state import rollout_dir
    from mlplatform.serving.smoke import v1_path
    from mlplatform.tasks import task_for

    console = console or Console()
    run_dir = new_run_dir(runs)
    ws = ws or Workspace(run_dir / "home")
    log = Journal(console)
    drift = load_tenant(tenant_file).loop.drift
    tenant_file = loop_tenant_file(tenant_file, run_dir, data_args, drift)
    cfg = load_tenant(tenant_file)
    result: dict[str, Any] = {"tenant": cfg.name, "run_dir": str(run_dir), "steps": log.steps}

    if champion_version(connect(ws), cfg.name) is None:
        log("no champion yet: training the first model", run_id="loop-base")
        base = yaml.safe_load(tenant_file.read_text())
        args = base["data"]["generator_args"]
        args["seed"] = args.get("seed", 8) - 1
        if drift is not None and drift.generator is not None:  # the champion learnt the world before the shift
            for key in (drift.generator.factor, drift.generator.from_day):
                args.pop(key, None)
        base_file = run_dir / "tenants" / "base.yaml"
        base_file.write_text(yaml.safe_dump(base, sort_keys=False))
        run_pipeline(console, base_file, ws, "loop-base", run_dir)
    champion = str(champion_version(connect(ws), cfg.name).version)
    log("champion in service", version=champion, workspace=str(ws.home))

    backend = EmbeddedNginxBackend(cfg, ws, free_port())
    stack = None
    webhook = start_webhook(ws, port=free_port(), tenant_files={cfg.name: tenant_file})
    traffic = None
    try:
        url = backend.up()
        log("proxy and stable model server up", proxy=url)
        rules = render_rules(tenant_file, run_dir / "monitoring", overrides=RULE_OVERRIDES)
        stack = MonitoringStack(run_dir / "monitoring", rule_files=[rules], webhook_url=f"{webhook.url}/alerts",
                                tenants=[cfg])
        stack.set_targets({"webhook": [webhook.url.split("://", 1)[1]]})
        # Prometheus discovers the model servers the rollout starts from the backend's targets file
        serving_targets = stack.folder / "targets" / "serving.json"
        serving_targets.unlink(missing_ok=True)
        serving_targets.symlink_to(rollout_dir(ws, cfg.name) / "targets.json")
        stack.start()
        log("Prometheus and Alertmanager up", prometheus=stack.prometheus_url, alertmanager=stack.alertmanager_url,
            rules=str(rules))

        watch_drift = task_for(cfg).drift_reference
        traffic = Traffic(url, v1_path(cfg), traffic_rows(cfg, ws) if watch_drift else ranking_traffic_rows(cfg, ws))
        traffic.start()
        log("traffic started", rate_per_s=traffic.rate)
        if not watch_drift:  # no drift gauges to alert on: measure online quality from (simulated) clicks
            _ranking_quality(cfg, ws, stack, traffic, log, result)
            return result
        drift = injected_drift(cfg)
        retraining_alerts = set(cfg.retraining.alerts)
        time.sleep(30)  # a baseline window of normal traffic: nothing may fire yet
        early = [a["labels"].get("alertname") for a in stack.alerts() if a["labels"].get("alertname") in retraining_alerts]
        if early:
            raise RuntimeError(f"alerts {early} are pending or firing before any drift was injected: the traffic "
                               f"(sampled from {ws.home}'s current data) does not look like the champion's training "
                               "data; an earlier loop may have retrained there on shifted data: run without --home")
        log("baseline: no drift alert", requests=traffic.sent)
        traffic.drift = drift
        log("drift injected", change=f"{drift.column} x{drift.factor:g}")

        fired = _wait("a drift alert to fire",
                      lambda: [a for a in stack.alerts("firing") if a["labels"].get("alertname") in retraining_alerts],
                      timeout=300)
        alert = fired[0]
        result["alert"] = {"name": alert["labels"]["alertname"], "fired_at": alert.get("activeAt"),
                           "labels": alert["labels"]}
        log("alert firing", alert=alert["labels"]["alertname"], feature=alert["labels"].get("feature"),
            value=alert.get("value"))

        retrains = _wait("the webhook to start retraining",
                         lambda: httpx.get(f"{webhook.url}/retrains", timeout=5).json()["retrains"], timeout=120)
        run = retrains[0]
        result["retraining"] = {"run_id": run["run_id"], "started_at": run.get("started_at")}
        log("retraining started by the webhook", run_id=run["run_id"])
        register = ws.step_file(cfg.name, run["run_id"], "register")

        def retrain_finished():
            state = {r["run_id"]: r for r in httpx.get(f"{webhook.url}/retrains", timeout=5).json()["retrains"]}
            return register.exists() or not state[run["run_id"]].get("active", True)

        _wait("the retraining run to finish", retrain_finished, timeout=timeout, every=5)
        if not register.exists():
            raise RuntimeError(f"retraining run {run['run_id']} ended without registering a model; "
                               f"see {ws.home / 'monitoring' / 'webhook'}")
        reg = json.loads(register.read_text())
        result["retraining"] |= {"version": reg["version"], "aliases": reg["aliases"], "gate": reg["decision"]}
        log("new version registered", version=reg["version"], aliases=",".join(reg["aliases"]) or "none",
            gate=reg["decision"][:80])

        # the callers' traffic is back to normal while the new model is rolled out
        traffic.drift = None
        traffic.rows = traffic_rows(cfg, ws)
        if "challenger" not in reg["aliases"]:
            result["decision"] = {"outcome": "rejected by the promotion gate", "reason": reg["decision"]}
            log("no rollout: the new version did not pass the gate")
        else:
            def on_step(state, step):
                log(f"rollout {step['action']}", phase=state.phase, weight=state.weight, reason=step.get("reason"))

            final = run_rollout(cfg, ws, backend, stack.prometheus_url, on_step=on_step, metrics_port=free_port(),
                                max_seconds=timeout)
            result["rollout"] = final.to_dict()["steps"]
            result["decision"] = {"outcome": final.phase, "reason": final.reason,
                                  "champion": str(champion_version(connect(ws), cfg.name).version)}
            log("rollout finished", outcome=final.phase, champion=result["decision"]["champion"])
        result["traffic"] = {"requests": traffic.sent, "errors": traffic.errors}
    finally:
        if traffic is not None:
            traffic.stop()
        with contextlib.suppress(Exception):
            backend.down()
        if stack is not None:
            with contextlib.suppress(Exception):
                stack.stop()
        webhook.stop()
        result["seconds"] = round(time.monotonic() - log.t0, 1)
        (run_dir / "loop.json").write_text(json.dumps(result, indent=2, default=str))
        console.print(f"loop: {escape(str(runs / 'latest' / 'loop.json'))}")
    return result
