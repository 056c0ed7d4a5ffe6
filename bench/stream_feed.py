"""The stream bench's feeder, its own process (bench/stream_bench.py starts it, so its threads share no
interpreter lock with the load generator): publishes payments to the tenant's Redis stream at a fixed
rate, each stamped with the wall clock as its event time, and probes event -> online latency.

The prober takes the newest published payment every 50 ms and reads its card's row through Feast
(`OnlineFeatures.lookup_timed`, the predictor's read) every 10 ms until the row carries that payment's
event time (or a later one): latency = when seen - event time. Resolution: the 10 ms poll plus one
Feast read (~1 ms of CPU). A 2 ms poll made hundreds of Feast reads a second, CPU taken from the
server measured beside it. A payment not seen within 10 s counts as a timeout.

    python -m bench.stream_feed TENANT_FILE HOME RATE SECONDS FIRST_CARD CARDS OUT_JSON
(the stores come from the environment: mlplatform.tenants.apply_env_overrides)
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

PROBE_EVERY_S, POLL_S, GIVE_UP_S = 0.05, 0.01, 10.0


def main(argv: list[str]) -> int:
    import redis

    from mlplatform.config import load_tenant
    from mlplatform.features.store import OnlineFeatures
    from mlplatform.features.stream import message, stream_key
    from mlplatform.tenants import apply_env_overrides
    from mlplatform.workspace import Workspace

    tenant, home, rate, seconds, first, cards, out = argv
    rate, seconds, first, cards = float(rate), float(seconds), int(first), int(cards)
    cfg, ws = apply_env_overrides(load_tenant(tenant)), Workspace(home)
    client = redis.Redis.from_url(cfg.features.stream.redis_url)
    reader = OnlineFeatures(cfg, ws)
    view, stream = cfg.features.stream.view, stream_key(cfg)
    other = {k: [0] for k in cfg.features.join_keys if k != "customer_id"}
    latest: list = [None]  # (card, event time in µs) of the newest published payment
    done = threading.Event()
    seen_ms: list[float] = []
    timeouts = [0]

    def probe() -> None:
        while not done.is_set():
            current = latest[0]
            if current is None:
                time.sleep(0.01)
                continue
            card, t_us = current
            give_up = time.time() + GIVE_UP_S
            while True:
                _, times = reader.lookup_timed({"customer_id": [card], **other})
                stamp = times[view][0]
                if stamp is not None and round(stamp * 1e6) >= t_us:
                    seen_ms.append((time.time() - t_us / 1e6) * 1000)
                    break
                if time.time() > give_up:
                    timeouts[0] += 1
                    break
                time.sleep(POLL_S)
            time.sleep(PROBE_EVERY_S)

    rng = np.random.default_rng(0)
    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    sent, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        due = int(elapsed * rate)
        if due > sent:
            pipe = client.pipeline(transaction=False)
            for i in range(sent, due):
                card = first + int(rng.integers(cards))
                t_us = time.time_ns() // 1000
                pipe.xadd(stream, message(i, card, t_us, float(rng.uniform(1, 300))))
            pipe.execute()
            latest[0] = (card, t_us)
            sent = due
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    time.sleep(1.0)  # the last probe
    done.set()
    prober.join(timeout=GIVE_UP_S + 1)
    Path(out).write_text(json.dumps({"sent": sent, "seconds": round(elapsed, 2),
                                     "achieved_rate": round(sent / elapsed, 1), "probe_ms": seen_ms,
                                     "probe_timeouts": timeouts[0]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
