"""The arithmetic of the review: bootstrap intervals, A/B sample sizes, capacity. Pure functions.

statsmodels is not in the lock; the A/B sizes use the closed-form normal approximation
(two-sided test, equal arms), which is what statsmodels' NormalIndPower computes for proportions
after Cohen's h, to within rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.stats import norm

BOOTSTRAP_SAMPLES = 200  # enough for a 95% interval's second digit; the report says how many
UTILISATION = 0.6  # the share of a core a replica is sized to use at peak (headroom for bursts, GC)


def bootstrap_ci(units: int, statistic: Callable[[np.ndarray], float], *, samples: int = BOOTSTRAP_SAMPLES,
                 seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of `statistic(indices)` over `samples` resamples of range(units) with
    replacement (units: validation rows, or queries for ranking). Resamples where the statistic is
    undefined (NaN, e.g. one class only) are dropped."""
    if units < 2:
        raise ValueError(f"bootstrap needs at least 2 units, got {units}")
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, units, units)) for _ in range(samples)], dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) < samples // 2:
        raise ValueError(f"the statistic was undefined on {samples - len(values)} of {samples} resamples")
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def _z(alpha: float, power: float) -> float:
    return float(norm.ppf(1 - alpha / 2) + norm.ppf(power))


def sample_size_proportion(p: float, relative_mde: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Units per arm to detect p -> p(1 + relative_mde) (two-sided, pooled normal approximation)."""
    if not 0 < p < 1:
        raise ValueError(f"baseline rate must be in (0, 1), got {p}")
    p2 = p * (1 + relative_mde)
    if not 0 < p2 < 1:
        raise ValueError(f"baseline {p} with effect {relative_mde:+.0%} leaves (0, 1)")
    var = p * (1 - p) + p2 * (1 - p2)
    return math.ceil(_z(alpha, power) ** 2 * var / (p2 - p) ** 2)


def sample_size_mean(std: float, delta: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Units per arm to detect a change `delta` in a mean with per-unit standard deviation `std`."""
    if std <= 0 or delta == 0:
        raise ValueError(f"need std > 0 and delta != 0, got std={std}, delta={delta}")
    return math.ceil(2 * _z(alpha, power) ** 2 * std ** 2 / delta ** 2)


def cpu_quantity(q: str) -> float:
    """Kubernetes CPU quantity -> cores ('250m' -> 0.25, '2' -> 2.0)."""
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


def capacity(cpu_ms_per_request: float, rps: float, cores_per_replica: float,
             utilisation: float = UTILISATION) -> dict[str, float]:
    """Cores and replicas to serve `rps` when each request costs `cpu_ms_per_request` of CPU and a
    replica may use `utilisation` of its cores."""
    if cpu_ms_per_request <= 0 or rps <= 0 or cores_per_replica <= 0 or not 0 < utilisation <= 1:
        raise ValueError("capacity needs positive CPU ms, rate, cores per replica and 0 < utilisation <= 1")
    cores = rps * cpu_ms_per_request / 1000 / utilisation
    return {"rps": rps, "cores": round(cores, 2), "replicas": math.ceil(cores / cores_per_replica)}


def gib(n_bytes: float) -> str:
    """A byte count as GiB (MiB below one GiB), for memory estimates."""
    return f"{n_bytes / 2**30:,.1f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:,.0f} MiB"
