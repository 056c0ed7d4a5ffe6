"""LETOR comparison: a ranking tenant scaffolded from LETOR files and trained by the platform vs.
LightGBM's `LGBMRanker()` with default parameters fitted on the same training file.

    python -m bench.letor_bench [--quick] [--json out.json]

The files are synthetic (no downloads): a seeded generator in the shape of MSLR-WEB / LETOR 4.0,
`label qid:Q 1:v ... N:v`, graded labels 0-4 skewed towards 0, a variable number of documents per
query, query-level shifts and scales of the features (feature values are not comparable across
queries, as BM25-like scores are not), noisy monotone and non-monotone views of a latent
relevance, a few interactions and thresholds, and pure-noise features.

Platform path: `scaffold_letor_tenant` (what `mlplatform tenant new NAME --from-letor TRAIN --valid V
--test T` calls), then the `train_deploy` steps (ingest, validate, features, train through Ray,
register): in quick mode in this process (`mlplatform.steps`, which the pipeline's components
wrap), in full mode as `mlplatform run` (kfp.local) in a subprocess. The figure is the
`test_ndcg_at_10` the platform's training step computes on the test file. Baseline: `LGBMRanker()`
fitted on the training file only (defaults: 100 trees, no early stopping), scored with the same
`mlplatform.ranking.metrics.ranking_metrics` on the same test rows. Target: platform >= baseline.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import REPO, section_main

NAME = "letor-bench"
K = 10
# label thresholds on the latent score: about 50% / 27% / 14% / 6% / 3% grades 0..4 (MSLR-WEB-like)
THRESHOLDS = [0.0, 0.85, 1.6, 2.3]
LABEL_NOISE = 0.45  # relevance noise (standard deviation) of the files this section writes
SIZES = {
    True: {"features": 40, "docs": (8, 25), "queries": {"train": 60, "vali": 20, "test": 30}, "seeds": [0]},
    False: {"features": 64, "docs": (15, 80), "queries": {"train": 400, "vali": 100, "test": 200},
            "seeds": [0, 1, 2]},
}


# --- the data -------------------------------------------------------------------------------------


def feature_structure(seed: int, n_features: int) -> dict:
    """What each feature is (fixed per data set, drawn from `seed`): signal views, transforms,
    interactions, noise. The splits of one data set share it."""
    rng = np.random.default_rng(10_000 + seed)
    perm = rng.permutation(n_features)  # signal features are scattered over the index range
    n_signal = max(4, n_features // 4)
    return {
        "signal": perm[:n_signal],
        "strength": rng.uniform(0.25, 1.2, n_signal),
        "transform": rng.integers(0, 4, n_signal),  # 0 identity, 1 exp, 2 log1p(abs), 3 count
        "pair": perm[n_signal:n_signal + 2],          # an interaction: relevance gets x_a * x_b
        "gate": perm[n_signal + 2],                   # a threshold feature: relevance +0.6 when > 1
        "bump": perm[n_signal + 3],                   # non-monotone: best near 0
        "scaled": perm[: n_features // 2],            # features shifted/scaled per query
    }


def generate(seed: int, queries: int, docs: tuple[int, int], n_features: int, qid_start: int = 0,
             structure: dict | None = None, noise: float = LABEL_NOISE) -> pd.DataFrame:
    """Rows of `queries` queries: label (0-4), qid, f1..fN. `noise`: the standard deviation of the
    relevance noise no feature sees (label noise; the latent signal's is about 1.2)."""
    rng = np.random.default_rng(seed)
    st = structure or feature_structure(seed, n_features)
    frames = []
    for q in range(queries):
        m = int(rng.integers(docs[0], docs[1] + 1))
        z = rng.normal(size=m)  # latent topical relevance
        x = rng.normal(size=(m, n_features))
        for j, w, t in zip(st["signal"], st["strength"], st["transform"]):
            v = w * z + rng.normal(size=m)
            x[:, j] = (v if t == 0 else np.exp(0.5 * v) if t == 1 else np.log1p(np.abs(v) * 3) * np.sign(v)
                       if t == 2 else rng.poisson(np.exp(0.4 * v + 0.5)))
        a, b = st["pair"]
        latent = (z + 0.45 * x[:, a] * x[:, b] + 0.6 * (x[:, st["gate"]] > 1.0)
                  - 0.35 * x[:, st["bump"]] ** 2 + rng.normal(0, noise, m))
        latent += rng.normal(0, 0.5) + 0.35  # query difficulty: some queries have few relevant documents
        labels = np.digitize(latent, THRESHOLDS)
        scale, shift = rng.lognormal(0, 0.5), rng.normal(0, 1.0)
        x[:, st["scaled"]] = x[:, st["scaled"]] * scale + shift
        frame = pd.DataFrame(np.round(x, 4), columns=[f"f{i}" for i in range(1, n_features + 1)])
        frame.insert(0, "qid", qid_start + q)
        frame.insert(0, "label", labels.astype(np.int64))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def write_files(folder: Path, seed: int, sizes: dict) -> dict[str, Path]:
    """train.txt, vali.txt, test.txt from one data set (same feature structure, disjoint queries)."""
    from mlplatform.ranking.letor import write_letor

    folder.mkdir(parents=True, exist_ok=True)
    n = sizes["features"]
    structure = feature_structure(seed, n)
    feats = [f"f{i}" for i in range(1, n + 1)]
    out, start = {}, 1
    for i, (split, queries) in enumerate(sizes["queries"].items()):
        df = generate(seed * 100 + i, queries, sizes["docs"], n, start, structure)
        start += queries
        out[split] = write_letor(df, folder / f"{split}.txt", feats)
    return out


# --- the two rankers ------------------------------------------------------------------------------


def baseline(files: dict[str, Path]) -> dict:
    """LGBMRanker() with default parameters on the training file; NDCG on the test file."""
    import lightgbm

    from mlplatform.ranking.letor import read_letor_set
    from mlplatform.ranking.metrics import group_sizes, ranking_metrics

    frame = read_letor_set(files["train"], files["vali"], files["test"])  # the platform's reader
    feats = [c for c in frame.columns if c.startswith("f") and c[1:].isdigit()]
    train, test = frame[frame["split"] == "train"], frame[frame["split"] == "test"]
    t = time.perf_counter()
    model = lightgbm.LGBMRanker(verbose=-1)  # defaults; verbose only silences the log
    model.fit(train[feats].to_numpy(), train["label"].to_numpy(), group=group_sizes(train["qid"].to_numpy()))
    seconds = time.perf_counter() - t
    scores = model.predict(test[feats].to_numpy())
    m = ranking_metrics(test["label"].to_numpy(), scores, test["qid"].to_numpy(), [1, 3, 5, K], relevant_min=1)
    return {"test_ndcg_at_10": m[f"ndcg_at_{K}"], "test_ndcg_at_5": m["ndcg_at_5"], "test_mrr": m["mrr"],
            "test_queries": m["queries"], "fit_seconds": round(seconds, 2), "trees": model.n_estimators,
            "params": "LGBMRanker() defaults (objective lambdarank, 100 trees, learning_rate 0.1, num_leaves 31)"}


def platform(tenant: Path, home: Path, run_id: str, cli: bool, work: Path) -> dict:
    from mlplatform.config import load_tenant
    from mlplatform.workspace import Workspace

    cfg, ws = load_tenant(tenant), Workspace(home.resolve())
    t = time.monotonic()
    if cli:  # the pipeline as a user runs it: kfp.local, one process per step
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLATFORM_", "MLFLOW_"))}
        env |= {"MLPLATFORM_HOME": str(home), "PYTHONUNBUFFERED": "1"}
        cli_bin = Path(sys.executable).with_name("mlplatform")
        cmd = [str(cli_bin)] if cli_bin.exists() else [sys.executable, "-m", "mlplatform.cli"]
        proc = subprocess.run([*cmd, "run", str(tenant), "--home", str(home), "--run-id", run_id], env=env,
                              cwd=work, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"mlplatform run: exit {proc.returncode}: {(proc.stdout + proc.stderr)[-2000:]}")
    else:
        from mlplatform import steps

        steps.run_all(tenant, home, run_id)
    seconds = time.monotonic() - t
    train = ws.read_step(cfg.name, run_id, "train")
    register = ws.read_step(cfg.name, run_id, "register")
    m = train["metrics"]
    return {"test_ndcg_at_10": m[f"test_ndcg_at_{K}"], "test_ndcg_at_5": m["test_ndcg_at_5"], "test_mrr": m["test_mrr"],
            "test_queries": m["test_queries"], "valid_ndcg_at_10": m[f"ndcg_at_{K}"],
            "train_step_seconds": train["seconds"],
            "pipeline_seconds": round(seconds, 1), "registered": register.get("aliases"),
            "params": cfg.model.params, "num_boost_round": cfg.model.num_boost_round,
            "early_stopping_rounds": cfg.model.early_stopping_rounds,
            "path": "mlplatform run (kfp.local)" if cli else "mlplatform.steps in process"}


# --- the benchmark --------------------------------------------------------------------------------


def run(p: dict, work: Path, quick: bool) -> dict:
    from mlplatform.scaffold import scaffold_letor_tenant

    sizes = SIZES[quick] | {k[6:]: v for k, v in p.items() if k.startswith("letor_")}
    base = Path(work) / "letor"
    per_seed = []
    for seed in sizes["seeds"]:
        folder = base / f"seed{seed}"
        files = write_files(folder / "files", seed, sizes)
        tenant = scaffold_letor_tenant(NAME, files["train"], files["vali"], files["test"],
                                       out_dir=folder / "tenants", overwrite=True)
        plat = platform(tenant, folder / "home", "bench", cli=not quick, work=folder)
        base_m = baseline(files)
        rows = sum(1 for _ in files["train"].open())
        per_seed.append({"seed": seed, "train_documents": rows, "platform": plat, "baseline": base_m,
                         "ratio": round(plat["test_ndcg_at_10"] / base_m["test_ndcg_at_10"], 4),
                         "delta": round(plat["test_ndcg_at_10"] - base_m["test_ndcg_at_10"], 4)})
    p_mean = float(np.mean([s["platform"]["test_ndcg_at_10"] for s in per_seed]))
    b_mean = float(np.mean([s["baseline"]["test_ndcg_at_10"] for s in per_seed]))
    return {
        "status": "ok",
        "data": {"generator": "seeded, MSLR-like shape",
                 "features": sizes["features"], "docs_per_query": list(sizes["docs"]),
                 "queries": sizes["queries"], "labels": "0-4", "seeds": sizes["seeds"]},
        "per_seed": per_seed,
        "platform_test_ndcg_at_10": round(p_mean, 4),
        "baseline_test_ndcg_at_10": round(b_mean, 4),
        "ratio": round(p_mean / b_mean, 4),
        "target": "platform NDCG@10 on the test file >= LGBMRanker() defaults trained on the same training file",
        "target_met": bool(p_mean >= b_mean),
        "target_met_every_seed": all(s["delta"] >= 0 for s in per_seed),
    }


def markdown(lt: dict) -> list[str]:
    L = ["## LETOR (a tenant from LETOR files vs. LightGBM lambdarank with default parameters)", ""]
    if lt.get("status") != "ok":
        return L + [str(lt.get("status")), ""]
    d = lt["data"]
    L += [f"`bench/letor_bench.py`: synthetic LETOR files ({d['generator']}, {d['features']} features, "
          f"{d['docs_per_query'][0]}-{d['docs_per_query'][1]} documents per query, labels {d['labels']}, queries "
          f"{d['queries']}). Platform: `mlplatform tenant new --from-letor` then the pipeline "
          f"({lt['per_seed'][0]['platform']['path']}); baseline: `LGBMRanker()` fitted on the training file. Both "
          f"scored by `mlplatform.ranking.metrics` on the test file. Target: {lt['target']}. "
          f"Met: **{lt['target_met']}** (every seed: {lt['target_met_every_seed']}).", "",
          "| seed | train docs | platform NDCG@10 | LGBMRanker() NDCG@10 | ratio | platform MRR / baseline MRR | "
          "pipeline s / baseline fit s |", "|---|---|---|---|---|---|---|"]
    for r in lt["per_seed"]:
        pl, bl = r["platform"], r["baseline"]
        L.append(f"| {r['seed']} | {r['train_documents']:,} | {pl['test_ndcg_at_10']:.4f} | {bl['test_ndcg_at_10']:.4f} | "
                 f"{r['ratio']} | {pl['test_mrr']:.3f} / {bl['test_mrr']:.3f} | {pl['pipeline_seconds']} / "
                 f"{bl['fit_seconds']} |")
    L += [f"| **mean** | | **{lt['platform_test_ndcg_at_10']}** | **{lt['baseline_test_ndcg_at_10']}** | "
          f"**{lt['ratio']}** | | |", ""]
    return L


def main(argv: list[str] | None = None) -> int:
    return section_main("bench.letor_bench", run, argv)


if __name__ == "__main__":
    sys.exit(main())
