"""What a predictor does for monitoring, per request: drift histograms and the prediction log.

`PredictionMonitor.for_model(cfg, ws, run_id, labels, log=...)` is called by the predictor's load():
- loads the model's drift reference (MLflow artifact `drift/reference.json` of the version's run);
  a model without one (or with an unreadable one) is served without drift gauges, which no drift
  alert could ever notice: `mlplatform_drift_reference_loaded` says 0 (monitoring/health.py),
  MLPlatformDriftReferenceMissing fires, and the reason is logged;
- registers a collector that computes `mlplatform_drift_psi` / `mlplatform_drift_ks`
  {tenant, model, version, role, feature} from the window counts *on scrape* (F x bins numbers:
  microseconds), so the request path only bins its rows;
- writes the prediction log the predictor opened (`monitoring/prediction_log.py`), if any.

`observe(inputs, names, scores, decisions, cols, headers)` takes the model's input matrix as the
predictor scored it (rows x names, float64), so binning a row is one column gather, not 17 column
reads out of a DataFrame.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily

from mlplatform.monitoring.drift import SCORE, DriftReference, StreamingHistograms, load_reference
from mlplatform.monitoring.health import health_metrics
from mlplatform.monitoring.prediction_log import PredictionLog, request_id

_log = logging.getLogger(__name__)  # `log` is the prediction log here
LABELS = ["tenant", "model", "version", "role", "feature"]


class DriftCollector:
    """Exports the drift of every live monitor in the process (one per served model)."""

    def __init__(self):
        self.monitors: list["PredictionMonitor"] = []
        self._lock = threading.Lock()

    def add(self, monitor: "PredictionMonitor") -> None:
        with self._lock:
            # a reloaded model replaces the monitor of the same tenant and role
            self.monitors = [m for m in self.monitors
                             if (m.labels["tenant"], m.labels["role"]) != (monitor.labels["tenant"], monitor.labels["role"])]
            self.monitors.append(monitor)

    def describe(self):  # no samples at registration: collect() would run before any model exists
        return []

    def collect(self):
        psi = GaugeMetricFamily("mlplatform_drift_psi", "Population stability index of a model input "
                                "(feature=score: the predicted score) against the training reference", labels=LABELS)
        ks = GaugeMetricFamily("mlplatform_drift_ks", "Kolmogorov-Smirnov statistic (at the reference bin edges) "
                               "of a continuous model input against the training reference", labels=LABELS)
        rows = GaugeMetricFamily("mlplatform_drift_window_rows", "Rows in the drift window",
                                 labels=LABELS[:-1])
        for m in list(self.monitors):
            if m.hist is None:
                continue
            base = [m.labels[k] for k in LABELS[:-1]]
            n = m.hist.window_size()
            rows.add_metric(base, n)
            if n < m.min_rows:
                continue
            p, k = m.hist.psi_ks()
            for name, pv, kv in zip(m.hist.names, p, k):
                psi.add_metric([*base, name], float(pv))
                if not np.isnan(kv):
                    ks.add_metric([*base, name], float(kv))
        yield psi
        yield ks
        yield rows


_COLLECTOR: DriftCollector | None = None


def drift_collector(registry=REGISTRY) -> DriftCollector:
    global _COLLECTOR
    if _COLLECTOR is None:
        _COLLECTOR = DriftCollector()
        registry.register(_COLLECTOR)
    return _COLLECTOR


class PredictionMonitor:
    def __init__(self, labels: dict[str, str], reference: DriftReference | None, log: PredictionLog | None,
                 window_rows: int = 5000, min_rows: int = 200):
        self.labels = dict(labels)
        self.reference = reference
        self.hist = StreamingHistograms(reference, window_rows) if reference is not None else None
        self.inputs = [n for n in reference.names if n != SCORE] if reference is not None else []
        self.score_pos = reference.names.index(SCORE) if reference is not None and SCORE in reference.names else None
        self.min_rows = min_rows
        self.log = log
        self._locs: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def for_model(cls, cfg, ws, run_id: str | None, labels: dict[str, str], *, log: PredictionLog | None = None,
                  register: bool = True) -> "PredictionMonitor":
        reference, why = None, "the version has no MLflow run"
        if run_id:
            try:
                reference = load_reference(run_id)
                why = "no drift/reference.json in its MLflow run"
            except Exception as err:  # noqa: BLE001 - unreadable: serve without drift, and say so
                why = f"drift/reference.json unreadable: {type(err).__name__}: {err}"
        if register:
            loaded = 0.0 if reference is None else 1.0
            health_metrics().drift_reference.set(labels, lambda: loaded)
        if reference is None:
            _log.error("%s v%s (%s): %s; drift gauges are off for this model (mlplatform_drift_reference_loaded 0)",
                       cfg.name, labels.get("version"), labels.get("role"), why)
        monitor = cls(labels, reference, log, cfg.drift.window_rows, cfg.drift.min_rows)
        if register:
            drift_collector().add(monitor)
        return monitor

    def matrix(self, inputs: np.ndarray, names) -> np.ndarray:
        """Model inputs (rows x `names`) as rows x F in reference order, the score slot left empty."""
        key = tuple(names)
        cols = self._locs.get(key)
        if cols is None:  # once per input order: where each reference input sits in `names`
            pos = {n: i for i, n in enumerate(key)}
            dst = [j for j, n in enumerate(self.reference.names) if j != self.score_pos]
            cols = self._locs[key] = (np.array(dst, dtype=np.intp),
                                      np.array([pos[self.reference.names[j]] for j in dst], dtype=np.intp))
        dst, src = cols
        out = np.empty((inputs.shape[0], len(self.reference.names)))
        out[:, dst] = inputs[:, src]
        return out

    def observe(self, inputs: np.ndarray, names, scores: np.ndarray, decisions: np.ndarray, cols: dict[str, list],
                headers: dict[str, str] | None = None, fallback_id: str | None = None) -> str:
        """Bin the rows into the drift window and log the predictions; returns the request id."""
        if self.hist is not None:
            x = self.matrix(inputs, names)
            if self.score_pos is not None:
                x[:, self.score_pos] = scores
            self.hist.update(x)
        rid = request_id(headers, fallback_id)
        if self.log is not None:
            self.log.record(rid, self.labels["version"], cols, scores, decisions)
        return rid

    def current(self) -> dict[str, dict[str, Any]]:
        """{feature: {psi, ks}} of the current window (tests, the demo)."""
        if self.hist is None:
            return {}
        p, k = self.hist.psi_ks()
        return {n: {"psi": float(a), "ks": float(b)} for n, a, b in zip(self.hist.names, p, k)}
