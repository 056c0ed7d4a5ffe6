"""The plan of a tenant scaffolded from a table: what infer.py reads off the table, what render.py writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass
class Plan:
    """Everything inferred from the table, before anything is written."""

    name: str
    source: Path
    df: pd.DataFrame
    label: str
    timestamp: str
    entity: str
    synthetic_timestamp: bool
    generated_entity: bool
    label_mapping: dict[str, int]
    rows_read: int = 0
    timestamp_unit: str | None = None  # the timestamp column holds numbers of this unit ...
    timestamp_origin: pd.Timestamp | None = None  # ... counted from this instant (ingest converts them)
    renamed: dict[str, str] = field(default_factory=dict)
    dropped_rows: dict[str, int] = field(default_factory=dict)
    codes: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # code column -> (source, values)
    converted: dict[str, str] = field(default_factory=dict)  # column -> note on a dtype change
    columns: list[dict[str, Any]] = field(default_factory=list)
    features: list[dict[str, Any]] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)  # column -> why it is not a model input
    validation_days: float = 0.0
    validation_fraction: float = 0.0
    split_rows: tuple[int, int] = (0, 0)
    duplicate_keys: int = 0

    def times(self) -> pd.Series:
        """The timestamp column as UTC date/times; numbers converted as ingest converts them."""
        from mlplatform.data.ingest import numeric_times

        ts = self.df[self.timestamp]
        return ts if self.timestamp_unit is None else numeric_times(ts, self.timestamp_unit, self.timestamp_origin)
