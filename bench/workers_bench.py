"""Ray Train workers: the same model on 1 and on 2 workers, beside the library in one process.

Two trainers: xgboost on rows in the fraud tenant's schema (500k training rows in full mode) and
LightGBM lambdarank on queries in the search tenant's schema. Seeded synthetic rows with signal,
one fit each way per repeat, interleaved so all three see the same background load, each evaluating
the validation rows every round as the trainers do; time (the whole `train` call: shards, Ray Train
start-up, fit, checkpoint) and the validation metric (ROC-AUC, NDCG@10) per way. On a 2-core machine two workers cannot be faster than
one: they share the same cores, and add the collective's coordination; the figure is that cost.

    python -m bench.workers_bench [--quick] [--json F]
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from bench.common import REPO, median, section_main

SEARCH = REPO / "examples" / "search" / "tenant.yaml"
FRAUD = REPO / "examples" / "fraud" / "tenant.yaml"


def _cfg(path: Path, workers: int, rounds: int):
    from mlplatform.config import TenantConfig

    raw = copy.deepcopy(yaml.safe_load(path.read_text()))
    raw["model"]["ray"] = {"num_cpus": 2, "num_workers": workers}
    raw["model"]["num_boost_round"], raw["model"]["early_stopping_rounds"] = rounds, None  # same rounds every way
    raw["model"]["tune"] = {"enabled": False}  # the fit alone
    return TenantConfig.model_validate(raw)


def fraud_rows(cfg, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(cfg.model.features)))
    df = pd.DataFrame(x, columns=cfg.model.features)
    df[cfg.data.label] = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(size=n) > 2.5).astype(np.int64)
    return df


def search_rows(cfg, queries: int, seed: int, docs: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = queries * docs
    x = rng.normal(size=(n, len(cfg.model.features)))
    df = pd.DataFrame(x, columns=cfg.model.features)
    df[cfg.ranking.group] = np.repeat(np.arange(queries), docs).astype(str)
    df[cfg.data.label] = np.clip(np.round(x[:, 0] + 0.5 * x[:, 2] + rng.normal(scale=0.8, size=n) + 1), 0, 4)
    return df


def _direct_xgboost(cfg, tr, va):
    import xgboost

    from mlplatform.training import xgboost_trainer

    feats, label = cfg.model.features, cfg.data.label
    dvalid = xgboost.DMatrix(va[feats], label=va[label])
    model = xgboost.train(xgboost_trainer.base_params(cfg, tr), xgboost.DMatrix(tr[feats], label=tr[label]),
                          num_boost_round=cfg.model.num_boost_round, evals=[(dvalid, "valid")],  # as the trainer
                          verbose_eval=False)
    return model.predict(dvalid)


def _direct_lightgbm(cfg, tr, va):
    import lightgbm

    from mlplatform.training import lightgbm_ranker as lr

    feats, label = cfg.model.features, cfg.data.label
    dtrain = lr._dataset(lr._frame(cfg, tr), feats, label)
    model = lightgbm.train(lr.base_params(cfg), dtrain, num_boost_round=cfg.model.num_boost_round,
                           valid_sets=[lr._dataset(lr._frame(cfg, va), feats, label, reference=dtrain)])  # as the trainer
    return model.predict(va[cfg.model.features].to_numpy(np.float64))


def _score(task: str, cfg, va, scores) -> float:
    if task == "xgboost":
        from sklearn.metrics import roc_auc_score

        return round(float(roc_auc_score(va[cfg.data.label], scores)), 4)
    from mlplatform.ranking.metrics import ranking_metrics

    return round(ranking_metrics(va[cfg.data.label], scores, va[cfg.ranking.group], [10])["ndcg_at_10"], 4)


def _case(task: str, sizes: dict, repeats: int, storage: Path) -> dict:
    from mlplatform.training import lightgbm_ranker, xgboost_trainer

    path, trainer, direct = ((FRAUD, xgboost_trainer, _direct_xgboost) if task == "xgboost"
                             else (SEARCH, lightgbm_ranker, _direct_lightgbm))
    cfgs = {w: _cfg(path, w, sizes["rounds"]) for w in (1, 2)}
    make = fraud_rows if task == "xgboost" else search_rows
    tr, va = make(cfgs[1], sizes["train"], 0), make(cfgs[1], sizes["valid"], 1)
    ways: dict[str, dict] = {"direct": {"s": []}, "ray_1": {"s": []}, "ray_2": {"s": []}}
    for _ in range(repeats):
        t = time.perf_counter()
        scores = direct(cfgs[1], tr, va)
        ways["direct"]["s"].append(time.perf_counter() - t)
        ways["direct"]["metric"] = _score(task, cfgs[1], va, scores)
        for w in (1, 2):
            t = time.perf_counter()
            trained = trainer.train(cfgs[w], tr, va, storage)
            ways[f"ray_{w}"]["s"].append(time.perf_counter() - t)
            ways[f"ray_{w}"]["metric"] = _score(task, cfgs[w], va, trainer.predict(trained.model, va))
    out = {k: {"seconds": median(v["s"]), "all_s": [round(s, 2) for s in v["s"]], "metric": v["metric"]}
           for k, v in ways.items()}
    return {"train_rows": len(tr), "valid_rows": len(va), "rounds": sizes["rounds"], "repeats": repeats,
            "metric": "roc_auc" if task == "xgboost" else "ndcg_at_10", "ways": out,
            "two_vs_one": round(out["ray_2"]["seconds"] / out["ray_1"]["seconds"], 2)}


def run(p: dict, work: Path, quick: bool) -> dict:
    from mlplatform.training.distributed import ensure_ray

    sizes = ({"xgboost": {"train": 5_000, "valid": 1_000, "rounds": 20},
              "lightgbm": {"train": 100, "valid": 30, "rounds": 20}} if quick else
             {"xgboost": {"train": 500_000, "valid": 100_000, "rounds": 100},
              "lightgbm": {"train": 1_000, "valid": 200, "rounds": 100}})
    repeats = 1 if quick else 2
    ensure_ray(_cfg(FRAUD, 2, 10))
    storage = Path(tempfile.mkdtemp(prefix="bench-workers-", dir=work))
    try:
        return {"cases": {task: _case(task, s, repeats, storage) for task, s in sizes.items()}}
    finally:
        shutil.rmtree(storage, ignore_errors=True)


def markdown(w: dict) -> list[str]:
    if w.get("status", "ok") != "ok" or "cases" not in w:
        return ["## Ray Train workers (1 vs 2)", "", str(w.get("status", "not run")), ""]
    L = ["", "## Ray Train workers (1 vs 2)", "",
         "The same model trained on one Ray Train worker and on two (each holding half the training rows, "
         "joined by xgboost's collective or LightGBM's network), beside the library in one process; the same "
         "rounds every way (no early stopping). **On 2 cores two workers cannot be faster than one**: they "
         "share the same cores and add the coordination, which is what the `2 / 1` column measures. Workers "
         "are for data that no longer fits one machine.", "",
         "| trainer | training rows | rounds | direct s | 1 worker s | 2 workers s | 2 / 1 | metric: direct / 1 / 2 |",
         "|---|---|---|---|---|---|---|---|"]
    for task, c in w["cases"].items():
        ways = c["ways"]
        L.append(f"| {task} | {c['train_rows']:,} | {c['rounds']} | {ways['direct']['seconds']} | "
                 f"{ways['ray_1']['seconds']} | {ways['ray_2']['seconds']} | {c['two_vs_one']} | {c['metric']} "
                 f"{ways['direct']['metric']} / {ways['ray_1']['metric']} / {ways['ray_2']['metric']} |")
    return L


def main(argv: list[str] | None = None) -> int:
    return section_main("bench.workers_bench", run, argv)


if __name__ == "__main__":
    import sys

    sys.exit(main())
