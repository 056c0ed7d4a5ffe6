"""One model across `model.ray.num_workers` Ray Train workers: what both trainers share.

- Ray: a local Ray sized by the tenant file, or the KubeRay cluster of a RayJob (`ensure_ray`), and
  the CPUs (so training threads) a worker reserves (`worker_cpus`).
- Shards: each worker's training rows through the object store (`put_shards`): contiguous row ranges
  for classification (`row_shards`), whole queries for ranking (`group_shards`). The validation set
  goes whole to every worker, so each computes the same metric and early stopping stops every worker
  at the same round (a worker that stopped alone would leave the others waiting in the collective).
- Manifests: every worker writes what it trained on (rows and an order-free hash of them) into the
  checkpoint it reports; the driver checks that the shards are disjoint and add up to the training
  set (`check_manifests`) before it accepts the model rank 0 saved.
- Rounds: the model keeps early stopping's best rounds, but at least `model.min_boost_rounds`
  (`kept_rounds`).
- Failure: no retries (`run_config`): a worker that dies fails the fit, raised as
  `WorkerGroupFailed` naming the tenant, the group size and Ray's cause; never a partial model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlplatform.config import TenantConfig

MANIFEST = "worker-{rank}.json"

# Ray Train v2 settings for a local, one-machine Ray. The driver's environment reaches the train
# controller and its workers (ray.train.v2 ENV_VARS_TO_PROPAGATE), so set them before a fit starts.
LOCAL_RAY_TRAIN_ENV = {
    # the controller sees the finished worker group (or a dead worker) on its next poll: 2 s apart by default
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
    # a PreemptionWatcher actor (one more Python process per fit) waits for node drains: none here
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
}


class WorkerGroupFailed(RuntimeError):
    """A Ray Train fit failed (a worker died or raised): no model was produced."""


class ShardMismatch(RuntimeError):
    """The workers' shards are not the training set split once (rows missing, repeated or altered)."""


def worker_cpus(cfg: TenantConfig) -> int:
    """CPUs a Ray Train worker reserves, and so its training threads: Ray sets a worker's
    OMP_NUM_THREADS to its CPU count and xgboost caps `nthread` by it (with 1 CPU the worker trained
    on one thread whatever `nthread` said)."""
    if os.environ.get("RAY_ADDRESS"):  # a RayJob: every worker pod starts Ray with num_cpus (rayjob.py)
        return cfg.model.ray.num_cpus
    return max(1, cfg.model.ray.num_cpus // cfg.model.ray.num_workers)  # local: one Ray of num_cpus


def ensure_ray(cfg: TenantConfig) -> None:
    import ray

    in_ray_job = bool(os.environ.get("RAY_ADDRESS"))  # inside a RayJob: join the KubeRay cluster as it is
    if not in_ray_job:
        for key, value in LOCAL_RAY_TRAIN_ENV.items():
            os.environ.setdefault(key, value)
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if in_ray_job:
            ray.init(log_to_driver=False, configure_logging=False)
        else:  # local Ray: cores from the tenant file, no dashboard, quiet workers
            ray.init(num_cpus=cfg.model.ray.num_cpus, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)


def put_shards(parts: list) -> list:
    """One object-store entry per Ray Train worker; worker `rank` reads `refs[rank]`.

    Used instead of Ray Data (`datasets=`): each dataset there costs a SplitCoordinator actor (a new
    Python process, 2-4 s on 2 cores) plus a streaming execution and a pandas round trip per fit,
    and the loop needs its whole shard in memory anyway. Numpy arrays come back from `ray.get`
    without a copy; on a KubeRay cluster each node pulls only its workers' shards.
    """
    import ray

    return [ray.put(part) for part in parts]


def row_arrays(df: pd.DataFrame, feats: list[str], label: str) -> dict[str, np.ndarray]:
    """Float32 features (what a DMatrix holds) and labels."""
    return {"x": df[feats].to_numpy(np.float32, na_value=np.nan), "y": df[label].to_numpy(np.float32)}


def row_shards(rows: dict[str, np.ndarray], n: int) -> list[dict[str, np.ndarray]]:
    """`n` contiguous row ranges of `row_arrays` (views, no copy)."""
    bounds = np.linspace(0, len(rows["y"]), n + 1).astype(int)
    return [{"x": rows["x"][a:b], "y": rows["y"][a:b]} for a, b in zip(bounds[:-1], bounds[1:])]


def group_shards(frame: pd.DataFrame, group: str, n: int) -> list[pd.DataFrame]:
    """`n` shards of whole queries (query g goes to worker g % n, g a dense int id): a query split
    between workers would be ranked as two smaller ones."""
    if n == 1:
        return [frame]
    worker = frame[group].to_numpy() % n
    return [frame[worker == i] for i in range(n)]


def fingerprint(frame: pd.DataFrame) -> dict[str, int]:
    """Rows and the sum (mod 2**64) of one hash per row: the sum over shards equals the whole
    table's exactly when, rows counted, each row landed once (a multiset hash)."""
    hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy(np.uint64)
    return {"rows": len(frame), "hash": int(hashes.sum(dtype=np.uint64))}


def array_frame(rows: dict[str, np.ndarray]) -> pd.DataFrame:
    """`row_arrays` (or a shard of them) as a frame to fingerprint: features then the label."""
    return pd.DataFrame(rows["x"]).assign(label=rows["y"])


def write_manifest(directory: str | Path, rank: int, train: dict[str, int], valid: dict[str, int]) -> None:
    """The worker's part of the checkpoint: Ray Train v2 gives every rank's report the same checkpoint
    directory (ray/train/v2/_internal/execution/context.py, `_sync_checkpoint_dir_name_across_ranks`),
    so each rank adds its own file next to the model rank 0 writes."""
    Path(directory, MANIFEST.format(rank=rank)).write_text(json.dumps({"rank": rank, "train": train, "valid": valid}))


def check_manifests(directory: str | Path, workers: int, train: dict[str, int], valid: dict[str, int]) -> list[dict]:
    """Every worker's manifest, by rank, once checked: `workers` of them, disjoint training shards
    whose union is `train` (fingerprint of the whole training set), and all of `valid` on each."""
    found = sorted(Path(directory).glob(MANIFEST.format(rank="*")))
    manifests = sorted((json.loads(p.read_text()) for p in found), key=lambda m: m["rank"])
    if [m["rank"] for m in manifests] != list(range(workers)):
        raise ShardMismatch(f"expected manifests from ranks 0..{workers - 1}, got {[m['rank'] for m in manifests]}")
    rows = sum(m["train"]["rows"] for m in manifests)
    digest = sum(m["train"]["hash"] for m in manifests) % 2**64
    if (rows, digest) != (train["rows"], train["hash"]):
        raise ShardMismatch(f"the workers trained on {rows} rows ({[m['train']['rows'] for m in manifests]}) that "
                            f"are not the {train['rows']} training rows split once")
    partial = [m["rank"] for m in manifests if m["valid"] != valid]
    if partial:
        raise ShardMismatch(f"workers {partial} did not see the whole validation set ({valid['rows']} rows)")
    return manifests


def kept_rounds(cfg: TenantConfig, best_rounds: int, trained_rounds: int) -> int:
    """Rounds the model keeps: early stopping's best, but at least `model.min_boost_rounds` of those
    trained (a validation window with one positive peaked at round 1 and left a one-tree model)."""
    return max(best_rounds, min(cfg.model.min_boost_rounds, trained_rounds))


def run_config(cfg: TenantConfig, storage: Path, name: str):
    """Where the fit writes (checkpoints, manifests) and how it fails: at once. max_failures=0: a worker
    that dies while training fails the fit. controller_failure_limit=0: so does one that dies while
    the group starts (Ray's default, -1, restarts the whole group forever: measured, a worker killed
    during start-up was replaced and the fit ran on as if nothing had happened). The loop keeps no
    mid-fit checkpoint to resume from, so a retry would be the pipeline's to decide."""
    from ray.train import FailureConfig, RunConfig

    return RunConfig(name=f"{cfg.name}-{name}", storage_path=str(storage),
                     failure_config=FailureConfig(max_failures=0, controller_failure_limit=0))


def fit(trainer: Any, cfg: TenantConfig) -> Any:
    """`trainer.fit()`, a failed worker group raised as WorkerGroupFailed with Ray's cause."""
    from ray.train import TrainingFailedError

    try:
        return trainer.fit()
    except TrainingFailedError as err:
        raise WorkerGroupFailed(f"tenant {cfg.name!r}: training on {cfg.model.ray.num_workers} Ray Train "
                                f"worker(s) failed, no model was produced: {err}") from err
