"""Drift against the training distribution: a reference, streaming histograms, PSI and KS.

Reference (`DriftReference`, logged with every model as MLflow artifact `drift/reference.json`):
for each model input and for the score, interior bin edges at the training data's quantiles
(`drift.bins` bins; duplicate edges of discrete features collapse, so a 0/1 flag gets 2 bins) and
the share of training rows in each bin. Bins are (-inf, e1], (e1, e2], ..., (ek, +inf) plus one
bin for missing values (NaN), so a column that suddenly goes null drifts too.

PSI  = sum over bins (cur - ref) * ln(cur / ref), shares clipped at 1e-4 so empty bins stay finite.
       Rule of thumb: < 0.1 stable, 0.1-0.2 moderate, > 0.2 a real shift (drift.psi_threshold).
KS   = max over the shared edges of |CDF_ref - CDF_cur| on the non-missing values: the
       Kolmogorov-Smirnov statistic evaluated at the bin edges (a lower bound of the exact one,
       exact at the edges). Reported for continuous columns only (more distinct training values
       than 2 x bins); NaN otherwise.

Binning is vectorised: one row of F features is compared against a padded (F x max_edges) edge
matrix in one numpy call, so the per-request cost does not grow with a Python loop over features.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

EPS = 1e-4
SCORE = "score"  # the feature label of the score's drift


@dataclass
class DriftReference:
    names: list[str]
    edges: list[np.ndarray]  # interior edges per column, strictly increasing
    proportions: list[np.ndarray]  # len(edges) + 2: the bins, then the missing-value bin
    continuous: list[bool]
    rows: int
    bins: int

    # --- construction -----------------------------------------------------------------------------

    @classmethod
    def build(cls, columns: dict[str, Any], bins: int = 10) -> "DriftReference":
        """Reference from training columns (name -> values; include the scores as 'score')."""
        names, edges, props, cont = [], [], [], []
        rows = 0
        for name, values in columns.items():
            x = np.asarray(values, dtype=np.float64).ravel()
            rows = max(rows, x.size)
            finite = x[~np.isnan(x)]
            if finite.size:
                qs = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])
                e = np.unique(qs)
                distinct = np.unique(finite[: 200_000]).size
            else:
                e, distinct = np.empty(0), 0
            names.append(name)
            edges.append(e)
            counts = bin_counts(x, e)
            props.append(counts / max(counts.sum(), 1))
            cont.append(bool(distinct > 2 * bins))
        return cls(names, edges, props, cont, rows, bins)

    def to_dict(self) -> dict[str, Any]:
        return {"bins": self.bins, "rows": self.rows, "features": {
            n: {"edges": e.tolist(), "proportions": p.tolist(), "continuous": c}
            for n, e, p, c in zip(self.names, self.edges, self.proportions, self.continuous)}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DriftReference":
        feats = d["features"]
        names = list(feats)
        edges = [np.asarray(feats[n]["edges"], dtype=np.float64) for n in names]
        props = [np.asarray(feats[n]["proportions"], dtype=np.float64) for n in names]
        for n, e, p in zip(names, edges, props):
            if p.size != e.size + 2 or (e.size > 1 and np.any(np.diff(e) <= 0)):
                raise ValueError(f"drift reference: column {n!r} has {e.size} edges and {p.size} proportions")
        return cls(names, edges, props, [bool(feats[n]["continuous"]) for n in names], int(d["rows"]), int(d["bins"]))

    @classmethod
    def from_json(cls, text: str) -> "DriftReference":
        return cls.from_dict(json.loads(text))

    def padded(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(edges F x E padded with +inf, reference shares F x (E + 2), nan bin index per column)."""
        width = max((e.size for e in self.edges), default=0)
        edges = np.full((len(self.names), width), np.inf)
        props = np.zeros((len(self.names), width + 2))
        for i, (e, p) in enumerate(zip(self.edges, self.proportions)):
            edges[i, : e.size] = e
            props[i, : e.size + 1] = p[:-1]
            props[i, width + 1] = p[-1]  # the missing-value bin is always the last column
        return edges, props, np.full(len(self.names), width + 1)


def bin_counts(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin for one column: len(edges) + 1 value bins, then the missing-value bin."""
    x = np.asarray(x, dtype=np.float64)
    nan = np.isnan(x)
    idx = np.searchsorted(edges, x[~nan], side="left")  # number of edges strictly below the value
    counts = np.bincount(idx, minlength=edges.size + 1).astype(np.float64)
    return np.append(counts, nan.sum())


# --- statistics on shares ---------------------------------------------------------------------------


def psi(ref: np.ndarray, cur: np.ndarray, axis: int = -1) -> np.ndarray:
    """Population stability index between two share vectors (or matrices, per row)."""
    r = np.clip(ref, EPS, None)
    c = np.clip(cur, EPS, None)
    both_empty = (ref <= 0) & (cur <= 0)  # padding bins: no contribution
    terms = np.where(both_empty, 0.0, (c - r) * np.log(c / r))
    return terms.sum(axis=axis)


def ks_from_hist(ref_counts: np.ndarray, cur_counts: np.ndarray, axis: int = -1) -> np.ndarray:
    """Max |CDF difference| over the shared edges; the inputs exclude the missing-value bin."""
    rs = ref_counts.sum(axis=axis, keepdims=True)
    cs = cur_counts.sum(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rc = np.cumsum(ref_counts, axis=axis) / rs
        cc = np.cumsum(cur_counts, axis=axis) / cs
    out = np.abs(rc - cc).max(axis=axis)
    return np.where((rs.squeeze(axis) > 0) & (cs.squeeze(axis) > 0), out, np.nan)


def psi_ks_from_counts(reference: DriftReference, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PSI and KS per column from padded counts (F x (E + 2), layout of `reference.padded()`)."""
    _, ref, _ = reference.padded()
    total = counts.sum(axis=1, keepdims=True)
    cur = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    p = psi(ref, cur)
    k = ks_from_hist(ref[:, :-1], counts[:, :-1])
    k = np.where(np.asarray(reference.continuous), k, np.nan)
    p = np.where(total[:, 0] > 0, p, np.nan)
    return p, k


def psi_ks(reference: DriftReference, current, names: Iterable[str] | None = None) -> dict[str, dict[str, float]]:
    """Batch drift: PSI and KS of each reference column for a matrix (rows x columns) or DataFrame.

    A matrix's columns are `names` (default: the reference's order). One searchsorted + bincount
    per column: 1M rows x 30 columns in well under 5 s on one core (bench/drift_bench.py).
    """
    names = list(names) if names is not None else list(reference.names)
    if hasattr(current, "columns"):  # a DataFrame
        matrix = None
        get = lambda j: current[names[j]].to_numpy(dtype=np.float64)  # noqa: E731
    else:
        matrix = np.asarray(current, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(names):
            raise ValueError(f"expected a (rows x {len(names)}) matrix, got shape {matrix.shape}")
        get = lambda j: matrix[:, j]  # noqa: E731
    pos = {n: i for i, n in enumerate(reference.names)}
    edges, _, _ = reference.padded()
    counts = np.zeros((len(reference.names), edges.shape[1] + 2))
    for j, name in enumerate(names):
        i = pos[name]
        c = bin_counts(get(j), reference.edges[i])
        counts[i, : c.size - 1] = c[:-1]
        counts[i, -1] = c[-1]
    seen = [pos[n] for n in names]
    p, k = psi_ks_from_counts(reference, counts)
    return {reference.names[i]: {"psi": float(p[i]), "ks": float(k[i])} for i in seen}


# --- streaming -----------------------------------------------------------------------------------


class StreamingHistograms:
    """Fixed-edge counts over a sliding window of recent rows, updated per request.

    Two generations of counts (current and previous); when the current one holds `window_rows`
    rows it becomes the previous one. Drift is computed over both, so it reflects the last
    `window_rows` to 2 x `window_rows` rows: old traffic does not dilute a new shift forever.
    """

    def __init__(self, reference: DriftReference, window_rows: int = 5000):
        self.reference = reference
        self.names = list(reference.names)
        self.edges, self.ref_props, _ = reference.padded()
        self.width = self.edges.shape[1] + 2
        self.nan_bin = self.width - 1
        self.window_rows = window_rows
        self._row_offsets = np.arange(len(self.names)) * self.width
        self.current = np.zeros(len(self.names) * self.width)
        self.previous = np.zeros_like(self.current)
        self.rows_current = 0
        self.total_rows = 0
        self._lock = threading.Lock()

    def update(self, matrix: np.ndarray) -> None:
        """Add rows (n x F, columns in `self.names` order; NaN = missing)."""
        x = np.asarray(matrix, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        idx = (x[:, :, None] > self.edges[None, :, :]).sum(axis=2)  # n x F: edges below the value
        idx[np.isnan(x)] = self.nan_bin
        flat = (idx + self._row_offsets).ravel()
        with self._lock:
            np.add.at(self.current, flat, 1.0)
            self.rows_current += x.shape[0]
            self.total_rows += x.shape[0]
            if self.rows_current >= self.window_rows:
                self.previous, self.current = self.current, np.zeros_like(self.current)
                self.rows_current = 0

    def counts(self) -> np.ndarray:
        """Window counts, F x (E + 2)."""
        with self._lock:
            return (self.current + self.previous).reshape(len(self.names), self.width)

    def window_size(self) -> int:
        return int(self.counts()[0].sum()) if self.names else 0

    def psi_ks(self) -> tuple[np.ndarray, np.ndarray]:
        return psi_ks_from_counts(self.reference, self.counts())


DRIFT_REFERENCE_ARTIFACT = "drift/reference.json"  # MLflow run artifact, next to the model


def drift_reference(cfg, frame, scores) -> DriftReference:
    """The reference of a tenant's model: its inputs (`model.features`) and scores, `drift.bins` bins."""
    cols: dict[str, Any] = {f: frame[f].to_numpy(dtype=np.float64, na_value=np.nan) for f in cfg.model.features}
    cols[SCORE] = np.asarray(scores, dtype=np.float64)
    return DriftReference.build(cols, bins=cfg.drift.bins)


def load_reference(run_id: str, tracking_uri: str | None = None) -> DriftReference | None:
    """The reference logged with an MLflow run, or None when the run has none (an older model)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{DRIFT_REFERENCE_ARTIFACT}")
    except (MlflowException, OSError):
        return None
    return DriftReference.from_json(text)
