"""Seeded card-payment simulator for the fraud tenant (our own implementation, in the spirit
of the simulator in "Reproducible Machine Learning for Credit Card Fraud Detection").

Customers live on a 100x100 grid and pay at terminals within `RADIUS` of home; spending
follows per-customer profiles with daily/weekly rhythm. Three fraud scenarios are injected:
  1 amount anomaly      - any payment above AMOUNT_THRESHOLD is fraud
  2 compromised terminal - every payment at it is fraud for TERMINAL_DAYS days
  3 compromised card    - a third of the card's payments for CARD_DAYS days are fraud, amount x5
A spending shift (`spending_shift`, from `shift_day` on) multiplies every customer's spending,
and scenario 1 moves with it (fraud is an amount far above what cardholders now spend): the
world a drift alert reports, and the data a retrained model should learn from.
Everything is drawn from one numpy Generator in a fixed order, so the same arguments give
byte-identical frames. Vectorised: the default size (~150k rows) takes about a second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

GRID = 100.0
RADIUS = 5.0  # ~16 terminals per customer at the default density (2000 terminals / 100x100)
AMOUNT_THRESHOLD = 220.0
TERMINAL_DAYS = 28
CARD_DAYS = 14
CARD_FRAUD_SHARE = 1 / 3
CARD_AMOUNT_FACTOR = 5.0
# Compromise rates per entity per day. Scaled by population so fraud stays well under 1%
# at any size: the default gives ~0.3 terminals and ~0.6 cards per day.
TERMINAL_RATE = 1.5e-4
CARD_RATE = 6e-4
AMOUNT_MIN, AMOUNT_MAX = 0.01, 5000.0
# Label delay (days): log-normal, median 4 d, ~80% between 1 and 7 days, long right tail.
LABEL_DELAY_MEDIAN_DAYS, LABEL_DELAY_SIGMA = 4.0, 0.6
# Some frauds are reported by the cardholder within hours (1-24 h), so recent terminal risk
# is not always blind; otherwise a 1-day window would never see a label.
FAST_FRAUD_LABEL_SHARE = 0.2

# Relative activity per hour: quiet nights, morning ramp, lunch and evening peaks.
_WEEKDAY_HOURS = [0.3, 0.2, 0.15, 0.1, 0.1, 0.2, 0.6, 1.2, 2.0, 2.5, 2.8, 3.2,
                  3.8, 3.5, 3.0, 2.9, 3.0, 3.4, 3.6, 3.0, 2.2, 1.4, 0.9, 0.5]
# Weekends start later and run later into the night.
_WEEKEND_HOURS = [0.6, 0.4, 0.3, 0.15, 0.1, 0.1, 0.2, 0.4, 0.9, 1.6, 2.4, 3.0,
                  3.4, 3.4, 3.2, 3.1, 3.0, 2.9, 2.9, 2.7, 2.3, 1.8, 1.3, 0.9]
# Activity per weekday (Mon..Sun), mean 1: busier Friday/Saturday, quiet Sunday.
_WEEKDAY_FACTOR = np.array([0.98, 0.97, 0.98, 1.0, 1.1, 1.2, 0.77])

COLUMNS = {
    "transaction_id": "int64",
    "tx_datetime": "datetime64[ns, UTC]",
    "customer_id": "int64",
    "terminal_id": "int64",
    "amount": "float64",
    "is_fraud": "int64",
    "fraud_scenario": "int64",
    "label_available_at": "datetime64[ns, UTC]",
}


def _customer_terminals(rng, customers: int, terminals: int):
    """Home and terminal locations; CSR lists (offsets, counts, ids) of terminals near each home."""
    home = rng.uniform(0, GRID, size=(customers, 2))
    term = rng.uniform(0, GRID, size=(terminals, 2))
    rows, cols = [], []
    for lo in range(0, customers, 512):  # blocks keep the distance matrix small at any size
        d = np.linalg.norm(home[lo:lo + 512, None, :] - term[None, :, :], axis=2)
        r, c = np.nonzero(d < RADIUS)
        # A customer with no terminal in range shops at the nearest one.
        lonely = np.setdiff1d(np.arange(d.shape[0]), r)
        rows += [r + lo, lonely + lo]
        cols += [c, d[lonely].argmin(axis=1)]
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    order = np.lexsort((cols, rows))
    counts = np.bincount(rows, minlength=customers)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return offsets, counts, cols[order]


def _compromised(rng, population: int, days: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """(entity, first day) pairs. The count per day follows the cumulative expected count, so
    small simulations still get a compromise every 1/(population*rate) days."""
    expected = np.floor(np.arange(days + 1) * population * rate).astype(np.int64)
    per_day = np.diff(expected)
    day = np.repeat(np.arange(days), per_day)
    who = rng.integers(0, population, size=day.size)
    return who, day


def simulate(*, customers: int = 1000, terminals: int = 2000, days: int = 60, seed: int = 7,
             start_date: str = "2026-01-01", spending_shift: float = 1.0, shift_day: int = 0) -> pd.DataFrame:
    """All transactions as one frame, sorted by tx_datetime, with the columns in COLUMNS."""
    if min(customers, terminals, days) < 1:
        raise ValueError("customers, terminals and days must all be >= 1")
    if not spending_shift > 0 or not 0 <= shift_day < days:
        raise ValueError(f"spending_shift must be > 0 (got {spending_shift}) and shift_day within "
                         f"[0, {days}) (got {shift_day})")
    rng = np.random.default_rng(seed)
    offsets, counts, near = _customer_terminals(rng, customers, terminals)
    mean_amount = rng.uniform(5, 100, size=customers)
    std_amount = mean_amount / 2
    tx_per_day = rng.uniform(0.5, 4.5, size=customers)

    start = pd.Timestamp(start_date, tz="UTC").normalize()
    weekday = (start.dayofweek + np.arange(days)) % 7
    n = rng.poisson(tx_per_day[:, None] * _WEEKDAY_FACTOR[weekday][None, :])  # (customers, days)
    cust = np.repeat(np.arange(customers), n.sum(axis=1))
    day = np.repeat(np.tile(np.arange(days), customers), n.ravel())
    size = cust.size

    # Time of day from the weekday or weekend hourly profile, uniform within the hour.
    weekend = weekday[day] >= 5
    cdf_wd = np.cumsum(_WEEKDAY_HOURS) / np.sum(_WEEKDAY_HOURS)
    cdf_we = np.cumsum(_WEEKEND_HOURS) / np.sum(_WEEKEND_HOURS)
    u = rng.random(size)
    hour = np.where(weekend, np.searchsorted(cdf_we, u, side="right"), np.searchsorted(cdf_wd, u, side="right"))
    second = day * 86_400 + np.minimum(hour, 23) * 3_600 + rng.integers(0, 3_600, size=size)

    terminal = near[offsets[cust] + (rng.random(size) * counts[cust]).astype(np.int64)]
    amount = rng.normal(mean_amount[cust], std_amount[cust])
    neg = amount < 0  # redraw negatives uniformly below twice the mean, as small payments
    amount[neg] = rng.uniform(0, 2 * mean_amount[cust[neg]])
    shift = np.where(day >= shift_day, spending_shift, 1.0)  # all ones without a shift: same frame as before
    amount = np.clip(np.round(amount * shift, 2), AMOUNT_MIN, AMOUNT_MAX)

    # Scenarios are applied in order; a later one overrides an earlier one on the same row.
    scenario = np.where(amount > AMOUNT_THRESHOLD * shift, 1, 0)
    bad_term, t_day = _compromised(rng, terminals, days, TERMINAL_RATE)
    hit = np.zeros((terminals, days + TERMINAL_DAYS + 1), dtype=np.int64)  # +1 at start, -1 at end
    np.add.at(hit, (bad_term, t_day), 1)
    np.add.at(hit, (bad_term, t_day + TERMINAL_DAYS), -1)
    scenario[np.cumsum(hit, axis=1)[terminal, day] > 0] = 2

    bad_card, c_day = _compromised(rng, customers, days, CARD_RATE)
    hit = np.zeros((customers, days + CARD_DAYS + 1), dtype=np.int64)
    np.add.at(hit, (bad_card, c_day), 1)
    np.add.at(hit, (bad_card, c_day + CARD_DAYS), -1)
    card_hit = (np.cumsum(hit, axis=1)[cust, day] > 0) & (rng.random(size) < CARD_FRAUD_SHARE)
    scenario[card_hit] = 3
    amount[card_hit] = np.clip(np.round(amount[card_hit] * CARD_AMOUNT_FACTOR, 2), AMOUNT_MIN, AMOUNT_MAX)

    delay_s = rng.lognormal(np.log(LABEL_DELAY_MEDIAN_DAYS * 86_400), LABEL_DELAY_SIGMA, size=size)
    fast = (scenario > 0) & (rng.random(size) < FAST_FRAUD_LABEL_SHARE)
    delay_s[fast] = rng.uniform(3_600, 86_400, size=int(fast.sum()))
    tx_ns = start.value + second.astype(np.int64) * 10**9
    label_ns = tx_ns + np.round(delay_s).astype(np.int64) * 10**9

    # Time order (ties by customer) defines transaction_id, so ids increase with time.
    order = np.lexsort((cust, tx_ns))
    return pd.DataFrame({
        "transaction_id": np.arange(size, dtype=np.int64),
        "tx_datetime": pd.to_datetime(tx_ns[order], utc=True),
        "customer_id": cust[order].astype(np.int64),
        "terminal_id": terminal[order].astype(np.int64),
        "amount": amount[order].astype(np.float64),
        "is_fraud": (scenario[order] > 0).astype(np.int64),
        "fraud_scenario": scenario[order].astype(np.int64),
        "label_available_at": pd.to_datetime(label_ns[order], utc=True),
    })


def generate(out_dir: Path, *, customers: int = 1000, terminals: int = 2000, days: int = 60, seed: int = 7,
             start_date: str = "2026-01-01", spending_shift: float = 1.0, shift_day: int = 0) -> list[Path]:
    """Simulate and write one parquet partition per day: out_dir/date=YYYY-MM-DD/part-0.parquet."""
    out_dir = Path(out_dir)
    df = simulate(customers=customers, terminals=terminals, days=days, seed=seed, start_date=start_date,
                  spending_shift=spending_shift, shift_day=shift_day)
    start = pd.Timestamp(start_date, tz="UTC").normalize()
    dates = [(start + pd.Timedelta(days=d)).strftime("%Y-%m-%d") for d in range(days)]
    # Partitions from an earlier, longer run would silently mix into load(); remove them.
    for old in out_dir.glob("date=*/part-0.parquet"):
        if old.parent.name.removeprefix("date=") not in dates:
            old.unlink()
    day_of = ((df["tx_datetime"] - start) // pd.Timedelta(days=1)).to_numpy()
    bounds = np.searchsorted(day_of, np.arange(days + 1))  # df is sorted by time
    paths = []
    for d, date in enumerate(dates):
        path = out_dir / f"date={date}" / "part-0.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        df.iloc[bounds[d]:bounds[d + 1]].to_parquet(path, index=False)  # empty days still get a file
        paths.append(path)
    return paths


def load(out_dir: Path) -> pd.DataFrame:
    """All partitions as one frame sorted by tx_datetime (no `date` partition column)."""
    files = sorted(Path(out_dir).glob("date=*/part-0.parquet"))
    if not files:
        raise FileNotFoundError(f"no partitions date=*/part-0.parquet under {out_dir}")
    # Files are read one by one so the reader never adds the hive partition column.
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    df = df.drop(columns=[c for c in df.columns if c not in COLUMNS]).astype(COLUMNS)
    return df.sort_values(["tx_datetime", "transaction_id"], kind="stable", ignore_index=True)[list(COLUMNS)]
