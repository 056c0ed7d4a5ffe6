"""The report's arithmetic (mlplatform/report/stats.py) against figures worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from mlplatform.report import stats


def test_bootstrap_interval_holds_the_mean_and_narrows_with_more_units():
    rng = np.random.default_rng(3)
    small, large = rng.normal(1.0, 1.0, 50), rng.normal(1.0, 1.0, 5000)
    lo_s, hi_s = stats.bootstrap_ci(len(small), lambda i: small[i].mean())
    lo_l, hi_l = stats.bootstrap_ci(len(large), lambda i: large[i].mean())
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 4  # ~ 1/sqrt(100)
    # the normal interval of a mean: +-1.96 s/sqrt(n)
    assert hi_l - lo_l == pytest.approx(2 * 1.96 * large.std() / np.sqrt(len(large)), rel=0.25)


def test_bootstrap_refuses_what_it_cannot_estimate():
    with pytest.raises(ValueError, match="at least 2"):
        stats.bootstrap_ci(1, lambda i: 0.0)
    with pytest.raises(ValueError, match="undefined"):
        stats.bootstrap_ci(10, lambda i: float("nan"))


def test_sample_sizes_match_the_closed_form():
    # p 0.10 -> 0.12: (1.96 + 0.8416)^2 (0.09 + 0.1056) / 0.02^2 = 3838.3
    assert stats.sample_size_proportion(0.10, 0.20) == 3839
    # std 1, delta 0.1: 2 (2.8016)^2 / 0.01 = 1569.8
    assert stats.sample_size_mean(1.0, 0.1) == 1570
    assert stats.sample_size_proportion(0.10, 0.10) > stats.sample_size_proportion(0.10, 0.20)
    for bad in (lambda: stats.sample_size_proportion(0.0, 0.1), lambda: stats.sample_size_proportion(0.95, 0.1),
                lambda: stats.sample_size_mean(0.0, 0.1)):
        with pytest.raises(ValueError):
            bad()


def test_capacity_from_cpu_per_request():
    # 2.668 CPU ms x 1000 req/s = 2.668 cores busy; at 60%: 4.45 cores, 5 one-core replicas
    assert stats.capacity(2.668, 1000, 1.0) == {"rps": 1000, "cores": 4.45, "replicas": 5}
    assert stats.capacity(2.668, 10000, 0.5)["replicas"] == 89
    assert stats.cpu_quantity("250m") == 0.25 and stats.cpu_quantity("2") == 2.0
    with pytest.raises(ValueError):
        stats.capacity(0, 1000, 1.0)


def test_memory_is_shown_in_mib_below_a_gib_and_gib_above():
    from mlplatform.report.stats import gib

    assert gib(648 * 10**5) == "62 MiB"
    assert gib(648 * 10**7) == "6.0 GiB"
