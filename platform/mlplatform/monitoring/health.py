"""The health of the monitoring paths themselves, as Prometheus metrics.

A failure that turns monitoring off must be a number an alert can watch, not a line on stderr: the
rules are in charts/tenant/templates/prometheusrule.yaml (group mlplatform-<tenant>-health).

In the predictor process (prometheus-client's default registry, which kserve serves on /metrics,
as serving/metrics.py):

  mlplatform_drift_reference_loaded{tenant, model, version, role}   1: drift gauges are computed;
      0: the model's drift reference is missing or unreadable, so no drift alert can ever fire
  mlplatform_prediction_log_dropped_rows_total{tenant, role}         rows given up (writes kept
      failing with a full buffer): the quality job would work on partial data
  mlplatform_prediction_log_write_errors_total{tenant, role}         failed segment writes
  mlplatform_prediction_log_buffered_rows{tenant, role}              rows waiting in memory
  mlplatform_prediction_log_last_flush_timestamp_seconds{tenant, role}  the last successful flush
      (rows written, or none to write): it grows old while writes fail
  mlplatform_online_store_errors_total{tenant, model, version, role}  failed online-store lookups
      on the request path (each one a 503)
  mlplatform_feature_refresh_errors_total{tenant, model, version, role}  failed refreshes of a
      ranking predictor's item features (it keeps serving the last good ones)
  mlplatform_item_features_age_seconds{tenant, model, version, role}  how old those features are

The webhook process exports its own (monitoring/webhook.py); a champion that could not be
re-scored is recorded on the training run for the gate (registry/champion_eval.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily

from mlplatform.serving.metrics import LABELS

LOG_LABELS = ("tenant", "role")


class ServerGauge:
    """A gauge per model server (tenant, role), read on scrape from what that server holds now. A
    reloaded model replaces its server's entry, so the series of a version no longer served goes
    away instead of alerting forever."""

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry):
        self.name, self.documentation = name, documentation
        self._values: dict[tuple[str, str], tuple[dict[str, str], Callable[[], float]]] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def set(self, labels: dict[str, str], value: Callable[[], float]) -> None:
        with self._lock:
            self._values[(labels["tenant"], labels["role"])] = ({k: labels[k] for k in LABELS}, value)

    def describe(self):  # nothing at registration: no server exists yet
        return []

    def collect(self):
        family = GaugeMetricFamily(self.name, self.documentation, labels=LABELS)
        with self._lock:
            values = list(self._values.values())
        for labels, value in values:
            family.add_metric([labels[k] for k in LABELS], float(value()))
        yield family


class HealthMetrics:
    """The families; `registry` is replaceable for unit tests."""

    def __init__(self, registry: CollectorRegistry = REGISTRY):
        self.drift_reference = ServerGauge(
            "mlplatform_drift_reference_loaded", "1 when the served model's drift reference is loaded "
            "(drift gauges on), 0 when it is missing or unreadable (no drift alert can fire)", registry)
        self.log_dropped = Counter(
            "mlplatform_prediction_log_dropped_rows", "Prediction-log rows given up after writes kept failing",
            LOG_LABELS, registry=registry)
        self.log_errors = Counter(
            "mlplatform_prediction_log_write_errors", "Prediction-log segment writes that failed", LOG_LABELS,
            registry=registry)
        self.log_buffered = Gauge(
            "mlplatform_prediction_log_buffered_rows", "Prediction-log rows in memory, not yet written",
            LOG_LABELS, registry=registry)
        self.log_flushed = Gauge(
            "mlplatform_prediction_log_last_flush_timestamp_seconds", "When the prediction log last flushed "
            "successfully (rows written, or nothing to write)", LOG_LABELS, registry=registry)
        self.online_store_errors = Counter(
            "mlplatform_online_store_errors", "Online feature store lookups that failed on the request path",
            LABELS, registry=registry)
        self.refresh_errors = Counter(
            "mlplatform_feature_refresh_errors", "Failed refreshes of the item features a ranking predictor "
            "holds in memory (it keeps serving the last good ones)", LABELS, registry=registry)
        self.features_age = ServerGauge(
            "mlplatform_item_features_age_seconds", "Age of the item features a ranking predictor serves", registry)


_DEFAULT: HealthMetrics | None = None


def health_metrics() -> HealthMetrics:
    """The process-wide families in the default registry (created once: names must be unique)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = HealthMetrics()
    return _DEFAULT
