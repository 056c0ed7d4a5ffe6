"""A small, bounded Ray Tune search that both trainers share (`model.tune` in the tenant file).

Random search over `model.tune.space` (two integer bounds: a random integer; otherwise uniform),
`num_samples` trials, seeded (`seed`), optionally cut at `time_budget_s`. Each trial trains in
process on one CPU and scores the validation rows in `folds` folds (the trainer decides the folds:
interleaved rows, or whole queries); the rule that picks the configuration is noise-aware: the
highest lower bound `mean - standard error` over the folds, so a configuration that won on one lucky
slice of a small validation set does not beat one that is good on all of them. An optional
`baseline` configuration (the library's defaults, say) is scored the same way beside the search and
kept unless the best trial's lower bound exceeds the baseline's mean: the search departs from it only
on evidence, since on small, noisy validation sets the best of a few random trials is mostly the
luckiest. Every trial and the selected one go to the MLflow run (`tune_trials.json`, mlflow_log.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mlplatform.config import TenantConfig

ROUNDS = "rounds"  # in a trial's configuration (the baseline's): exactly that many rounds, no early stopping
RESULT_KEYS = ("mean", "se", "lower", "folds", "rounds")


def param_space(space: dict[str, list]) -> dict[str, Any]:
    from ray import tune

    out: dict[str, Any] = {}
    for name, (low, high) in space.items():
        if isinstance(low, int) and isinstance(high, int):
            out[name] = tune.randint(low, high + 1)  # upper bound exclusive in Tune
        else:
            out[name] = tune.uniform(float(low), float(high))
    return out


def fold_score(scores: list[float]) -> dict[str, Any]:
    """A trial's result: its folds' scores, their mean, and the lower bound the rule selects on."""
    folds = [float(s) for s in scores]
    mean = float(np.mean(folds))
    se = float(np.std(folds, ddof=1) / math.sqrt(len(folds))) if len(folds) > 1 else 0.0
    return {"mean": mean, "se": se, "lower": mean - se, "folds": folds}


def split_rounds(config: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """A trial's configuration as library parameters, and its fixed number of rounds if it has one."""
    params = dict(config)
    rounds = params.pop(ROUNDS, None)
    return params, int(rounds) if rounds is not None else None


def select(trials: list[dict]) -> dict:
    """The trial with the highest lower bound (mean - standard error), the earlier on a tie; with a
    `baseline` trial, the baseline unless that lower bound exceeds the baseline's mean."""
    best = max(trials, key=lambda t: t["lower"])
    base = next((t for t in trials if t.get("baseline")), None)
    return base if base is not None and best["lower"] <= base["mean"] else best


def search(cfg: TenantConfig, trial: Callable[[dict], dict], storage: Path,
           metric: str) -> tuple[dict[str, Any], list[dict]]:
    """Runs the search; returns the selected configuration and every trial (config, `metric` per
    fold, mean, lower bound, `selected`, and `rounds` when the trial chose them). `trial(config)`
    returns `fold_score(...)`, optionally with `rounds`; the baseline runs as a Ray task."""
    import ray
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    t = cfg.model.tune
    tuner = tune.Tuner(
        tune.with_resources(trial, {"cpu": 1}),
        param_space=param_space(t.space),
        tune_config=tune.TuneConfig(num_samples=t.num_samples, metric="lower", mode="max",
                                    time_budget_s=t.time_budget_s,
                                    search_alg=BasicVariantGenerator(random_state=t.seed)),
        run_config=tune.RunConfig(name=f"{cfg.name}-tune", storage_path=str(storage), verbose=0),
    )
    grid = tuner.fit()
    trials = [{"config": dict(r.config), "metric": metric, **{k: r.metrics[k] for k in RESULT_KEYS if k in r.metrics}}
              for r in grid if r.metrics and "lower" in r.metrics]
    if not trials:
        errors = [str(r.error) for r in grid if r.error]
        raise RuntimeError(f"tenant {cfg.name!r}: no Ray Tune trial finished ({len(errors)} failed): "
                           f"{errors[:1]}")
    trials.sort(key=lambda tr: sorted(tr["config"].items()))
    if t.baseline:
        result = ray.get(ray.remote(num_cpus=1)(trial).remote(dict(t.baseline)))
        trials.append({"config": dict(t.baseline), "metric": metric, "baseline": True,
                       **{k: result[k] for k in RESULT_KEYS if k in result}})
    best = select(trials)
    for tr in trials:
        tr["selected"] = tr is best
    return dict(best["config"]), trials
