"""What a task adds to the report (tasks/<task>.py's `report_sections()` returns one): the
sections whose figures differ by task. sections.py holds the ones every task shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlplatform.report.model import Section, Timing
from mlplatform.report.records import Records


@dataclass
class Context:
    rec: Records
    out_dir: Path  # the PNGs go here
    # validation predictions rebuilt from the run's logged rows and model (TaskReport.evaluate)
    evaluation: dict[str, Any] = field(default_factory=dict)
    shown: dict[str, float] = field(default_factory=dict)  # MLflow metrics shown (tests compare)

    def metric(self, key: str, digits: int = 4) -> str:
        """A recorded MLflow metric as shown (format_metric), remembered for the tests; '-' when absent."""
        if key not in self.rec.metrics:
            return "-"
        self.shown[key] = self.rec.metrics[key]
        return format_metric(key, self.rec.metrics[key], digits)

    def logged_interval(self, key: str) -> str | None:
        """The bootstrap interval training logged for `key` (`<key>.ci_low`, `<key>.ci_high`:
        training/confidence.py), as shown; None when the run logged none."""
        low, high = f"{key}.ci_low", f"{key}.ci_high"
        if low not in self.rec.metrics or high not in self.rec.metrics:
            return None
        return f"[{self.metric(low)}, {self.metric(high)}]"

    def interval_header(self, recomputed: str) -> str:
        """The interval column's header: how training's logged intervals were drawn, or `recomputed`
        (the report's own bootstrap) for a run that logged none."""
        ci = self.rec.artifacts.get("confidence_intervals.json") or {}
        if not ci.get("intervals"):
            return recomputed
        return (f"{ci['level'] * 100:g}% bootstrap CI ({ci['requested']} resamples of {ci['unit']}, seed "
                f"{ci['seed']}; logged by training)")


COUNTS = ("rows", "queries", "click_labelled_train_rows")  # MLflow logs every metric as a float


def format_metric(key: str, value: float, digits: int = 4) -> str:
    """A count as a whole number with thousands separators, anything else rounded to `digits`."""
    if key.rsplit(".", 1)[-1] in COUNTS and float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.{digits}f}"


@dataclass(frozen=True)
class Experiment:
    """The primary online metric an A/B test would read, with its measured baseline."""

    metric: str
    unit: str  # what one observation is (a request, a query)
    baseline: float
    std: float | None  # None: a proportion (its variance follows from the baseline)
    source: str
    relative_mde: float


class TaskReport(Protocol):
    def evaluate(self, ctx: Context) -> None:
        """Rebuild the validation predictions from the run's records into ctx.evaluation (or leave
        a `missing` reason there)."""

    def metrics(self, ctx: Context) -> Section: ...

    def model(self, ctx: Context) -> Section: ...

    def serving_timings(self, ctx: Context) -> list[Timing]:
        """Latency by stage, each timing naming its source."""

    def cpu_ms_per_request(self, ctx: Context) -> tuple[float, str] | None:
        """Server CPU ms per request and its source, for the capacity estimate."""

    def experiment(self, ctx: Context) -> Experiment | None: ...
