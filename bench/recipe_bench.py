"""The platform's training recipe against the libraries' defaults, on a fixed grid of generated data.

    python -m bench.recipe_bench [--quick] [--json F]

Ranking: LETOR files from bench/letor_bench.py's seeded generator (same shape, `noise` the relevance
noise no feature sees: low and high) with 100, 500 and 2,000 queries, each split 80/20 into a
training and a validation file, plus 500 test queries of the same data set (one test file per seed
and noise, shared by every size). Recipe: the tenant `tenant new --from-letor` scaffolds for those
files (so its tuning, `model.tune`, and its rounds), trained by its trainer on the training file
with the validation file, as the ranking step trains it. Default: `lightgbm.LGBMRanker()` fitted on
the training file (letor_bench.baseline). Both: NDCG@10 on the test file, `mlplatform.ranking.metrics`.

Classification: payments from the fraud tenant's simulator (examples/fraud), with its features
(request, card velocity and terminal risk, joined as of just before each payment), 5k, 50k and 500k
rows at positive rates 0.2% and 2% (positives and negatives drawn from a large simulation, so the
rate is exact), the newest 20% of those rows the validation window, and 100k test rows at the same
rate from the simulation's last days (shared by every size). Recipe: the fraud tenant's model
section, trained by its trainer; default: `xgboost.XGBClassifier()` fitted on the training rows.
Both: PR-AUC (average precision) on the test rows.

The validation rows are for the recipe's own choices (early stopping, tuning), as a LETOR validation
file is: the default, which makes none, trains on the same training rows without them. Per cell
and seed the ratio recipe / default; per cell the median over seeds and their spread. Not a test:
nothing asserts a ratio; the target (every cell's median >= 1) is reported.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from bench import letor_bench
from bench.common import REPO, section_main

FRAUD = REPO / "examples" / "fraud" / "tenant.yaml"
CARDS_PER_GROUP = 1_000  # payments() builds the card state per group of cards (memory)
VALID_SHARE = 0.2  # of a cell's queries / rows: the newest (classification) or last (ranking) fifth
GRID = {
    True: {"ranking": {"queries": [100], "noise": {"high": 1.5}, "seeds": [0], "test_queries": 100,
                       "features": 30, "docs": (8, 25)},
           "classification": {"rows": [5_000], "rates": [0.02], "seeds": [0], "test_rows": 10_000,
                              "simulation": {"customers": 2_000, "terminals": 4_000, "days": 40, "test_days": 8}}},
    False: {"ranking": {"queries": [100, 500, 2_000], "noise": {"low": 0.45, "high": 1.5}, "seeds": [0, 1, 2],
                        "test_queries": 500, "features": 46, "docs": (8, 40)},  # LETOR 4.0's width
            "classification": {"rows": [5_000, 50_000, 500_000], "rates": [0.002, 0.02], "seeds": [0, 1, 2],
                               "test_rows": 100_000,
                               "simulation": {"customers": 14_000, "terminals": 28_000, "days": 72, "test_days": 12}}},
}


def summary(per_seed: list[dict]) -> dict:
    ratios = [s["ratio"] for s in per_seed]
    return {"ratio_median": round(statistics.median(ratios), 4), "ratio_min": round(min(ratios), 4),
            "ratio_max": round(max(ratios), 4), "per_seed": per_seed}


# --- ranking --------------------------------------------------------------------------------------


def ranking_cell(folder: Path, seed: int, noise: float, queries: int, test: pd.DataFrame, g: dict,
                 storage: Path) -> dict:
    """One data set of `queries` queries (80% training, 20% validation) and the shared test queries:
    LETOR files, the scaffolded tenant, the recipe and the default on them."""
    from mlplatform.config import load_tenant
    from mlplatform.ranking.letor import read_letor_set, write_letor
    from mlplatform.ranking.metrics import ranking_metrics
    from mlplatform.scaffold import scaffold_letor_tenant
    from mlplatform.training import lightgbm_ranker

    feats = [f"f{i}" for i in range(1, g["features"] + 1)]
    rows = letor_bench.generate(seed * 10_000 + queries, queries, g["docs"], g["features"], 1,
                                letor_bench.feature_structure(seed, g["features"]), noise)
    n_train = int(round(queries * (1 - VALID_SHARE)))
    folder.mkdir(parents=True, exist_ok=True)
    files = {"train": write_letor(rows[rows["qid"] <= n_train], folder / "train.txt", feats),
             "vali": write_letor(rows[rows["qid"] > n_train], folder / "vali.txt", feats),
             "test": write_letor(test, folder / "test.txt", feats)}
    cfg = load_tenant(scaffold_letor_tenant("recipe-bench", files["train"], files["vali"], files["test"],
                                            out_dir=folder / "tenants", overwrite=True))
    frame = read_letor_set(files["train"], files["vali"], files["test"])
    part = {s: frame[frame["split"] == s].reset_index(drop=True) for s in ("train", "valid", "test")}
    t = time.perf_counter()
    trained = lightgbm_ranker.train(cfg, part["train"], part["valid"], storage)
    seconds = time.perf_counter() - t
    scores = lightgbm_ranker.predict(trained.model, part["test"])
    te = part["test"]
    recipe = ranking_metrics(te["label"], scores, te["qid"], [10], relevant_min=cfg.ranking.relevant_min)
    default = letor_bench.baseline(files)
    chosen = [t["config"] for t in trained.tune_trials if t["selected"]]
    return {"seed": seed, "recipe": round(recipe["ndcg_at_10"], 4), "default": round(default["test_ndcg_at_10"], 4),
            "ratio": round(recipe["ndcg_at_10"] / default["test_ndcg_at_10"], 4), "recipe_s": round(seconds, 1),
            "default_s": default["fit_seconds"], "recipe_trees": trained.best_iteration,
            "selected": {k: round(v, 4) for k, v in chosen[0].items()} if chosen else None,
            "train_queries": n_train, "test_queries": recipe["queries"]}


def run_ranking(g: dict, work: Path, storage: Path) -> dict:
    cells = []
    for noise_name, noise in g["noise"].items():
        tests = {seed: letor_bench.generate(seed * 10_000 + 9_999, g["test_queries"], g["docs"], g["features"],
                                            10**6, letor_bench.feature_structure(seed, g["features"]), noise)
                 for seed in g["seeds"]}
        for queries in g["queries"]:
            per_seed = []
            for seed in g["seeds"]:
                print(f"bench: recipe ranking {queries} queries, {noise_name} noise, seed {seed}", flush=True)
                per_seed.append(ranking_cell(work / f"rank-{noise_name}-{queries}-{seed}", seed, noise, queries,
                                             tests[seed], g, storage))
                print(f"bench: recipe ranking -> {per_seed[-1]}", flush=True)
            cells.append({"queries": queries, "noise": noise_name, **summary(per_seed)})
    return {"metric": "ndcg_at_10", "noise_sd": g["noise"], "test_queries": g["test_queries"],
            "features": g["features"], "docs_per_query": list(g["docs"]), "cells": cells}


# --- classification -------------------------------------------------------------------------------


def payments(seed: int, sim: dict) -> pd.DataFrame:
    """Simulated payments with the fraud tenant's model inputs, each joined as of just before the payment
    (the tenant's `as_of: before_event`): card velocity from the card's earlier payments, terminal
    risk from the day's row (labels known by then), request features from the payment itself.

    The card state (its hourly buckets, list columns) is per card, so it is built, joined and turned
    into window features one group of cards at a time, and only the windows are kept: the full
    grid's 2.5M payments at once held ~20 GB of bucket lists."""
    from fraud_tenant import data
    from fraud_tenant import features as ff
    from fraud_tenant.velocity import CUSTOMER

    raw = data.simulate(customers=sim["customers"], terminals=sim["terminals"], days=sim["days"], seed=seed)
    groups = max(1, sim["customers"] // CARDS_PER_GROUP)
    parts = []
    for g in range(groups):
        cards = raw[raw["customer_id"] % groups == g]
        events = cards.sort_values("tx_datetime", kind="stable")
        velocity = ff.customer_velocity(cards).rename(columns={"event_timestamp": "tx_datetime"})
        joined = pd.merge_asof(events, velocity.sort_values("tx_datetime", kind="stable"), on="tx_datetime",
                               by="customer_id", allow_exact_matches=False)
        parts.append(ff.request_features(joined).drop(columns=CUSTOMER.state))
    out = pd.concat(parts).sort_values("transaction_id", kind="stable")  # ids increase with time
    risk = ff.terminal_risk(raw).rename(columns={"event_timestamp": "tx_datetime"})
    out = pd.merge_asof(out, risk, on="tx_datetime", by="terminal_id")
    return out.reset_index(drop=True)


def draw(pool: pd.DataFrame, rows: int, rate: float, rng: np.random.Generator, label: str) -> pd.DataFrame:
    """`rows` rows of `pool` with exactly round(rows * rate) positives, in time order."""
    pos = np.flatnonzero(pool[label].to_numpy() == 1)
    neg = np.flatnonzero(pool[label].to_numpy() != 1)
    k = max(1, int(round(rows * rate)))
    if k > len(pos) or rows - k > len(neg):
        raise ValueError(f"the simulation has {len(pos)} positives / {len(neg)} negatives, a cell needs {k} / "
                         f"{rows - k}: enlarge GRID[...]['simulation']")
    take = np.sort(np.concatenate([rng.choice(pos, k, replace=False), rng.choice(neg, rows - k, replace=False)]))
    return pool.iloc[take].reset_index(drop=True)


def classification_cell(cfg, cell: pd.DataFrame, test: pd.DataFrame, seed: int, storage: Path) -> dict:
    import xgboost
    from sklearn.metrics import average_precision_score

    from mlplatform.training import xgboost_trainer

    feats, label = cfg.model.features, cfg.data.label
    cut = int(round(len(cell) * (1 - VALID_SHARE)))
    train, valid = cell.iloc[:cut].reset_index(drop=True), cell.iloc[cut:].reset_index(drop=True)
    t = time.perf_counter()
    trained = xgboost_trainer.train(cfg, train, valid, storage)
    recipe_s = time.perf_counter() - t
    recipe = average_precision_score(test[label], xgboost_trainer.predict(trained.model, test))
    t = time.perf_counter()
    default_model = xgboost.XGBClassifier().fit(train[feats], train[label])
    default_s = time.perf_counter() - t
    default = average_precision_score(test[label], default_model.predict_proba(test[feats])[:, 1])
    return {"seed": seed, "recipe": round(float(recipe), 4), "default": round(float(default), 4),
            "ratio": round(float(recipe / default), 4), "recipe_s": round(recipe_s, 1), "default_s": round(default_s, 1),
            "recipe_trees": trained.best_iteration + 1, "train_positives": int(train[label].sum()),
            "valid_positives": int(valid[label].sum()),
            "selection": getattr(trained, "selection", None) or {}}


def run_classification(g: dict) -> dict:
    from mlplatform.config import TenantConfig

    cfg = TenantConfig.model_validate(yaml.safe_load(FRAUD.read_text()))
    label, ts, sim = cfg.data.label, cfg.data.timestamp, g["simulation"]
    results: dict[tuple, list] = {}
    with tempfile.TemporaryDirectory(prefix="bench-recipe-") as storage:
        for seed in g["seeds"]:
            print(f"bench: recipe classification, simulating seed {seed}", flush=True)
            pool = payments(seed, sim)
            test_from = pool[ts].min().normalize() + pd.Timedelta(days=sim["days"] - sim["test_days"])
            early, late = pool[pool[ts] < test_from], pool[pool[ts] >= test_from]
            rng = np.random.default_rng(seed)
            for rate in g["rates"]:
                test = draw(late, g["test_rows"], rate, rng, label)
                for rows in g["rows"]:
                    print(f"bench: recipe classification {rows} rows at {rate:.1%}, seed {seed}", flush=True)
                    cell = draw(early, rows, rate, rng, label)
                    results.setdefault((rows, rate), []).append(classification_cell(cfg, cell, test, seed,
                                                                                     Path(storage)))
                    print(f"bench: recipe classification -> {results[(rows, rate)][-1]}", flush=True)
    cells = [{"rows": rows, "rate": rate, **summary(per_seed)} for (rows, rate), per_seed in sorted(results.items())]
    return {"metric": "pr_auc", "test_rows": g["test_rows"], "simulation": sim, "cells": cells}


# --- the section ----------------------------------------------------------------------------------


def run(p: dict, work: Path, quick: bool) -> dict:
    from mlplatform.config import load_tenant
    from mlplatform.training.distributed import ensure_ray

    g = GRID[quick]
    ensure_ray(load_tenant(FRAUD))
    started = time.monotonic()
    work = Path(work) / "recipe"
    with tempfile.TemporaryDirectory(prefix="bench-recipe-ray-") as storage:
        ranking = run_ranking(g["ranking"], work, Path(storage))
    classification = run_classification(g["classification"])
    cells = ranking["cells"] + classification["cells"]
    return {"status": "ok", "ranking": ranking, "classification": classification,
            "seeds": {"ranking": g["ranking"]["seeds"], "classification": g["classification"]["seeds"]},
            "target": "median ratio recipe / default >= 1.0 in every cell",
            "target_met": all(c["ratio_median"] >= 1.0 for c in cells),
            "seconds": round(time.monotonic() - started, 1)}


def _spread(c: dict) -> str:
    seeds = ", ".join(f"{s['ratio']:.3f}" for s in c["per_seed"])
    return f"{c['ratio_min']:.3f} - {c['ratio_max']:.3f} ({seeds})"


def markdown(r: dict) -> list[str]:
    from mlplatform.training import xgboost_trainer

    L = ["", "## Training recipe vs library defaults", ""]
    if r.get("status") != "ok":
        return L + [str(r.get("status", "not run")), ""]
    rk, cl = r["ranking"], r["classification"]
    L += ["`bench/recipe_bench.py`: the platform's recipe (the tenant file's model section, its tuning included, "
          "trained by the tenant's trainer with a validation split for its own choices) against the library "
          "with default parameters fitted on the same training rows, both scored on the same test rows. "
          f"Ratio = recipe / default, per seed; each cell gives the median over seeds and the spread (min - max, "
          f"then every seed). Target: {r['target']}. Met: **{r['target_met']}**.", "",
          f"**Ranking** (NDCG@10 on {rk['test_queries']} test queries; LETOR-shaped files, {rk['features']} features, "
          f"{rk['docs_per_query'][0]}-{rk['docs_per_query'][1]} documents per query; relevance noise sd "
          f"{', '.join(f'{k} {v}' for k, v in rk['noise_sd'].items())}; a cell's queries are 80% training, 20% "
          "validation). Recipe: the tenant `tenant new --from-letor` writes (Ray Tune search); default: "
          "`LGBMRanker()`.", "",
          "The last column counts the seeds where the search found no evidence against its baseline (LightGBM's "
          "defaults, 100 rounds) and trained it: a ratio of exactly 1.000 there is the recipe being the defaults.", "",
          "| queries | noise | median ratio | spread over seeds | recipe NDCG@10 (mean) | default NDCG@10 (mean) | "
          "recipe s / default s (mean) | defaults kept |", "|---|---|---|---|---|---|---|---|"]
    for c in rk["cells"]:
        kept = sum(1 for s in c["per_seed"] if "rounds" in (s.get("selected") or {}))
        L.append(_row(f"{c['queries']:,} | {c['noise']}", c) + f" {kept} of {len(c['per_seed'])} |")
    sim = cl["simulation"]
    L += ["", f"**Classification** (PR-AUC on {cl['test_rows']:,} test rows at the cell's positive rate, from the "
          f"last {sim['test_days']} days of a {sim['days']}-day fraud simulation of {sim['customers']:,} cards; a "
          "cell's rows are drawn from the days before, the newest 20% the validation window). Recipe: the fraud "
          "tenant's model section; default: `XGBClassifier()`. The last column counts the seeds whose validation "
          "window held too few positives to choose the rounds on (`model.split.min_validation_positives`), so the "
          "recipe chose them over time folds; with fewer than "
          f"{xgboost_trainer.AUTO_WEIGHT_BELOW} training positives it also weighs positives by the class ratio "
          "(`imbalance: auto`). A default fit does neither.", "",
          "| rows | positive rate | median ratio | spread over seeds | recipe PR-AUC (mean) | default PR-AUC (mean) | "
          "recipe s / default s (mean) | rounds over time folds |", "|---|---|---|---|---|---|---|---|"]
    for c in cl["cells"]:
        folds = sum(1 for s in c["per_seed"] if (s.get("selection") or {}).get("rule") == "time folds")
        L.append(_row(f"{c['rows']:,} | {c['rate']:.1%}", c) + f" {folds} of {len(c['per_seed'])} |")
    return L + [""]


def _row(head: str, c: dict) -> str:
    mean = lambda key: float(np.mean([s[key] for s in c["per_seed"]]))  # noqa: E731
    mark = "**" if c["ratio_median"] < 1.0 else ""
    return (f"| {head} | {mark}{c['ratio_median']:.3f}{mark} | {_spread(c)} | {mean('recipe'):.4f} | "
            f"{mean('default'):.4f} | {mean('recipe_s'):.1f} / {mean('default_s'):.1f} |")


def main(argv: list[str] | None = None) -> int:
    return section_main("bench.recipe_bench", run, argv)


if __name__ == "__main__":
    import sys

    sys.exit(main())
