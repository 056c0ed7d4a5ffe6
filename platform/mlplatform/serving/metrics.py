"""Prometheus metrics of a predictor, named per the platform conventions (DESIGN.md):
`mlplatform_<thing>_<unit>`, labels tenant, model, version, role (stable|canary|shadow).

They live in prometheus-client's default registry because kserve 0.21 serves `/metrics` from
that registry (kserve.protocol.rest.server.metrics_handler), so they appear next to kserve's own.
The ModelServer runs one worker process, so no multiprocess collector is needed.

Requests are counted by an ASGI middleware (`RequestMetricsMiddleware`), not inside the model:
kserve rejects malformed JSON, wrong shapes and unknown models before the model is called, and
those errors must be counted too (rollout analysis computes the success rate from this counter).
"""

from __future__ import annotations

import re
import time
from typing import Callable

import numpy as np
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

ROLES = ("stable", "canary", "shadow")
LABELS = ("tenant", "model", "version", "role")
# ms-level latency: the SLO is tens of milliseconds, the benchmark target a p99 under 10 ms
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)
# feature rows: a pushed row is sub-second old, a batch row up to days (the views' TTL is 30 days)
FEATURE_AGE_BUCKETS = (0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86400.0, 2 * 86400.0,
                       7 * 86400.0, 30 * 86400.0)
# scores are probabilities; finer bins near 0 where most scores of a rare positive class fall
SCORE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


def bucketed_score_ks(a, b) -> float:
    """Kolmogorov-Smirnov distance between two score samples as the rollout check sees them
    online: the largest gap between their cumulative shares at the SCORE_BUCKETS bounds."""
    edges = np.asarray(SCORE_BUCKETS)
    cdf = [np.searchsorted(np.sort(np.asarray(x, dtype=float)), edges, side="right") / max(len(x), 1) for x in (a, b)]
    return float(np.max(np.abs(cdf[0] - cdf[1])))


class ServingMetrics:
    """The metric families; `registry` is replaceable for unit tests."""

    def __init__(self, registry: CollectorRegistry = REGISTRY):
        self.requests = Counter(
            "mlplatform_requests", "Inference requests by HTTP status code",
            [*LABELS, "status"], registry=registry,
        )
        self.duration = Histogram(
            "mlplatform_request_duration_seconds", "Inference request latency inside the server",
            LABELS, buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.score = Histogram(
            "mlplatform_prediction_score", "Predicted scores, one observation per scored row",
            LABELS, buckets=SCORE_BUCKETS, registry=registry,
        )
        self.feature_age = Histogram(  # per row scored with a view's row: how old that row was
            "mlplatform_feature_age_seconds", "Age of the online feature row a scored row used: the scored "
            "event's time (or now, without one) minus the row's event time", [*LABELS, "view"],
            buckets=FEATURE_AGE_BUCKETS, registry=registry,
        )
        self.cold_start = Counter(  # rows scored without any feature of a view (an unseen card, terminal)
            "mlplatform_cold_start_rows", "Rows scored with every feature of a view missing (entity not in "
            "the online store: never seen, or older than the TTL)", [*LABELS, "view"], registry=registry,
        )


_DEFAULT: ServingMetrics | None = None


def default_metrics() -> ServingMetrics:
    """The process-wide families in the default registry (created once: names must be unique)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = ServingMetrics()
    return _DEFAULT


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    return role


class RequestMetricsMiddleware:
    """Pure ASGI middleware: counts and times the inference routes of one model.

    `labels()` is called per request, so the version label follows the loaded model. A plain ASGI
    class (not BaseHTTPMiddleware) keeps the overhead to a few microseconds per request.
    Unhandled exceptions become 500 further out (Starlette's ServerErrorMiddleware), so they are
    counted as "500" here before being re-raised.
    """

    def __init__(self, app, model_name: str, labels: Callable[[], dict[str, str]],
                 metrics: ServingMetrics | None = None):
        self.app = app
        self.labels = labels
        self.metrics = metrics or default_metrics()
        name = re.escape(model_name)
        self.route = re.compile(rf"^/v1/models/{name}:predict$|^/v2/models/{name}(/versions/[^/]+)?/infer$")
        self._children: dict[tuple, tuple] = {}  # (label values, status) -> (counter, histogram) children

    def _metrics_for(self, labels: dict[str, str], status: str) -> tuple:
        """The labelled children, looked up once per label set: prometheus-client's labels() validates
        the values on every call (5 us for the two metrics vs 1.4 us cached)."""
        key = (tuple(labels.items()), status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.metrics.requests.labels(**labels, status=status),
                                              self.metrics.duration.labels(**labels))
        return children

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.route.match(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, recorded = "500", False

        def record() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                requests, duration = self._metrics_for(self.labels(), status)
                requests.inc()
                duration.observe(time.perf_counter() - started)

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # recorded before the last byte leaves: a caller that has its answer and then reads
                # /metrics sees its request counted (recording after the app returned raced with it)
                record()
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            record()  # no response sent (an exception): counted as 500
