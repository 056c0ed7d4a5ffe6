"""PSI and KS on known distributions; streaming histograms equal the batch ones."""

from __future__ import annotations

import numpy as np
import pytest

from mlplatform.monitoring.drift import SCORE, DriftReference, StreamingHistograms, psi, psi_ks

RNG = np.random.default_rng(3)


@pytest.fixture(scope="module")
def reference():
    n = 50_000
    return DriftReference.build({
        "x": RNG.normal(size=n),
        "flag": RNG.integers(0, 2, size=n),
        "gappy": np.where(RNG.random(n) < 0.1, np.nan, RNG.exponential(size=n)),
        SCORE: RNG.beta(1, 20, size=n),
    }, bins=10)


def test_reference_bins_and_round_trip(reference):
    i = reference.names.index("flag")
    assert reference.edges[i].tolist() == [0.0, 1.0]  # duplicate quantiles collapse
    assert reference.continuous == [True, False, True, True]
    for p in reference.proportions:
        assert p.sum() == pytest.approx(1.0)
    assert reference.proportions[reference.names.index("gappy")][-1] == pytest.approx(0.1, abs=0.01)
    again = DriftReference.from_json(reference.to_json())
    assert again.names == reference.names and all(np.array_equal(a, b) for a, b in zip(again.edges, reference.edges))


def test_identical_distribution_has_near_zero_psi_and_ks(reference):
    n = 50_000
    cur = np.column_stack([RNG.normal(size=n), RNG.integers(0, 2, size=n),
                           np.where(RNG.random(n) < 0.1, np.nan, RNG.exponential(size=n)), RNG.beta(1, 20, size=n)])
    out = psi_ks(reference, cur)
    for name, v in out.items():
        assert v["psi"] < 0.01, name
    assert out["x"]["ks"] < 0.02 and out[SCORE]["ks"] < 0.02
    assert np.isnan(out["flag"]["ks"])  # discrete: no KS


def test_shifted_distribution_is_above_the_thresholds(reference):
    n = 20_000
    cur = np.column_stack([RNG.normal(0.5, 1, size=n), RNG.integers(0, 2, size=n) * (RNG.random(n) < 0.3),
                           np.where(RNG.random(n) < 0.5, np.nan, RNG.exponential(size=n)), RNG.beta(1, 20, size=n)])
    out = psi_ks(reference, cur)
    assert out["x"]["psi"] > 0.2 and out["x"]["ks"] > 0.15  # N(0.5,1) vs N(0,1): exact KS 0.197
    assert out["flag"]["psi"] > 0.2  # 50/50 -> 85/15
    assert out["gappy"]["psi"] > 0.2  # missing share 10% -> 50%
    assert out[SCORE]["psi"] < 0.01


def test_psi_matches_the_formula():
    ref, cur = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    assert psi(ref, cur) == pytest.approx(0.4 * np.log(0.9 / 0.5) - 0.4 * np.log(0.1 / 0.5))


def test_streaming_counts_equal_batch_counts(reference):
    n = 3000
    cur = np.column_stack([RNG.normal(size=n), RNG.integers(0, 2, size=n),
                           np.where(RNG.random(n) < 0.2, np.nan, RNG.exponential(size=n)), RNG.beta(1, 5, size=n)])
    # values exactly on an edge go to the lower bin in both paths
    cur[:10, 0] = reference.edges[0][:10] if reference.edges[0].size >= 10 else cur[:10, 0]
    hist = StreamingHistograms(reference, window_rows=10**9)
    for start in range(0, n, 7):  # requests of 7 rows
        hist.update(cur[start:start + 7])
    p, k = hist.psi_ks()
    batch = psi_ks(reference, cur)
    for i, name in enumerate(reference.names):
        assert p[i] == pytest.approx(batch[name]["psi"], abs=1e-12), name
        assert (np.isnan(k[i]) and np.isnan(batch[name]["ks"])) or k[i] == pytest.approx(batch[name]["ks"]), name


def test_streaming_window_forgets_old_rows(reference):
    hist = StreamingHistograms(reference, window_rows=1000)
    same = np.column_stack([RNG.normal(size=3000), RNG.integers(0, 2, size=3000),
                            RNG.exponential(size=3000), RNG.beta(1, 20, size=3000)])
    hist.update(same)
    shifted = same.copy()
    shifted[:, 0] += 2
    for start in range(0, 2000, 100):
        hist.update(shifted[start:start + 100])
    p, _ = hist.psi_ks()
    assert hist.window_size() <= 2000
    assert p[reference.names.index("x")] > 1.0  # only shifted rows left in the window
