"""The report's sections for `task: ranking`: NDCG@k and MRR with bootstrap intervals over queries,
baselines beside the ranker, retrieval recall@K, exact vs. approximate indexes (bench), latency
by funnel stage (bench section `search`)."""

from __future__ import annotations

import numpy as np

from mlplatform.report import figures, stats
from mlplatform.report.model import Section, Timing
from mlplatform.report.plugin import Context, Experiment
from mlplatform.report.sections import argue_gates, baseline_details, bench_source

# bench/run.py's search and scale sections measure the search example tenant (bench/search_bench.py)
BENCH = ("search", "search")
NDCG_MDE = 0.02  # the A/B test is sized to see NDCG@10 per query move by 2% (relative)


def per_query(labels: np.ndarray, scores: np.ndarray, group: np.ndarray, k: int, relevant_min: int) -> dict:
    """NDCG@k and reciprocal rank of each query with a relevant item (ranking/metrics.py's rules)."""
    from mlplatform.ranking.metrics import _groups, dcg

    ndcg, rr = [], []
    for rows in _groups(group):
        lab = labels[rows]
        if lab.max(initial=0) <= 0:
            continue
        ranked = lab[np.argsort(-scores[rows], kind="stable")]
        ndcg.append(dcg(ranked, k) / dcg(np.sort(lab)[::-1], k))
        hits = np.flatnonzero(ranked >= relevant_min)
        rr.append(1.0 / (hits[0] + 1) if len(hits) else 0.0)
    return {"ndcg": np.asarray(ndcg), "rr": np.asarray(rr)}


class RankingReport:
    def evaluate(self, ctx: Context) -> None:
        from mlplatform.ranking.train import SOURCE, split
        from mlplatform.training.trainers import model_features

        rec, r = ctx.rec, ctx.rec.cfg.ranking
        try:
            _, valid, _ = split(rec.cfg, rec.training_set().frame)
            trainer, model = rec.model()
        except Exception as err:  # noqa: BLE001 - the sections say what is missing and why
            ctx.evaluation["missing"] = f"{type(err).__name__}: {err}"
            return
        if SOURCE in valid:
            valid = valid[valid[SOURCE] == "judgment"].reset_index(drop=True)
        scores = np.asarray(trainer.predict(model, valid[model_features(model, rec.cfg.model.features)]), dtype=float)
        k = 10 if 10 in r.k_values else r.k_values[0]
        q = per_query(valid[rec.cfg.data.label].to_numpy(float), scores, valid[r.group].to_numpy(), k, r.relevant_min)
        logged = rec.metrics.get(f"ndcg_at_{k}")
        ctx.evaluation |= q | {"k": k, "rebuilt": float(q["ndcg"].mean()),
                               "reproduces": logged is not None and abs(float(q["ndcg"].mean()) - logged) < 1e-6}

    def _ci(self, ctx: Context, values: str, key: str) -> str:
        logged = ctx.logged_interval(key)
        if logged is not None:
            return logged
        ev = ctx.evaluation
        if values not in ev:
            return f"missing ({ev.get('missing', 'no validation predictions')})"
        v = ev[values]
        lo, hi = stats.bootstrap_ci(len(v), lambda i: float(v[i].mean()))
        return f"[{lo:.4f}, {hi:.4f}]"

    def metrics(self, ctx: Context) -> Section:
        rec, r = ctx.rec, ctx.rec.cfg.ranking
        s = Section(key="metrics", title="Metrics")
        k = ctx.evaluation.get("k", 10)
        rows = [[f"ndcg_at_{kk}", ctx.metric(f"ndcg_at_{kk}"), self._ci(ctx, "ndcg", f"ndcg_at_{kk}") if kk == k else ""]
                for kk in r.k_values if f"ndcg_at_{kk}" in rec.metrics]
        rows += [[m, ctx.metric(m), self._ci(ctx, "rr", "mrr") if m == "mrr" else ""]
                 for m in ("mrr", "queries", "rows", "click_labelled_train_rows") if m in rec.metrics]
        s.table(["offline metric (validation queries)", "value (MLflow)",
                 ctx.interval_header(f"95% bootstrap CI ({stats.BOOTSTRAP_SAMPLES} resamples of queries, by this report)")],
                rows)
        ev = ctx.evaluation
        if "ndcg" in ev:
            s.say(f"The plots rebuild the validation queries from the run's logged rows and registered model "
                  f"(rebuilt NDCG@{k} {ev['rebuilt']:.4f}; {'reproduces' if ev['reproduces'] else 'DOES NOT reproduce'} "
                  "the logged figure).")
        recall = sorted(m for m in rec.metrics if m.startswith("recall_at_"))
        if recall:
            s.table(["retrieval", "value (MLflow)"], [[m, ctx.metric(m)] for m in recall])
        argue_gates(ctx, s)
        s.say(f"Registration decision: {rec.steps['register'].get('decision', '-')}")
        s.say("Online: click NDCG@10 from served result lists joined with delayed clicks (the quality job); "
              "the quality-decay alert in the monitoring section watches it.")
        return s

    def model(self, ctx: Context) -> Section:
        rec = ctx.rec
        s = Section(key="model", title="Model")
        k = ctx.evaluation.get("k", 10)
        key = f"ndcg_at_{k}"
        pts: dict[str, float] = {}
        if key in rec.metrics:
            pts["ranker"] = rec.metrics[key]
        rows = []
        for m in sorted(rec.metrics):  # baselines the ranking step scores on the same queries
            if m.startswith(f"{key}_baseline_"):
                pts[m.removeprefix(f"{key}_baseline_") + " alone"] = rec.metrics[m]
                rows.append([m.removeprefix(f"{key}_baseline_") + " alone", ctx.metric(m)])
        for name, mm in sorted(rec.baselines().items()):
            for metric in sorted(mm):
                rows.append([f"baseline: {name} ({metric})", ctx.metric(f"baseline.{name}.{metric}")])
                if metric == key:
                    pts[name] = mm[metric]
        if rows:
            s.table(["baseline (same validation queries)", "value (MLflow)"], [["ranker", ctx.metric(key)], *rows])
            baseline_details(ctx, s)
            s.figures.append(figures.bars(ctx.out_dir / f"{rec.cfg.name}_baselines.png", list(pts),
                                          list(pts.values()), title=f"NDCG@{k}: ranker vs. baselines",
                                          xlabel=f"NDCG@{k}", highlight="ranker"))
            beaten = [n for n, v in pts.items() if n != "ranker" and v >= pts.get("ranker", np.inf)]
            s.say(("The ranker does NOT beat " + ", ".join(beaten) + f" on NDCG@{k}.") if beaten
                  else f"The ranker beats every recorded baseline on NDCG@{k}.")
        else:
            s.say("No baselines are recorded with this run.")
        retrieval = rec.artifacts.get("retrieval.json") or {}
        if retrieval.get("recall_at_k"):
            ks = sorted({kk for v in retrieval["recall_at_k"].values() for kk in v}, key=int)
            s.table(["retriever", *[f"recall@{kk}" for kk in ks]],
                    [[n, *[f"{v.get(kk, float('nan')):.4f}" for kk in ks]] for n, v in retrieval["recall_at_k"].items()],
                    caption="retrieval recall@K (MLflow retrieval.json)")
        scale = (rec.bench or {}).get("scale") or {}
        src = bench_source(ctx, "scale") if rec.cfg.name == BENCH[1] else None
        if src and scale.get("rows"):
            s.table(["items", "index", "recall@1000", "p50 ms", "p99 ms", "index MB"],
                    [[x["items"], x["index"], x["recall_at_1000"], x["p50_ms"], x["p99_ms"], x["index_mb"]]
                     for x in scale["rows"]], caption=f"exact vs. approximate dense retrieval ({src})")
        imp = rec.artifacts.get("feature_importance.json")
        if imp:
            top = sorted(imp.items(), key=lambda kv: -kv[1])[:15]
            s.figures.append(figures.bars(ctx.out_dir / f"{rec.cfg.name}_importance.png", [k_ for k_, _ in top],
                                          [v for _, v in top], title="feature importance (gain, MLflow)",
                                          xlabel="gain"))
        return s

    def serving_timings(self, ctx: Context) -> list[Timing]:
        section, tenant = BENCH
        source = bench_source(ctx, section) if ctx.rec.cfg.name == tenant else None
        if not source:
            return []
        stages = ctx.rec.bench[section]["in_process"]["stages"]
        return [Timing(what=f"stage {name} (in process)", p50_ms=v["p50_ms"], p99_ms=v["p99_ms"],
                       mean_ms=v.get("mean_ms"), source=source) for name, v in stages.items()]

    def cpu_ms_per_request(self, ctx: Context) -> tuple[float, str] | None:
        section, tenant = BENCH
        source = bench_source(ctx, section) if ctx.rec.cfg.name == tenant else None
        if not source:
            return None
        total = ctx.rec.bench[section]["in_process"]["stages"].get("stages_total", {})
        if not total.get("mean_ms"):
            return None
        return total["mean_ms"], f"mean in-process time of all stages, one thread, no HTTP (a lower bound), {source}"

    def experiment(self, ctx: Context) -> Experiment | None:
        ev = ctx.evaluation
        if "ndcg" not in ev or len(ev["ndcg"]) < 2:
            return None
        return Experiment(metric=f"NDCG@{ev['k']} per query (online: click NDCG)", unit="query",
                          baseline=float(ev["ndcg"].mean()), std=float(ev["ndcg"].std(ddof=1)),
                          relative_mde=NDCG_MDE, source="validation queries of this run")


REPORT = RankingReport()
