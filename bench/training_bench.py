"""Training: Ray Train against the same xgboost training in one process, at several sizes, and the
start-up a fresh process (a pipeline step) pays for Ray.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from bench.common import REPO, TARGETS, median, pyplot, ratio


def run(tenant: Path, p: dict) -> dict:
    import xgboost

    from mlplatform.config import TenantConfig
    from mlplatform.training import xgboost_trainer

    raw = yaml.safe_load(Path(tenant).read_text())
    raw["model"]["num_boost_round"] = p["train_rounds"]
    raw["model"]["early_stopping_rounds"] = p["train_rounds"] + 1  # same number of rounds both ways
    cfg = TenantConfig.model_validate(raw)
    feats, label = cfg.model.features, cfg.data.label
    rng = np.random.default_rng(0)

    def frame(n):
        import pandas as pd

        x = rng.normal(size=(n, len(feats)))
        y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(size=n) > 2.5).astype(np.int64)
        df = pd.DataFrame(x, columns=feats)
        df[label] = y
        return df

    def ray_startup_s() -> float:
        """ray.init as a fresh process (a pipeline step) pays it; this process may run Ray already (an
        earlier section trained), where ensure_ray costs nothing. Imports are not counted."""
        code = ("import sys, time, yaml\n"
                "from mlplatform.config import TenantConfig\n"
                "from mlplatform.training import xgboost_trainer\n"
                "cfg = TenantConfig.model_validate(yaml.safe_load(open(sys.argv[1])))\n"
                "t = time.perf_counter()\n"
                "xgboost_trainer.ensure_ray(cfg)\n"
                "print(time.perf_counter() - t)\n")
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local Ray of its own
        out = subprocess.run([sys.executable, "-c", code, str(tenant)], capture_output=True, text=True,
                             check=True, timeout=300, env=env, cwd=REPO)
        return float(out.stdout.strip().splitlines()[-1])

    init_s = [ray_startup_s() for _ in range(p["train_repeats"])]
    xgboost_trainer.ensure_ray(cfg)  # here: already up if an earlier section trained
    storage = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    sizes = {}
    try:
        for n in p["train_sizes"]:
            tr, va = frame(n), frame(max(1000, n // 5))
            params = xgboost_trainer.base_params(cfg, tr)
            ray_s, direct_s = [], []
            for _ in range(p["train_repeats"]):  # interleaved: both see the same background load
                t = time.perf_counter()
                xgboost_trainer.train(cfg, tr, va, storage)
                ray_s.append(time.perf_counter() - t)
                t = time.perf_counter()
                xgboost.train(params, xgboost.DMatrix(tr[feats], label=tr[label]),
                              num_boost_round=cfg.model.num_boost_round,
                              evals=[(xgboost.DMatrix(va[feats], label=va[label]), "valid")],
                              early_stopping_rounds=cfg.model.early_stopping_rounds, verbose_eval=False)
                direct_s.append(time.perf_counter() - t)
            r, d = median(ray_s), median(direct_s)
            sizes[str(n)] = {"ray_s": r, "direct_s": d, "ratio": ratio(r, d), "overhead_s": round(r - d, 2),
                             "ray_all_s": [round(v, 2) for v in ray_s], "direct_all_s": [round(v, 2) for v in direct_s],
                             "repeats": len(ray_s)}
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    init = median(init_s)
    direct, ray_fit = [v["direct_s"] for v in sizes.values()], [v["ray_s"] for v in sizes.values()]
    if len(sizes) >= 2:  # Ray s = fixed per fit + slope x direct s, least squares over the sizes
        slope, fixed = (round(float(c), 2) for c in np.polyfit(direct, ray_fit, 1))
    else:
        slope, fixed = None, round(ray_fit[0] - direct[0], 2)
    startup = round(init + fixed, 2)  # what a fresh process (a pipeline step) pays before any data counts
    met = slope is not None and slope <= TARGETS["training_ratio"] and startup <= TARGETS["training_startup_s"]
    return {"ray_init_s": init, "ray_init_all_s": [round(v, 2) for v in init_s], "per_fit_fixed_s": fixed,
            "slope_vs_direct": slope, "fixed_startup_s": startup, "target_met": met,
            "rounds": cfg.model.num_boost_round, "features": len(feats), "workers": cfg.model.ray.num_workers,
            "nthread": params["nthread"], "sizes": sizes,
            "target": f"Ray <= {TARGETS['training_ratio']}x direct + fixed start-up <= {TARGETS['training_startup_s']} s"}


def markdown(t: dict, img_rel: str, images: list[str]) -> list[str]:
    L: list[str] = []
    if t.get("status", "ok") != "ok":  # skipped or failed: say so, keep the rest of the report
        return ["## Training", "", str(t['status']), ""]
    slope = t.get("slope_vs_direct")
    L += ["", "## Training (Ray Train vs. the same xgboost in one process)", "",
          f"{t['features']} features, {t['rounds']} rounds, {t['workers']} Ray worker(s), nthread {t['nthread']}. "
          f"Ray start-up (ray.init in a fresh process, paid once per process): {t['ray_init_s']} s. Per fit, "
          f"least squares over the sizes: Ray s = {t['per_fit_fixed_s']} s"
          + (f" + {slope} x direct s" if slope is not None else " + direct s (one size: no slope)") + ". "
          f"Fixed start-up (ray.init + per-fit fixed): {t['fixed_startup_s']} s. Target: {t['target']}: "
          f"**{'met' if t['target_met'] else 'not met'}**.", "",
          "| rows | Ray s | direct s | ratio | overhead s |", "|---|---|---|---|---|"]
    for n, v in t["sizes"].items():
        L.append(f"| {int(n):,} | {v['ray_s']} | {v['direct_s']} | {v['ratio']} | {v['overhead_s']} |")
    if "bench_training.png" in images:
        L += ["", f"![training time]({img_rel}/bench_training.png)"]
    return L


def plot(t: dict, img: Path) -> list[str]:
    """bench_training.png: Ray Train and xgboost direct, seconds by training rows."""
    if "sizes" not in t:
        return []
    plt = pyplot()
    n = list(t["sizes"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([int(k) for k in n], [t["sizes"][k]["ray_s"] for k in n], "o-", label="Ray Train")
    ax.plot([int(k) for k in n], [t["sizes"][k]["direct_s"] for k in n], "o-", label="xgboost direct")
    ax.set(xscale="log", xlabel="training rows", ylabel="seconds", title="training time")
    ax.legend()
    fig.tight_layout()
    fig.savefig(img / "bench_training.png", dpi=100)
    return ["bench_training.png"]
