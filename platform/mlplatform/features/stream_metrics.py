"""What the stream worker exports on its /metrics port (issue 14, freshness).

Throughput and outcomes (counted as the worker goes):
  mlplatform_stream_events_total{tenant, outcome}   applied, duplicate, late, out_of_order, before_seed,
                                                    malformed
  mlplatform_stream_rows_total{tenant, result}      written, skipped, restamped
  mlplatform_stream_event_age_seconds{tenant, view} per applied event, its event time to the moment
                                                    the row holding it was written online (the
                                                    freshness the SLO alert watches)
Lag, read from Redis when Prometheus scrapes (`StreamLagCollector`), so a worker stuck in a round
still shows its backlog growing:
  mlplatform_stream_length{tenant}                  XLEN
  mlplatform_stream_pending{tenant}                 delivered to the group, not yet acknowledged
  mlplatform_stream_undelivered{tenant}             not yet delivered to the group (XINFO GROUPS lag)
  mlplatform_stream_oldest_unacked_age_seconds{tenant}  age of the oldest entry not yet acknowledged
                                                    (pending or undelivered; 0 when none), from its id
  mlplatform_stream_redis_up{tenant}                0 when the scrape could not read Redis: the lag
                                                    gauges above are then absent, and an alert fires
"""

from __future__ import annotations

import os
import time

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# event -> online store: sub-second is the target (the bench), minutes means the worker is behind
AGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

_METRICS: dict = {}


def worker_metrics() -> dict:
    """The worker's counters and histogram, created once per process in the default registry."""
    if not _METRICS:
        _METRICS["events"] = Counter("mlplatform_stream_events", "Stream events by outcome (applied, duplicate, "
                                     "late, out_of_order, before_seed, malformed)", ["tenant", "outcome"])
        _METRICS["rows"] = Counter("mlplatform_stream_rows", "State rows pushed to the online store (written), "
                                   "left unchanged (skipped) or stamped 1 us later to be written (restamped)",
                                   ["tenant", "result"])
        _METRICS["age"] = Histogram("mlplatform_stream_event_age_seconds", "Per applied event: its event time to "
                                    "the moment the row holding it was written to the online store",
                                    ["tenant", "view"], buckets=AGE_BUCKETS)
    return _METRICS


def stream_id_ms(entry_id: str) -> int:
    """A Redis stream id's time part (ms since the epoch: when the entry was added)."""
    return int(str(entry_id).split("-", 1)[0])


def _after(entry_id: str) -> str:
    """The smallest id greater than `entry_id` (XRANGE's exclusive '(' needs Redis 6.2)."""
    ms, seq = str(entry_id).split("-", 1)
    return f"{ms}-{int(seq) + 1}"


def stream_lag(client, stream: str, group: str, now_ms: int | None = None) -> dict[str, float]:
    """{length, pending, undelivered, oldest_unacked_age_seconds} of one consumer group."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    length = client.xlen(stream)
    info = next((g for g in client.xinfo_groups(stream) if g["name"] == group), None)
    if info is None:  # no worker has created the group yet: everything is undelivered
        first = client.xrange(stream, count=1)
        return {"length": length, "pending": 0, "undelivered": length,
                "oldest_unacked_age_seconds": (now_ms - stream_id_ms(first[0][0])) / 1000 if first else 0.0}
    pending = client.xpending(stream, group)
    oldest = [stream_id_ms(pending["min"])] if pending["pending"] else []
    nxt = client.xrange(stream, min=_after(info["last-delivered-id"]), count=1)
    if nxt:
        oldest.append(stream_id_ms(nxt[0][0]))
    undelivered = info.get("lag")
    if undelivered is None:  # Redis < 7 or a lag it cannot compute: count it
        undelivered = len(client.xrange(stream, min=_after(info["last-delivered-id"])))
    age = max(0.0, (now_ms - min(oldest)) / 1000) if oldest else 0.0
    return {"length": length, "pending": pending["pending"], "undelivered": undelivered,
            "oldest_unacked_age_seconds": age}


class StreamLagCollector(Collector):
    """Reads the lag from Redis at each scrape (prometheus-client calls `collect` per scrape)."""

    def __init__(self, client, tenant: str, stream: str, group: str):
        self.client, self.tenant, self.stream, self.group = client, tenant, stream, group

    def collect(self):
        up = GaugeMetricFamily("mlplatform_stream_redis_up", "1 when the scrape read the stream's lag from Redis",
                               labels=["tenant"])
        try:
            lag = stream_lag(self.client, self.stream, self.group)
        except Exception:  # noqa: BLE001 - Redis down or the stream gone: say so, never fail the scrape
            up.add_metric([self.tenant], 0)
            yield up
            return
        up.add_metric([self.tenant], 1)
        yield up
        helps = {"length": ("mlplatform_stream_length", "Entries in the stream (XLEN)"),
                 "pending": ("mlplatform_stream_pending", "Entries delivered to the group, not yet acknowledged"),
                 "undelivered": ("mlplatform_stream_undelivered", "Entries not yet delivered to the group"),
                 "oldest_unacked_age_seconds": ("mlplatform_stream_oldest_unacked_age_seconds",
                                                "Age of the oldest entry not yet acknowledged (0: none)")}
        for key, (name, doc) in helps.items():
            g = GaugeMetricFamily(name, doc, labels=["tenant"])
            g.add_metric([self.tenant], float(lag[key]))
            yield g

    def describe(self):
        return []  # collected lazily: no registration-time call to Redis


def lag_client(url: str):
    """A client for the scrape: short timeouts and no retries, so a Redis that is down makes the
    scrape answer redis_up 0 at once instead of retrying past Prometheus' scrape timeout."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from mlplatform.identity import redis_acl

    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2,
                                retry=Retry(NoBackoff(), 0), **redis_acl.client_credentials(os.environ))


def register_lag(client, tenant: str, stream: str, group: str, registry=REGISTRY) -> StreamLagCollector:
    collector = StreamLagCollector(client, tenant, stream, group)
    registry.register(collector)
    return collector
