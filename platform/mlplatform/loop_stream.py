"""The demo loop's payments through the stream worker (issue 14): the loop's traffic moves the
features live, as a payment service's would.

`PaymentReplay` replays the last week of the tenant's data in time order, shifted by whole weeks
past the data's end, cycle after cycle: every payment is published to the tenant's Redis stream
(`mlplatform stream`, its own process, applies it to the online store), and `StreamTraffic` scores
a sample of them through the proxy first (scored with the state just before the payment, as
training's `as_of: before_event` rows are), with the request's timestamp at the payment's time.

Why a compressed clock: the drift gauges compare the scored rows' hours and weekdays with the
training rows'. Traffic on the wall clock would be one hour of one weekday for the whole loop and
fire a drift alert on `tx_hour` at once. So the replay runs a week per `WEEK_SECONDS` (30 s) and the
loop's drift window holds that many seconds of requests; shifting by whole weeks keeps each
payment's weekday and hour. Event times are therefore simulated: the worker's event-age histogram
(wall clock minus event time) is no freshness figure in the loop, and the loop renders the
freshness alert with its threshold off (`FRESHNESS_OFF`); `make bench` measures freshness.

Why a subset of entities: a week of every card is ~21,000 payments, 700/s at that pace. The replay
keeps the cards of about `EVENTS_PER_SECOND` payments per second, every payment of each, so each
card's velocity features are whole (a card with half its payments would look like drift).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from mlplatform import services
from mlplatform.config import LoopDrift, TenantConfig
from mlplatform.workspace import Workspace

WEEK_SECONDS = 30.0  # wall-clock seconds per simulated week
EVENTS_PER_SECOND = 120.0  # payments published per wall-clock second (about; whole cards)
WEEK = pd.Timedelta(days=7)
FRESHNESS_OFF = 10 * 365 * 86400.0  # the loop's freshness threshold: simulated event times are months old
TRAFFIC_RATE = 20.0  # scored requests per second (on average), as the loop's other traffic
TICK_SECONDS = 0.05
# the loop's drift window: a simulated week of scored requests (mlplatform.loop applies these)
LOOP_OVERRIDES = {"drift.window_rows": int(WEEK_SECONDS * TRAFFIC_RATE), "drift.min_rows": int(WEEK_SECONDS * TRAFFIC_RATE),
                  "features.stream.freshness_slo_seconds": FRESHNESS_OFF}
WORKER_STARTUP_SECONDS = 120.0


class PaymentReplay:
    """The payments of the last week of `raw` (the tenant's ingested data), as request rows, due on
    the compressed clock.

    Cycle k (1, 2, ...) replays that week shifted by k weeks: payment j of cycle k happens at
    `end - 1 week + k weeks + offset_j` (end: the data's newest payment), due once
    `elapsed * speed >= (k - 1) weeks + offset_j`."""

    def __init__(self, cfg: TenantConfig, raw: pd.DataFrame, week_seconds: float = WEEK_SECONDS,
                 events_per_second: float = EVENTS_PER_SECOND, seed: int = 0):
        from mlplatform.plugins import resolve
        from mlplatform.serving.inputs import RequestSchema
        from mlplatform.serving.smoke import _json_value

        self.spec = resolve(cfg.features.stream.state)
        self.time_column = cfg.data.timestamp
        ts = pd.to_datetime(raw[self.time_column], utc=True)
        self.end = ts.max()
        week = raw[ts > self.end - WEEK]
        keys = week[self.spec.key].unique()
        per_key = len(week) / max(len(keys), 1)
        n = int(np.clip(round(events_per_second * week_seconds / per_key), 1, len(keys)))
        chosen = np.random.default_rng(seed).choice(keys, size=n, replace=False)
        week = week[week[self.spec.key].isin(chosen)].sort_values(self.time_column, kind="stable")
        names = [s.name for s in RequestSchema(cfg).specs]
        self.rows = [{k: _json_value(v) for k, v in r.items()} for r in week[names].to_dict("records")]
        start = self.end - WEEK
        self.offsets = (pd.to_datetime(week[self.time_column], utc=True) - start).dt.total_seconds().to_numpy()
        self.start = start
        self.cards = n
        self.week_seconds = week_seconds
        self.speed = WEEK.total_seconds() / week_seconds
        self.cycle, self.next = 1, 0
        if not self.rows:
            raise ValueError("the loop's payment replay found no payments in the data's last week")

    @property
    def events_per_week(self) -> int:
        return len(self.rows)

    def due(self, elapsed_s: float) -> list[tuple[str, dict[str, Any]]]:
        """(event id, request row at its simulated time) of each payment due by `elapsed_s`, in order."""
        now = elapsed_s * self.speed
        week_s = WEEK.total_seconds()
        out = []
        while (self.cycle - 1) * week_s + self.offsets[self.next] <= now:
            at = self.start + pd.Timedelta(weeks=self.cycle) + pd.Timedelta(seconds=float(self.offsets[self.next]))
            row = dict(self.rows[self.next]) | {self.time_column: at.isoformat()}
            out.append((f"loop-{self.cycle}-{self.next}", row))
            self.next += 1
            if self.next == len(self.rows):
                self.cycle, self.next = self.cycle + 1, 0
        return out

    def message(self, event_id: str, row: dict[str, Any]) -> dict[str, str]:
        """The stream message of one payment (features.stream.message: id, key, time, value)."""
        from mlplatform.features.stream import message

        return message(event_id, row[self.spec.key], pd.Timestamp(row[self.time_column]).value // 1000,
                       row[self.spec.value])


class StreamTraffic:
    """The loop's traffic for a streaming tenant: every 50 ms, the replay's due payments, in order;
    every k-th payment (k: payments per second / `rate`) is scored through the proxy before it is
    published, the others only published (the injected drift, when set, in both: the world changed,
    not only the requests). Every k-th payment, not one per tick: the scored rows keep the payments'
    own mix of hours (one per tick would over-sample the quiet night hours)."""

    def __init__(self, url: str, path: str, replay: PaymentReplay, redis_client, stream: str,
                 drifted: Callable[[dict, LoopDrift], dict], rate: float = TRAFFIC_RATE):
        import threading

        self.url, self.path, self.replay, self.rate, self.drifted = url, path, replay, rate, drifted
        self.every = max(1, round(replay.events_per_week / replay.week_seconds / rate))
        self.redis, self.stream = redis_client, stream
        self.drift: LoopDrift | None = None
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.sent = self.errors = self.published = 0

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=10)

    def _run(self) -> None:
        t0, n = time.monotonic(), 0
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop_event.is_set():
                drift = self.drift
                pipe = self.redis.pipeline(transaction=False)
                for eid, row in self.replay.due(time.monotonic() - t0):
                    if drift is not None:
                        row = self.drifted(row, drift)
                    if n % self.every == 0:  # scored with the state before it: earlier payments go first
                        pipe.execute()
                        with contextlib.suppress(httpx.HTTPError):
                            resp = client.post(self.path, json={"instances": [row]})
                            self.errors += resp.status_code >= 400
                        self.sent += 1
                    pipe.xadd(self.stream, self.replay.message(eid, row))
                    self.published += 1
                    n += 1
                pipe.execute()
                self.stop_event.wait(TICK_SECONDS)


@contextlib.contextmanager
def stream_redis(run_dir: Path) -> Iterator[str | None]:
    """The stream's and online store's Redis for the loop's processes: the configured one
    (MLPLATFORM_REDIS_ADDRESS / MLPLATFORM_STREAM_REDIS_URL set: yields None), else a private
    `redis-server` in the run folder, set in this process's environment for the loop's duration
    (the pipeline runs, model servers and worker it starts inherit it). Yields its URL."""
    from mlplatform.envvars import scoped_environ
    from mlplatform.redis_local import local_redis

    if os.environ.get(services.REDIS) or os.environ.get(services.STREAM_REDIS):
        yield None
        return
    with local_redis(run_dir / "redis") as url:
        address = url.removeprefix("redis://").split("/", 1)[0]
        with scoped_environ({services.ONLINE_STORE: "redis", services.REDIS: address, services.STREAM_REDIS: url}):
            yield url


def start_worker(tenant_file: Path, ws: Workspace, run_dir: Path, port: int):
    """`mlplatform stream` for the loop's tenant, as its own process; returns it once /metrics answers."""
    from mlplatform.processes import spawn, wait_ready

    log = run_dir / "stream-worker.log"
    proc = spawn([sys.executable, "-m", "mlplatform.cli", "stream", str(tenant_file), "--home", str(ws.home),
                  "--metrics-port", str(port)], log, env=dict(os.environ))
    try:
        wait_ready(proc, f"http://127.0.0.1:{port}/metrics", log, WORKER_STARTUP_SECONDS, "stream worker")
    except BaseException:
        from mlplatform.processes import stop

        stop(proc)
        raise
    return proc


def worker_counts(port: int) -> dict[str, int]:
    """The worker's event outcomes and rows so far (its /metrics), for loop.json."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "mlplatform_stream_events_total":
                out[f"events_{s.labels['outcome']}"] = int(s.value)
            elif s.name == "mlplatform_stream_rows_total":
                out[f"rows_{s.labels['result']}"] = int(s.value)
    return out
