"""The stream worker (`mlplatform stream TENANT`, issue 14): events from a Redis stream, read in a
consumer group, update per-entity hourly bucket state and are pushed to the Feast online store
through the view's PushSource, so Feast stays the one interface the predictor reads.

Delivery is at least once; the effect is exactly once. Each event is applied by one Lua script
(atomic in Redis): it records the event id in the entity's applied set and adds the event to its
hour's bucket, or does nothing for an id already applied. Then the entity's state is pushed, then
the messages are acknowledged. A crash between apply and ack redelivers the event: it is not
applied again, and its entity's state is pushed again if the crash came before the push.

An entity's keys (state, applied ids) expire a day after the horizon without events: a message
redelivered later than that would count again, so `claim_idle_ms` must be far shorter.

Pending messages of a dead consumer (idle for `claim_idle_ms`) are claimed by a live one
(XAUTOCLAIM) before each read.

Late events (policy): an event in an hour at or before the entity's newest hour minus the horizon
(the longest window) could count in no window any more: it is dropped and counted (`late`). An
older event inside the horizon is applied to its bucket (`out_of_order`); the pushed row is
stamped with the entity's newest event time.

Seeding (policy): an entity the worker holds no state for, but the online store has a row for
(materialised by the batch pipeline before the worker started, or pushed before its Redis keys
expired), starts from that row: its buckets, its time as the newest. Without this, the entity's
first streamed event would replace its whole history with one payment. Events at or before the
seeded row's time are taken as already counted by it (`before_seed`), so the stream takes over
where the batch state ends.

Feast's Redis store silently skips a row whose timestamp is not newer than the stored one, so the
worker keeps the timestamp it last pushed per entity: an unchanged state is not pushed (`skipped`),
and a changed state that would carry the same timestamp (payments at one instant, an out-of-order
event) is stamped 1 µs later (`restamped`) instead of being lost.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import pandas as pd

from mlplatform.config import TenantConfig
from mlplatform.features.definitions import EVENT_TIMESTAMP, push_source_name
from mlplatform.features.stream_metrics import worker_metrics
from mlplatform.identity import redis_acl
from mlplatform.plugins import resolve

log = logging.getLogger(__name__)
HOUR_US = 3_600 * 10**6
# KEYS: seen set, counts hash, sums hash, newest (µs), seeded (µs); ARGV: event id, hour, value, time (µs),
# horizon (h), ttl (s)
APPLY = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 'duplicate' end
if tonumber(ARGV[4]) <= tonumber(redis.call('GET', KEYS[5]) or '-1') then return 'before_seed' end
local newest = tonumber(redis.call('GET', KEYS[4]) or '-1')
local hour = tonumber(ARGV[2])
redis.call('SADD', KEYS[1], ARGV[1])
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[6]) end
if newest >= 0 and hour <= math.floor(newest / 3600000000) - tonumber(ARGV[5]) then return 'late' end
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('HINCRBYFLOAT', KEYS[3], ARGV[2], ARGV[3])
if tonumber(ARGV[4]) > newest then redis.call('SET', KEYS[4], ARGV[4]) return 'applied' end
return 'out_of_order'
"""
# KEYS: counts hash, sums hash, newest, pushed, seeded; ARGV: row time (µs), ttl (s), then hour, count, sum, ...
SEED = """
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
for i = 3, #ARGV, 3 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2])
end
for i = 3, 5 do redis.call('SET', KEYS[i], ARGV[1], 'EX', ARGV[2]) end
for i = 1, 2 do redis.call('EXPIRE', KEYS[i], ARGV[2]) end
return 1
"""
OUTCOMES = ("applied", "duplicate", "late", "out_of_order", "before_seed", "malformed")


def stream_key(cfg: TenantConfig) -> str:
    return cfg.features.stream.stream or f"mlplatform:{cfg.name}:events"


def message(event_id, key, ts_us: int, value: float) -> dict[str, str]:
    """One stream message: the event's id, entity key, time (µs since the epoch, UTC) and summed value."""
    return {"id": str(event_id), "key": str(int(key)), "ts_us": str(int(ts_us)), "value": repr(float(value))}


def publish(client, cfg: TenantConfig, events: pd.DataFrame, event_id: str = "transaction_id") -> int:
    """XADD one message per event (id, key, time in µs, value): what a payment service would send."""
    spec = resolve(cfg.features.stream.state)
    us = pd.to_datetime(events[cfg.data.timestamp], utc=True).astype("datetime64[us, UTC]").astype("int64")
    pipe = client.pipeline(transaction=False)
    for eid, key, t, value in zip(events[event_id], events[spec.key], us, events[spec.value]):
        pipe.xadd(stream_key(cfg), message(eid, key, t, value))
    pipe.execute()
    return len(events)


@dataclass
class Stats:
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    rows: dict[str, int] = field(default_factory=lambda: {"written": 0, "skipped": 0, "restamped": 0})
    claimed: int = 0
    seeded: int = 0


class StreamWorker:
    """One consumer of the tenant's stream; `run_once` is one read-apply-push-ack round."""

    def __init__(self, cfg: TenantConfig, ws, consumer: str, client=None, store=None):
        import redis

        from mlplatform.features.store import open_store

        if cfg.features.stream is None:
            raise ValueError(f"tenant {cfg.name!r} declares no features.stream")
        self.cfg, self.sc = cfg, cfg.features.stream
        self.spec = resolve(self.sc.state)
        self.consumer = consumer
        # as this process's Redis identity when it has one (the tenant's `stream` ACL user: redis_acl.py)
        self.redis = client or redis.Redis.from_url(self.sc.redis_url, decode_responses=True,
                                                    **redis_acl.client_credentials(os.environ))
        self.store = store or open_store(cfg, ws)
        self.stream = stream_key(cfg)
        self.prefix = f"mlplatform:{cfg.name}:{self.sc.view}"
        self.ttl_s = (self.spec.horizon_hours + 24) * 3600
        self._apply = self.redis.register_script(APPLY)
        self._seed = self.redis.register_script(SEED)
        self.stats = Stats()
        m = worker_metrics()  # mlplatform.features.stream_metrics: names and meanings
        self._events = {o: m["events"].labels(tenant=cfg.name, outcome=o) for o in OUTCOMES}
        self._rows = {r: m["rows"].labels(tenant=cfg.name, result=r) for r in ("written", "skipped", "restamped")}
        self._age = m["age"].labels(tenant=cfg.name, view=self.sc.view)
        self._applied_us: list[int] = []  # event times applied this round, observed once their rows are online
        try:
            self.redis.xgroup_create(self.stream, self.sc.group, id="0", mkstream=True)
        except Exception as err:  # noqa: BLE001 - BUSYGROUP: the group exists (another worker made it)
            if "BUSYGROUP" not in str(err):
                raise

    # --- one round ------------------------------------------------------------------------------

    def run_once(self, block_ms: int = 0) -> int:
        """Claim stale pending messages, read new ones, apply, push, ack: how many were handled."""
        messages = self.claim()
        read = self.redis.xreadgroup(self.sc.group, self.consumer, {self.stream: ">"}, count=self.sc.batch,
                                     block=block_ms or None)
        for _, batch in read or []:
            messages += batch
        if 0 < len(messages) < self.sc.batch and self.sc.linger_ms:  # a fuller round: less CPU per event
            time.sleep(self.sc.linger_ms / 1000)
            more = self.redis.xreadgroup(self.sc.group, self.consumer, {self.stream: ">"},
                                         count=self.sc.batch - len(messages))
            for _, batch in more or []:
                messages += batch
        if not messages:
            return 0
        touched = self.apply(messages)
        self.push(touched)
        now_us = time.time_ns() // 1000  # the rows are online now: each applied event's age at that moment
        for t in self._applied_us:
            self._age.observe(max(0.0, (now_us - t) / 1e6))
        self._applied_us.clear()
        self.redis.xack(self.stream, self.sc.group, *[mid for mid, _ in messages])
        return len(messages)

    def claim(self) -> list:
        _, claimed, *_ = self.redis.xautoclaim(self.stream, self.sc.group, self.consumer,
                                               min_idle_time=self.sc.claim_idle_ms, start_id="0-0", count=self.sc.batch)
        claimed = [(mid, fields) for mid, fields in claimed if fields]  # deleted entries come back empty
        self.stats.claimed += len(claimed)
        return claimed

    def apply(self, messages: list) -> set[str]:
        """Apply each event once (Lua, atomic per event; the batch's calls in one pipeline, in order);
        the entities whose state may have changed."""
        touched = set()
        self.seed({f["key"] for _, f in messages if isinstance(f.get("key"), str) and f["key"].lstrip("-").isdigit()})
        pipe = self.redis.pipeline(transaction=False)
        valid = []
        for mid, fields in messages:
            try:
                key, t = fields["key"], int(fields["ts_us"])
                args = [fields["id"], t // HOUR_US, float(fields["value"]), t, self.spec.horizon_hours, self.ttl_s]
            except (KeyError, ValueError) as err:  # bad input: counted and acknowledged, never retried forever
                self.stats.events["malformed"] += 1
                self._events["malformed"].inc()
                log.warning("stream %s: message %s malformed (%s: %s): dropped", self.stream, mid, type(err).__name__, err)
                continue
            self._apply(keys=[*self._keys(key), f"{self.prefix}:seeded:{key}"], args=args, client=pipe)
            valid.append((key, t))
        for (key, t), outcome in zip(valid, pipe.execute() if valid else []):
            if outcome in ("applied", "out_of_order"):
                self._applied_us.append(t)
            self.stats.events[outcome] += 1
            self._events[outcome].inc()
            touched.add(key)  # a duplicate too: its first delivery may have crashed before the push
        return touched

    def seed(self, keys: set[str]) -> None:
        """Entities without state here start from their online row, if the store has one (policy above)."""
        keys = sorted(keys)
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.exists(self._keys(key)[3])
        unknown = [k for k, known in zip(keys, pipe.execute()) if not known]
        if not unknown:
            return
        response = self.store.get_online_features(features=[f"{self.sc.view}:{c}" for c in self.spec.state],
                                                  entity_rows={self.spec.key: [int(k) for k in unknown]})
        vectors = dict(zip(response.proto.metadata.feature_names.val, response.proto.results))
        hours, counts, sums = (vectors[c] for c in self.spec.state)
        for i, key in enumerate(unknown):
            h = hours.values[i]
            if h.WhichOneof("val") is None:
                continue  # a new entity: nothing to start from
            ts = hours.event_timestamps[i]
            t = ts.seconds * 10**6 + ts.nanos // 1000
            args = [t, self.ttl_s]
            for hr, c, sm in zip(h.int64_list_val.val, counts.values[i].int64_list_val.val,
                                 sums.values[i].double_list_val.val):
                args += [hr, c, repr(float(sm))]
            _, c_key, s_key, newest = self._keys(key)
            if self._seed(keys=[c_key, s_key, newest, f"{self.prefix}:pushed:{key}", f"{self.prefix}:seeded:{key}"],
                          args=args):
                self.stats.seeded += 1

    def push(self, entities: set[str]) -> None:
        """The state of each entity (within the horizon of its newest event) -> one row each, pushed."""
        rows = []
        keys = sorted(entities)
        pipe = self.redis.pipeline(transaction=True)  # one consistent read of every entity's state
        for key in keys:
            _, counts, sums, newest = self._keys(key)
            pipe.hgetall(counts).hgetall(sums).get(newest)
            pipe.get(f"{self.prefix}:pushed:{key}").get(f"{self.prefix}:digest:{key}")
        read = pipe.execute()
        for i, key in enumerate(keys):
            c, s, t, pushed, last_digest = read[5 * i:5 * i + 5]
            if t is None:
                continue  # nothing applied (all late or expired)
            t, pushed = int(t), int(pushed) if pushed is not None else -1
            hours = sorted(int(h) for h in c if int(h) > t // HOUR_US - self.spec.horizon_hours)
            state = (hours, [int(c[str(h)]) for h in hours], [float(s[str(h)]) for h in hours])
            digest = repr(state)
            if pushed >= t and last_digest == digest:
                self._count_row("skipped")  # unchanged since the last push (Feast would skip it too)
                continue
            if pushed >= t:
                t = pushed + 1
                self._count_row("restamped")
            rows.append((key, t, state, digest))
        if not rows:
            return
        hour_col, count_col, sum_col = self.spec.state
        df = pd.DataFrame({
            self.spec.key: [int(k) for k, *_ in rows],
            EVENT_TIMESTAMP: pd.to_datetime([t for _, t, *_ in rows], unit="us", utc=True),
            hour_col: [st[0] for *_, st, _ in rows], count_col: [st[1] for *_, st, _ in rows],
            sum_col: [st[2] for *_, st, _ in rows],
        })
        from feast.data_source import PushMode

        self.store.push(push_source_name(self.sc.view), df, to=PushMode.ONLINE)
        pipe = self.redis.pipeline(transaction=False)
        for key, t, _, digest in rows:  # after the push: a crash before here pushes again (same state)
            pipe.set(f"{self.prefix}:pushed:{key}", t, ex=self.ttl_s).set(f"{self.prefix}:digest:{key}", digest, ex=self.ttl_s)
        pipe.execute()
        self._count_row("written", len(rows))

    def _count_row(self, result: str, n: int = 1) -> None:
        self.stats.rows[result] += n
        self._rows[result].inc(n)

    def _keys(self, key: str) -> list[str]:
        p = self.prefix
        return [f"{p}:seen:{key}", f"{p}:count:{key}", f"{p}:sum:{key}", f"{p}:newest:{key}"]

    def run(self, stop_after: float | None = None) -> Stats:
        """Consume until interrupted (or `stop_after` seconds)."""
        end = time.monotonic() + stop_after if stop_after else None
        while end is None or time.monotonic() < end:
            self.run_once(block_ms=1000)
        return self.stats
