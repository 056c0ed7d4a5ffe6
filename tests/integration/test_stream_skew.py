"""Skew proven, not assumed (issue 14, item 5): 10,000 generated payments go through the stream
worker into Feast's Redis online store; for every payment the online row the predictor would have
read just before it (OnlineFeatures.lookup_at, the predictor's own read: Feast online + the view's
TTL at the event) is compared with the offline point-in-time row for the same payment
(store.training_frame: Feast's historical join + the same request transform). The velocity windows
must be equal: counts exactly, averages within 1e-9 (missing where missing).

The payments are replayed in order in rounds in which no card pays twice, so the online row read
before a round is, for each of its payments, the state after every earlier payment of that card.
Cards that come back after more than the 30-day TTL check that both sides treat them as new."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud_tenant import velocity
from fraud_tenant.features import request_features
from mlplatform.features import store
from mlplatform.features.stream import StreamWorker, publish
from tests.integration.test_stream import T0, drain, env  # noqa: F401 - env: the fixture (own project, Redis)

pytestmark = [pytest.mark.service, pytest.mark.slow]
N_CARDS, DAYS = 3_000, 45


def payments(seed: int = 14) -> pd.DataFrame:
    """~10,000 payments over 45 days: 3,000 cards paying now and then, 40 busy ones paying ~10 times
    within 20 days (several a day: the 1-day window), and 40 that pay early and come back after
    32-40 days (past the view's TTL). Few busy cards keep the replay's rounds long (see rounds)."""
    rng = np.random.default_rng(seed)
    span = DAYS * 86_400
    card = rng.integers(1, N_CARDS + 1, 9_600)
    when = rng.uniform(0, span, card.size)
    busy = N_CARDS + rng.integers(1, 41, 400)
    burst = rng.uniform(0, span - 20 * 86_400, 41)
    busy_when = burst[busy - N_CARDS] + rng.uniform(0, 20 * 86_400, busy.size)
    back = np.arange(N_CARDS + 41, N_CARDS + 81)  # pay in the first 4 days, again 32-40 days later
    first = rng.uniform(0, 4 * 86_400, back.size)
    cards = np.concatenate([card, busy, back, back])
    secs = np.concatenate([when, busy_when, first, first + rng.uniform(32, 40, back.size) * 86_400])
    df = pd.DataFrame({"customer_id": cards, "s": np.round(secs).astype(np.int64)})
    df = df.drop_duplicates(["customer_id", "s"]).sort_values(["s", "customer_id"], kind="stable")
    n = len(df)
    return pd.DataFrame({
        "transaction_id": np.arange(n), "tx_datetime": T0 + pd.to_timedelta(df["s"].to_numpy(), unit="s"),
        "customer_id": df["customer_id"].to_numpy(), "terminal_id": rng.integers(1, 200, n),
        "amount": np.round(rng.lognormal(3.5, 1.0, n).clip(0.01, 5000), 2), "is_fraud": 0, "fraud_scenario": 0,
        "label_available_at": T0 + pd.Timedelta(days=DAYS + 30),
    }).reset_index(drop=True)


def rounds(cards: np.ndarray) -> list[slice]:
    """Consecutive runs of payments in which no card appears twice."""
    out, start, seen = [], 0, set()
    for i, c in enumerate(cards):
        if c in seen:
            out.append(slice(start, i))
            start, seen = i, set()
        seen.add(c)
    out.append(slice(start, len(cards)))
    return out


def test_online_rows_before_each_payment_equal_the_offline_point_in_time_rows(env):  # noqa: F811
    cfg, ws, client, _ = env
    raw = payments()
    assert len(raw) >= 10_000
    spec = velocity.CUSTOMER
    online = {c: [None] * len(raw) for c in spec.state}
    reader = store.OnlineFeatures(cfg, ws)
    worker = StreamWorker(cfg, ws, "skew", client=client)
    at = (raw["tx_datetime"].astype("int64") / 1e9).to_numpy()  # ns (seconds exactly) -> s
    for part in rounds(raw["customer_id"].to_numpy()):
        batch = raw.iloc[part]
        feats, _ = reader.lookup_at({"customer_id": batch["customer_id"].tolist(),
                                     "terminal_id": batch["terminal_id"].tolist()}, at[part].tolist())
        for c in spec.state:
            online[c][part] = feats[c]
        publish(client, cfg, batch)
        drain(worker)
    assert worker.stats.events["applied"] == len(raw)
    assert worker.stats.events["late"] == worker.stats.events["duplicate"] == 0

    ns = raw["tx_datetime"].astype("int64").to_numpy()
    got = request_features({"tx_datetime": ns.astype("datetime64[ns]"), "amount": raw["amount"].to_numpy(),
                            **{c: online[c] for c in spec.state}})
    store.build_tables(cfg, ws, raw)  # the offline tables from the same payments (the batch path)
    want = store.training_frame(cfg, ws, raw)
    assert (want["transaction_id"].to_numpy() == raw["transaction_id"].to_numpy()).all()

    cold = np.isnan(want["customer_nb_tx_30d"].to_numpy())
    # first payments, and the 40 cards back after the TTL: both sides new
    assert cold.sum() >= N_CARDS * 0.9 + 80 and np.isnan(got["customer_nb_tx_30d"][cold]).all()
    for w, least in ((1, 300), (7, 2_000), (30, 5_000)):  # windows with payments in them
        assert (want[f"customer_nb_tx_{w}d"].to_numpy()[~cold] > 0).sum() > least, w
    for f in spec.features:
        a, b = np.asarray(got[f], dtype=np.float64), want[f].to_numpy(dtype=np.float64, na_value=np.nan)
        assert (np.isnan(a) == np.isnan(b)).all(), f
        both = ~np.isnan(a)
        if "_nb_tx_" in f:
            assert (a[both] == b[both]).all(), f
        else:
            np.testing.assert_allclose(a[both], b[both], rtol=0, atol=1e-9, err_msg=f)
    a, b = got["amount_to_avg_30d"], want["amount_to_avg_30d"].to_numpy()
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)
