"""The report's sections for `task: binary_classification`: metrics with bootstrap intervals over
validation rows, the cost curve and threshold, baselines beside the model, calibration, importance,
serving latency (bench section `serving`, else a short in-process measurement)."""

from __future__ import annotations

import time

import numpy as np

from mlplatform.report import figures, stats
from mlplatform.report.model import Section, Timing
from mlplatform.report.plugin import Context, Experiment
from mlplatform.report.records import cpu_model
from mlplatform.report.sections import argue_gates, baseline_details, bench_source

# bench/run.py's serving section measures the fraud example tenant's predictor: its figures are
# that tenant's only (sections do not record a tenant name)
BENCH = ("serving", "fraud")
CI_METRICS = ("pr_auc", "roc_auc")
MISSED_MDE = -0.10  # the A/B test is sized to see missed positives per request fall by 10%


class ClassificationReport:
    def evaluate(self, ctx: Context) -> None:
        """Validation scores of the registered model on the rows it was validated on: the logged
        training set, split as training split it (time_split), scored by the registered version."""
        from sklearn.metrics import average_precision_score

        from mlplatform.training.dataset import time_split
        from mlplatform.training.trainers import model_features

        rec = ctx.rec
        try:
            _, valid = time_split(rec.cfg, rec.training_set().frame)
            trainer, model = rec.model()
        except Exception as err:  # noqa: BLE001 - the sections say what is missing and why
            ctx.evaluation["missing"] = f"{type(err).__name__}: {err}"
            return
        y = valid[rec.cfg.data.label].to_numpy().astype(int)
        scores = np.asarray(trainer.predict(model, valid[model_features(model, rec.cfg.model.features)]), dtype=float)
        ctx.evaluation |= {"y": y, "scores": scores}
        logged = rec.metrics.get("pr_auc")
        rebuilt = float(average_precision_score(y, scores))
        ctx.evaluation["reproduces"] = logged is not None and abs(rebuilt - logged) < 1e-6
        ctx.evaluation["rebuilt_pr_auc"] = rebuilt

    def _ci(self, ctx: Context, key: str) -> str:
        from sklearn.metrics import average_precision_score, roc_auc_score

        logged = ctx.logged_interval(key)
        if logged is not None:
            return logged
        ev = ctx.evaluation
        if "y" not in ev:
            return f"missing ({ev.get('missing', 'no validation predictions')})"
        fn = {"pr_auc": average_precision_score, "roc_auc": roc_auc_score}[key]
        y, s = ev["y"], ev["scores"]
        lo, hi = stats.bootstrap_ci(len(y), lambda i: fn(y[i], s[i]) if 0 < y[i].sum() < len(i) else np.nan)
        return f"[{lo:.4f}, {hi:.4f}]"

    def metrics(self, ctx: Context) -> Section:
        rec, cfg = ctx.rec, ctx.rec.cfg
        s = Section(key="metrics", title="Metrics")
        rows = [[k, ctx.metric(k), self._ci(ctx, k) if k in CI_METRICS else ""]
                for k in (*CI_METRICS, f"recall_at_fpr_{cfg.metrics.recall_at_fpr:g}", "threshold",
                          "expected_cost_per_event", "precision_at_threshold", "recall_at_threshold",
                          "positive_rate", "rows") if k in rec.metrics]
        s.table(["offline metric (validation rows)", "value (MLflow)",
                 ctx.interval_header(f"95% bootstrap CI ({stats.BOOTSTRAP_SAMPLES} resamples of rows, by this report)")],
                rows)
        ev = ctx.evaluation
        if "y" in ev:
            s.say(f"The plots rebuild the validation rows from the run's logged training set and registered model "
                  f"(rebuilt PR-AUC {ev['rebuilt_pr_auc']:.4f}; "
                  f"{'reproduces' if ev['reproduces'] else 'DOES NOT reproduce'} the logged figure).")
            if cfg.metrics.costs:
                s.figures.append(self._cost_curve(ctx))
        argue_gates(ctx, s)
        s.say(f"Registration decision: {rec.steps['register'].get('decision', '-')}")
        s.say("Online: the predictor exports request, error and latency metrics, score and feature "
              "distributions with PSI/KS against the validation window, and label quality once labels "
              "arrive; the monitoring section lists the alert that watches each.")
        return s

    def _cost_curve(self, ctx: Context):
        costs, y, s = ctx.rec.cfg.metrics.costs, ctx.evaluation["y"], ctx.evaluation["scores"]
        grid = np.unique(np.quantile(s, np.linspace(0, 1, 200)))
        cost = [((y == 1) & (s < t)).sum() * costs.false_negative + ((y == 0) & (s >= t)).sum() * costs.false_positive
                for t in grid]
        return figures.lines(ctx.out_dir / f"{ctx.rec.cfg.name}_cost_curve.png",
                             {"cost per event": (grid, np.asarray(cost) / len(y))},
                             title="expected cost per event vs. threshold (validation rows)",
                             xlabel="score threshold", ylabel="cost per event",
                             vline=(ctx.rec.metrics.get("threshold", 0.5), "chosen threshold (MLflow)"))

    def model(self, ctx: Context) -> Section:
        rec = ctx.rec
        s = Section(key="model", title="Model")
        primary = rec.cfg.metrics.primary
        baselines = rec.baselines()
        s.say(f"Trainer: `{rec.params.get('trainer', rec.cfg.model.trainer)}`, best iteration "
              f"{rec.params.get('best_iteration', '-')}, features: {rec.params.get('features', '-')}.")
        if baselines:
            keys = sorted({k for b in baselines.values() for k in b})
            rows = [["model", *[ctx.metric(k) for k in keys]]]
            for name, m in sorted(baselines.items()):
                rows.append([f"baseline: {name}",
                             *[ctx.metric(f"baseline.{name}.{k}") if k in m else "-" for k in keys]])
            s.table(["", *keys], rows, caption="baselines trained and evaluated in the same run, same rows (MLflow)")
            baseline_details(ctx, s)
            if primary in rec.metrics:
                pts = {"model": rec.metrics[primary]} | {n: m[primary] for n, m in baselines.items() if primary in m}
                s.figures.append(figures.bars(ctx.out_dir / f"{rec.cfg.name}_baselines.png", list(pts),
                                              list(pts.values()), title=f"{primary}: model vs. baselines",
                                              xlabel=primary, highlight="model"))
                beaten = [n for n, m in baselines.items() if primary in m and m[primary] >= rec.metrics[primary]]
                s.say(("The model does NOT beat " + ", ".join(beaten) + f" on {primary}.") if beaten else
                      f"The model beats every baseline on {primary}: "
                      + "; ".join(f"why not {n}: {primary} {m[primary]:.4f} vs. the model's {rec.metrics[primary]:.4f}"
                                  for n, m in sorted(baselines.items()) if primary in m) + ".")
        else:
            s.say("No baselines are recorded with this run (`baseline.<name>.<metric>` MLflow metrics), so "
                  "no alternative is measured beside the model.")
        imp = rec.artifacts.get("feature_importance.json")
        if imp:
            top = sorted(imp.items(), key=lambda kv: -kv[1])[:15]
            s.figures.append(figures.bars(ctx.out_dir / f"{rec.cfg.name}_importance.png", [k for k, _ in top],
                                          [v for _, v in top], title="feature importance (gain, MLflow)",
                                          xlabel="gain"))
        ev = ctx.evaluation
        if "y" in ev:
            from sklearn.calibration import calibration_curve

            frac, mean = calibration_curve(ev["y"], ev["scores"], n_bins=10, strategy="quantile")
            s.figures.append(figures.lines(ctx.out_dir / f"{rec.cfg.name}_calibration.png",
                                           {"model": (mean, frac)}, title="calibration (validation rows, deciles)",
                                           xlabel="mean score", ylabel="observed positive rate", diagonal=True))
        return s

    def serving_timings(self, ctx: Context) -> list[Timing]:
        section, tenant = BENCH
        source = bench_source(ctx, section) if ctx.rec.cfg.name == tenant else None
        if source:
            b = ctx.rec.bench[section]
            out = [Timing(what="predict() in process (Feast lookup + model)", p50_ms=b["in_process"]["p50_ms"],
                          p99_ms=b["in_process"]["p99_ms"], source=source)]
            for rate, r in b.get("kserve", {}).get("fixed_rate", {}).items():
                out.append(Timing(what=f"HTTP V1 at {rate} req/s (kserve)", p50_ms=r["p50_ms"], p99_ms=r["p99_ms"],
                                  source=source))
            return out
        return [self._in_process(ctx)] if "in_process" not in ctx.evaluation else [ctx.evaluation["in_process"]]

    def _in_process(self, ctx: Context, n: int = 200) -> Timing:
        from mlplatform.serving.predictor import TenantPredictor
        from mlplatform.serving.smoke import newest_rows, v1_body

        cfg, ws = ctx.rec.cfg, ctx.rec.ws
        rows, _ = newest_rows(cfg, ws, 50)
        pred = TenantPredictor(cfg, ws)
        pred.load()
        bodies = [v1_body([r]) for r in rows]
        for b in bodies[:10]:
            pred.predict(b)
        lat = []
        for i in range(n):
            t = time.perf_counter()
            pred.predict(bodies[i % len(bodies)])
            lat.append((time.perf_counter() - t) * 1000)
        timing = Timing(what="predict() in process (Feast lookup + model)", p50_ms=round(float(np.percentile(lat, 50)), 3),
                        p99_ms=round(float(np.percentile(lat, 99)), 3), mean_ms=round(float(np.mean(lat)), 3),
                        source=f"in-process measurement by this report, {n} requests, {cpu_model()}, "
                               f"{time.strftime('%Y-%m-%d', time.gmtime())}")
        ctx.evaluation["in_process"] = timing
        return timing

    def cpu_ms_per_request(self, ctx: Context) -> tuple[float, str] | None:
        section, tenant = BENCH
        source = bench_source(ctx, section) if ctx.rec.cfg.name == tenant else None
        if source:
            rates = ctx.rec.bench[section]["kserve"]["fixed_rate"]
            top = max(rates, key=float)
            if rates[top].get("server_cpu_ms_per_request"):
                return rates[top]["server_cpu_ms_per_request"], f"server CPU at {top} req/s, {source}"
        t = ctx.evaluation.get("in_process") or self._in_process(ctx)
        return t.mean_ms, f"mean in-process predict() time ({t.source}; no HTTP: a lower bound)"

    def experiment(self, ctx: Context) -> Experiment | None:
        ev, thr = ctx.evaluation, ctx.rec.metrics.get("threshold")
        if "y" not in ev or thr is None:
            return None
        missed = float(((ev["y"] == 1) & (ev["scores"] < thr)).mean())
        if missed <= 0:
            return None
        return Experiment(metric="missed positives per request (positives scored below the threshold)",
                          unit="request", baseline=missed, std=None, relative_mde=MISSED_MDE,
                          source="validation rows at the logged threshold")


REPORT = ClassificationReport()
