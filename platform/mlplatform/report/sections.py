"""The stages every task shares: requirements (with capacity), data, features, monitoring and the
loop, the experiment. Each figure is read from a record or computed from recorded figures."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlplatform.report import figures, stats
from mlplatform.report.model import Section
from mlplatform.report.plugin import Context, Experiment
from mlplatform.report.records import shown

EXPERIMENT_SPLIT = 0.5  # the share of traffic in each arm of the A/B test sized below


def bench_source(ctx: Context, section: str) -> str | None:
    """'bench run <date> on <CPU> (<file>: <section>)', or None when the bench has no such section."""
    bench = ctx.rec.bench or {}
    data = bench.get(section)
    if not isinstance(data, dict) or data.get("status", "ok") != "ok":
        return None
    # the machine the section ran on (a section re-measured alone ran on another run's machine)
    machine = (bench.get("section_machines") or {}).get(section) or bench.get("machine", {})
    date = (bench.get("section_dates") or {}).get(section) or bench.get("date", "?")
    return (f"bench run {date} on {machine.get('cpu', '?')} ({machine.get('nproc', '?')} cores), "
            f"{ctx.rec.bench_path}: {section}")


def _chosen(chosen: Any) -> str:
    """What a baseline chose on the training rows, in a table cell: `key: value` pairs, numbers rounded."""
    if isinstance(chosen, dict):
        return "; ".join(f"{k}: {_chosen(v)}" for k, v in chosen.items())
    if isinstance(chosen, (list, tuple)):
        return ", ".join(_chosen(v) for v in chosen)
    if isinstance(chosen, float):
        return f"{chosen:.4g}"
    return str(chosen)


def baseline_details(ctx: Context, s: Section) -> None:
    """Each baseline as training recorded it (baselines.json): what it is, what it chose on the
    training rows (the rules' thresholds, a fusion's weights), or why it did not run."""
    records = (ctx.rec.artifacts.get("baselines.json") or {}).get("baselines") or []
    if records:
        s.table(["baseline", "what it is", "chosen on the training rows, or why it did not run"],
                [[r["name"], r.get("description", ""),
                  _chosen(r.get("chosen", "-")) if r.get("status") == "ok" else f"{r.get('status')}: {r.get('reason', '')}"]
                 for r in records], caption="baselines.json, logged with the model's MLflow run")


# what a scorer without skill gets, per metric: the positive rate for PR-AUC (the precision of a random
# ranking), 0.5 for ROC-AUC
def _chance(ctx: Context, metric: str) -> float | None:
    if metric == "pr_auc":
        return ctx.rec.metrics.get("positive_rate")
    return 0.5 if metric == "roc_auc" else None


def argue_gates(ctx: Context, s: Section) -> None:
    """The promotion gate (metrics.gates): each minimum beside what this run measured for the model,
    its baselines and chance, so the minimum's meaning is read off numbers: which of them it
    would turn away."""
    gates = ctx.rec.cfg.metrics.gates
    if not gates.minimum:
        s.say("Gate: no minimum (metrics.gates.minimum); only the regression limits vs. the champion apply.")
        return
    rows = []
    for metric, minimum in gates.minimum.items():
        measured = [("model", ctx.rec.metrics.get(metric))]
        measured += [(f"baseline: {n}", m.get(metric)) for n, m in sorted(ctx.rec.baselines().items())]
        measured += [("chance", _chance(ctx, metric))]
        known = [(n, v) for n, v in measured if v is not None]
        rows.append([metric, f"≥ {minimum:g}", "; ".join(f"{n} {v:.4f}" for n, v in known),
                     ", ".join(n for n, v in known if v < minimum) or "none"])
    s.table(["gate metric", "minimum (tenant.yaml)", "this run (same validation rows)", "the minimum turns away"],
            rows, caption="why these minimums: what they admit and refuse among the alternatives measured")
    s.say("Regression allowed vs. the champion on the same rows: "
          + (", ".join(f"{k} {v:g}" for k, v in gates.max_regression.items()) or "none")
          + ". A minimum that turns away no baseline admits a model no better than the simplest alternative; "
          "one above the model itself would have refused this run.")


def stream_bench(ctx: Context) -> dict[str, Any]:
    """The bench's stream section when it measured this tenant (it runs on the fraud workspace), else {}."""
    stream = (ctx.rec.bench or {}).get("stream") or {}
    return stream if (stream.get("online_store_memory") or {}).get("tenant") == ctx.rec.cfg.name else {}


def requirements(ctx: Context, task) -> Section:
    cfg = ctx.rec.cfg
    s = Section(key="requirements", title="Requirements")
    costs = cfg.metrics.costs
    t = cfg.serving.traffic
    rows = [["p99 latency SLO", f"{cfg.serving.slo.p99_latency_ms:g} ms"],
            ["max error rate", f"{cfg.serving.slo.max_error_rate:.2%}"],
            ["expected traffic", f"{t.requests_per_second:g} req/s peak, {t.per_day:,.0f} req/day"],
            ["label delay", f"{cfg.data.label_delay_days:g} days"]]
    if costs:
        rows += [["cost of a missed positive", f"{costs.false_negative:g}"],
                 ["cost of a false alarm", f"{costs.false_positive:g}"]]
    s.table(["requirement (tenant.yaml)", "value"], rows)
    cpu = task.cpu_ms_per_request(ctx)
    if cpu is None:
        s.say("Capacity: no record measures this tenant's server CPU per request (run `make bench`), "
              "so no capacity estimate is made.")
        return s
    cpu_ms, source = cpu
    per_replica = min(1.0, stats.cpu_quantity(cfg.cluster.resources.limits.cpu))
    s.say(f"Capacity, from {cpu_ms:.3f} CPU ms per request ({source}), at {stats.UTILISATION:.0%} utilisation "
          f"and {per_replica:g} core per replica (one server process uses one core; the tenant's CPU limit is "
          f"{cfg.cluster.resources.limits.cpu}):")
    rates = sorted({1000.0, 10000.0, float(t.requests_per_second)})
    s.table(["req/s", "cores", "replicas"],
            [[f"{c['rps']:g}", f"{c['cores']:g}", c["replicas"]]
             for c in (stats.capacity(cpu_ms, r, per_replica) for r in rates)])
    _memory(ctx, s)
    return s


def _memory(ctx: Context, s: Section) -> None:
    """Online-store memory for N entities, from the bench's measurement on this tenant's store."""
    stream = stream_bench(ctx)
    mem, worker = stream.get("online_store_memory") or {}, stream.get("worker_state_memory") or {}
    if not mem.get("bytes_per_entity"):
        s.say("Online-store memory: no record measures this tenant's online store (the bench's stream section "
              "measures the fraud tenant's), so no memory estimate is made.")
        return
    per, per_card = mem["bytes_per_entity"], worker.get("bytes_per_card")
    s.say(f"Memory, from {per:,} bytes of Redis per entity key (Feast keeps one hash per entity with all its "
          f"views; {mem['entities']:,} keys materialised)"
          + (f" and {per_card:,} bytes of stream-worker state per card (hourly buckets, applied event ids)"
             if per_card else "") + f" ({bench_source(ctx, 'stream')}):")
    counts = (10**5, 10**6, 10**7)
    s.table(["entities", "online store"] + (["+ worker state, every card active"] if per_card else []),
            [[f"{n:,}", stats.gib(per * n)] + ([stats.gib((per + per_card) * n)] if per_card else []) for n in counts])


def _describe_expectation(r: dict[str, Any]) -> tuple[str, str, str]:
    conf = r.get("expectation_config", {})
    kwargs = {k: v for k, v in (conf.get("kwargs") or {}).items() if k not in {"batch_id", "result_format"}}
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    result = r.get("result") or {}
    if "observed_value" in result:
        observed = f"observed {result['observed_value']!r}"
    elif "unexpected_count" in result:
        observed = f"{result['unexpected_count']} unexpected"
    else:
        observed = ""
    return conf.get("type", "?"), (args[:90] + "…") if len(args) > 90 else args, observed[:60]


def data(ctx: Context) -> Section:
    rec, cfg = ctx.rec, ctx.rec.cfg
    s = Section(key="data", title="Data")
    ing, val = rec.steps["ingest"], rec.steps["validate"]
    s.table(["figure", "value", "record"], [
        ["rows ingested", f"{ing.get('rows', '-')}", "ingest step"],
        ["snapshot sha256", f"{str(ing.get('sha256', '-'))[:16]}…", "ingest step"],
        ["training rows / validation rows", f"{rec.params.get('train_rows', '-')} / {rec.params.get('valid_rows', '-')}",
         "MLflow params"],
        ["labelled as of", rec.params.get("as_of", "-"), "MLflow params"],
        ["expectations evaluated", f"{val.get('evaluated', '-')} ({'passed' if val.get('success') else 'FAILED'})",
         "validate step"],
    ])
    split = cfg.model.split
    s.say(f"Time split: the newest {split.validation_days:g} days validate, after a gap of {split.gap_days:g} "
          f"days; older days train" + (f" (split column `{split.column}`)." if split.column else "."))
    delays = label_delays(ctx)
    if delays is not None:
        q = np.quantile(delays, [0.5, 0.9, 0.99])
        s.say(f"Label delay (from the snapshot's `{cfg.data.label_available_at}` column, {len(delays)} labels): "
              f"median {q[0]:.1f} days, p90 {q[1]:.1f}, p99 {q[2]:.1f}; the tenant file says "
              f"{cfg.data.label_delay_days:g} days.")
    else:
        s.say(f"Label delay: the tenant file says {cfg.data.label_delay_days:g} days; the data records no "
              "per-label arrival time, so no distribution is shown.")
    s.say("Great Expectations results of this run, rendered here so they read offline (the raw Data Docs, "
          "which load their styles from a CDN, are linked after them):")
    for res in rec.validation:
        suite = res.get("meta", {}).get("expectation_suite_name") or res.get("suite_name") or "suite"
        stats_ = res.get("statistics", {})
        rows = [[("pass" if r.get("success") else "FAIL"), *_describe_expectation(r)] for r in res["results"]]
        s.table(["result", "expectation", "arguments", "observed"], rows,
                caption=f"{suite}: {stats_.get('successful_expectations', '?')} of "
                        f"{stats_.get('evaluated_expectations', '?')} passed")
    if not rec.validation:
        s.say("No Great Expectations results were found in the workspace for this run.")
    if val.get("report"):
        s.link(f"raw Data Docs of this validation ({shown(val['report'])})", val["report"])
    return s


def label_delays(ctx: Context) -> np.ndarray | None:
    cfg = ctx.rec.cfg
    if not cfg.data.label_available_at:
        return None
    import pandas as pd

    from mlplatform.data.ingest import load_raw

    try:
        raw = load_raw(cfg, ctx.rec.ws)
    except (FileNotFoundError, ValueError):
        return None
    if cfg.data.label_available_at not in raw:
        return None
    d = (pd.to_datetime(raw[cfg.data.label_available_at], utc=True)
         - pd.to_datetime(raw[cfg.data.timestamp], utc=True)).dt.total_seconds() / 86400
    d = d.dropna().to_numpy()
    return d if len(d) else None


def features(ctx: Context) -> Section:
    cfg = ctx.rec.cfg
    s = Section(key="features", title="Features")
    tables = ctx.rec.steps.get("features", {}).get("tables", {})
    rows = []
    stream = cfg.features.stream
    for v in cfg.features.feature_views:
        t = tables.get(v.name, {})
        fresh = (f"streamed: p99 event -> online < {stream.freshness_slo_seconds:g} s (alerted)"
                 if stream is not None and stream.view == v.name else "batch: as of the last pipeline run")
        rows.append([v.name, ", ".join(v.entities), f"{v.ttl_days:g} d", len(v.features),
                     t.get("rows", "-") if isinstance(t, dict) else t, fresh])
    s.table(["view", "entity", "TTL", "features", "rows (features step)", "freshness"], rows)
    join = ("strictly before the event (a feature computed from the event itself is not visible)"
            if cfg.features.as_of == "before_event" else "at the event's timestamp")
    s.say(f"Point-in-time join: Feast `get_historical_features` with each event's timestamp; a feature "
          f"value is taken {join} and only if younger than its view's TTL. Online, the same views are "
          f"read from the online store ({cfg.features.online_store.type}).")
    skew = (((ctx.rec.summary or {}).get("serving") or {}).get("smoke") or {}).get("skew")
    if skew and "error" not in skew:
        s.say(f"Training/serving skew (the demo's check, summary.json; serving/skew.py): the newest {skew['rows']} "
              f"rows scored at {skew['at']} by the running server (online store) and by training's path "
              f"(point-in-time join, v{skew['model_version']} loaded by its trainer): **{skew['mismatches']} "
              f"differ** by more than {skew['tolerance']:g} (largest difference {skew['max_abs_score_diff']:.2g}). "
              "Streamed features are checked payment by payment in tests/integration/test_stream_skew.py.")
    elif skew:
        s.say(f"Training/serving skew: the demo's check did not run: {skew['error']}.")
    else:
        s.say("Training/serving skew: no skew check result is recorded with this run (the demo records one).")
    e2e = stream_bench(ctx).get("event_to_online") or {}
    if stream is not None and e2e.get("p99_ms") is not None:
        s.say(f"Measured freshness of `{stream.view}`: event -> online p50 {e2e['p50_ms']} ms, p99 {e2e['p99_ms']} ms "
              f"({bench_source(ctx, 'stream')}).")
    return s


def monitoring(ctx: Context) -> Section:
    cfg = ctx.rec.cfg
    s = Section(key="monitoring", title="Monitoring and the loop")
    d = cfg.drift
    s.say(f"Drift: PSI above {d.psi_threshold:g} or KS above {d.ks_threshold:g} for {d.for_minutes:g} minutes, "
          f"over {d.bins} bins of the validation window (the newest rows, out-of-sample scores). PSI 0.2 is "
          "the conventional 'significant shift' line; see the bench's drift section for PSI of a shifted vs. "
          "unshifted column.")
    drift = (ctx.rec.bench or {}).get("drift") or {}
    if drift.get("status") == "ok" and "psi_shifted_column" in drift:
        s.say(f"Measured ({bench_source(ctx, 'drift')}): a shifted column's PSI {drift['psi_shifted_column']}, "
              f"the largest unshifted {drift['psi_unshifted_max']}: the threshold separates them.")
    try:
        from mlplatform.monitoring.rules import rule_groups

        groups = rule_groups(cfg.source_path) if cfg.source_path else None
    except Exception as err:  # noqa: BLE001 - the rules render through Helm; say why when they do not
        groups, why = None, f"{type(err).__name__}: {err}"
    else:
        why = "the tenant file's path is unknown"
    if groups:
        s.table(["alert", "for", "severity", "what it watches"],
                [[r["alert"], r.get("for", "-"), r.get("labels", {}).get("severity", "-"),
                  str(r.get("annotations", {}).get("summary", ""))[:100]]
                 for g in groups["groups"] for r in g["rules"] if "alert" in r],
                caption="alert rules rendered from charts/tenant with this tenant file")
    else:
        s.say(f"Alert rules could not be rendered: {why}.")
    r = cfg.rollout
    s.say(f"Rollout: shadow for {r.shadow_seconds:g} s, then canary steps {r.step_weights} % every "
          f"{r.interval_seconds:g} s while every check passes, promotion after passing at {r.max_weight} %, "
          f"rollback after {r.failed_checks_limit} failed analyses; checks: "
          + ", ".join(f"`{c.name}`" for c in r.checks) + ".")
    loop = ctx.rec.loop
    if loop and loop.get("steps"):
        events = [(float(st.get("elapsed_s", 0)), str(st.get("event", "?"))) for st in loop["steps"]]
        s.figures.append(figures.timeline(ctx.out_dir / f"{cfg.name}_loop.png", events,
                                          title=f"{cfg.name}: the loop (loop.json)"))
        decision = loop.get("decision") or {}
        s.say(f"The loop (`make demo-loop`, {loop.get('run_dir', 'its own run folder')}): {len(events)} steps "
              f"in {loop.get('seconds', '?')} s; outcome: {decision.get('outcome', '-')}.")
        stream = loop.get("stream")
        if stream:
            n = {k: f"{int(v):,}" for k, v in stream.items()}
            s.say(f"Its traffic went through the stream: {n.get('published', '0')} payments published, "
                  f"{n.get('events_applied', '0')} applied by the worker, {n.get('events_late', '0')} late, "
                  f"{n.get('events_duplicate', '0')} duplicate; {n.get('rows_written', '0')} rows written online.")
    else:
        s.say("No `make demo-loop` record (loop.json) for this tenant beside this run.")
    return s


def experiment(ctx: Context, exp: Experiment | None) -> Section:
    s = Section(key="experiment", title="Experiment: what an A/B test would need")
    if exp is None:
        s.say("No measured baseline for an online metric is recorded; no sample size is computed.")
        return s
    t = ctx.rec.cfg.serving.traffic
    try:
        if exp.std is None:
            n = stats.sample_size_proportion(exp.baseline, exp.relative_mde)
            shape = f"a proportion, baseline {exp.baseline:.4f}"
        else:
            n = stats.sample_size_mean(exp.std, exp.baseline * exp.relative_mde)
            shape = f"a mean, baseline {exp.baseline:.4f}, per-{exp.unit} std {exp.std:.4f}"
    except ValueError as err:
        s.say(f"Sample size for {exp.metric}: not computable ({err}).")
        return s
    days = 2 * n / (t.per_day * 2 * EXPERIMENT_SPLIT)
    units = _plural(exp.unit)
    s.table(["metric", "baseline (source)", "MDE", "α / power", f"{units} per arm", "time at expected traffic"],
            [[exp.metric, f"{shape} ({exp.source})", f"{exp.relative_mde:+.0%} relative", "0.05 / 0.8",
              f"{n:,}", f"{days:.2f} days" if days >= 1 else f"{days * 24:.1f} hours"]])
    delay = ctx.rec.cfg.data.label_delay_days
    labels = (f"labels arrive only after {delay:g} days" if delay else
              "its outcome has to be measured on the same units the test splits")
    s.say(f"Duration: two arms of {EXPERIMENT_SPLIT:.0%} of {t.per_day:,.0f} {units}/day (serving.traffic); "
          "run whole weeks regardless, so weekday patterns fall in both arms. The canary does not replace this "
          "test: it guards against breakage (errors, latency, score distribution) over minutes at a small "
          f"share, far too few units to detect an effect of this size, and {labels}.")
    return s


def _plural(unit: str) -> str:
    return f"{unit[:-1]}ies" if unit.endswith("y") and unit[-2:-1] not in "aeiou" else f"{unit}s"


def serving(ctx: Context, task) -> Section:
    cfg = ctx.rec.cfg
    s = Section(key="serving", title="Serving")
    s.timings = task.serving_timings(ctx)
    if not s.timings:
        s.say("No record measures this tenant's serving latency (no bench section for it); run `make bench`.")
    s.say(f"SLO: p99 below {cfg.serving.slo.p99_latency_ms:g} ms, errors below {cfg.serving.slo.max_error_rate:.2%}. "
          f"The served model is the `{cfg.serving.model_alias}` alias in MLflow.")
    smoke = (ctx.rec.summary or {}).get("serving", {}).get("smoke")
    if smoke:
        s.say(f"Demo smoke test (summary.json): {smoke.get('requests', '-')} requests, {smoke.get('errors', '-')} "
              "errors.")
    s.say("A 4xx answer is the caller's fault (a malformed body, a missing or mistyped field), with a JSON "
          "`{\"error\": ...}` saying which; a 5xx is ours and counts against the error-rate SLO and alert. An "
          "entity the online store does not hold is scored as cold start (its features missing), not refused.")
    return s
