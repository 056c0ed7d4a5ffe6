"""The figures the reliability suite measures (requests tried, errors, faults survived), one module
imported under one name by the tests and the conftest (a conftest may be imported twice under
different names; a dict in it would then be two dicts)."""

from __future__ import annotations

FIGURES: dict[str, dict] = {}


def record(section: str, **figures) -> None:
    """Add figures to the suite's report (merged per section)."""
    FIGURES.setdefault(section, {}).update(figures)
