"""Ingest a tenant's data into daily parquet partitions and fingerprint the snapshot.

Sources: a seeded generator named in the tenant file, or a CSV/parquet table given by path.
The snapshot hash (sha256 over partition bytes) is the data lineage recorded with each model.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from mlplatform.config import TenantConfig
from mlplatform.plugins import resolve
from mlplatform.workspace import Workspace


@dataclass(frozen=True)
class Snapshot:
    path: str
    partitions: int
    rows: int
    sha256: str

    def to_dict(self) -> dict:
        return asdict(self)


TABLES_DIR = "tables"  # auxiliary tables of a snapshot: <raw>/tables/<name>/*.parquet


def read_table(path: Path, exclude: str | None = None) -> pd.DataFrame:
    """Read a CSV file, a parquet file, or a folder of parquet partitions (minus subfolder `exclude`)."""
    if path.is_dir():
        files = sorted(f for f in path.rglob("*.parquet")
                       if exclude is None or f.relative_to(path).parts[0] != exclude)
        if not files:
            raise FileNotFoundError(f"{path}: folder holds no parquet files")
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path)
    if path.suffix.lower() in {".parquet", ".pq"}:
        return pd.read_parquet(path)
    raise ValueError(f"{path}: unsupported table format (use .csv, .parquet or a folder of parquet files)")


UNIX_EPOCH = pd.Timestamp("1970-01-01T00:00:00Z")


def numeric_times(values: pd.Series, unit: str, origin: datetime | str | None = None) -> pd.Series:
    """Numbers of `unit` (s, ms, us, ns) counted from `origin` (default: the Unix epoch; naive means
    UTC) as UTC date/times; a missing number stays missing. Raises ValueError when the values are
    not numbers or land outside the years a timestamp holds (1677-2262: usually the wrong unit)."""
    if not pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        raise ValueError(f"holds {values.dtype} values, not numbers of {unit}")
    start = UNIX_EPOCH if origin is None else pd.Timestamp(origin)
    start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
    try:
        times = start + pd.to_timedelta(values, unit=unit)
    except (OverflowError, pd.errors.OutOfBoundsTimedelta, pd.errors.OutOfBoundsDatetime):
        times = None
    if times is None or (values.notna() & times.isna()).any():
        raise ValueError(f"values from {values.min()} to {values.max()} {unit} after {start.isoformat()} do not fit "
                         "in a timestamp (years 1677-2262): is the unit right?")
    return times


def write_partitions(df: pd.DataFrame, out_dir: Path, timestamp: str, by_day: bool = True) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    if not by_day:
        path = out_dir / "part-0.parquet"
        df.to_parquet(path, index=False)
        return [path]
    ts = pd.to_datetime(df[timestamp], utc=True)
    paths = []
    for day, part in df.groupby(ts.dt.strftime("%Y-%m-%d"), sort=True):
        path = out_dir / f"date={day}" / "part-0.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        part.to_parquet(path, index=False)
        paths.append(path)
    return paths


def fingerprint(paths: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ingest(cfg: TenantConfig, ws: Workspace) -> Snapshot:
    """(Re)build the raw partitions for a tenant. The previous snapshot is replaced as a whole."""
    out = ws.raw_dir(cfg.name)
    staging = out.with_name("raw.staging")
    shutil.rmtree(staging, ignore_errors=True)
    if cfg.data.source == "generator":
        resolve(cfg.data.generator)(staging, **cfg.data.generator_args)
        missing = [t for t in cfg.data.tables if not (staging / TABLES_DIR / t).is_dir()]
        if missing:
            raise RuntimeError(f"generator {cfg.data.generator!r} wrote no table(s) {missing} "
                               f"(expected {staging / TABLES_DIR}/<name>/*.parquet)")
    elif cfg.data.source == "letor":
        from mlplatform.ranking.letor import read_letor_set

        files = cfg.data.letor
        paths = [None if f is None else (Path(f) if Path(f).is_absolute() else cfg.tenant_dir / f)
                 for f in (files.train, files.valid, files.test)]
        write_partitions(read_letor_set(*paths), staging, cfg.data.timestamp, by_day=False)
    else:
        src = Path(cfg.data.path)
        if not src.is_absolute():
            src = cfg.tenant_dir / src
        write_partitions(table_with_times(read_table(src), cfg), staging, cfg.data.timestamp,
                         cfg.data.partition_by_day)
    paths = sorted(staging.rglob("*.parquet"))
    if not paths:
        raise RuntimeError(f"ingest of tenant {cfg.name!r} produced no parquet files in {staging}")
    # swap in the complete snapshot only once it is fully written
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    paths = sorted(out.rglob("*.parquet"))
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
    return Snapshot(str(out), len(paths), rows, fingerprint(paths, out))


def table_with_times(df: pd.DataFrame, cfg: TenantConfig) -> pd.DataFrame:
    """The table with a numeric timestamp column (data.timestamp_unit) converted to UTC date/times."""
    unit, col = cfg.data.timestamp_unit, cfg.data.timestamp
    if unit is None:
        return df
    if col not in df.columns:
        raise ValueError(f"data.timestamp: the table has no column {col!r}")
    try:
        times = numeric_times(df[col], unit, cfg.data.timestamp_origin)
    except ValueError as err:
        raise ValueError(f"data.timestamp column {col!r} (data.timestamp_unit {unit!r}): {err}") from None
    return df.assign(**{col: times})


def load_raw(cfg: TenantConfig, ws: Workspace) -> pd.DataFrame:
    path = ws.raw_dir(cfg.name)
    if not path.exists():
        raise FileNotFoundError(f"tenant {cfg.name!r} has no ingested data at {path}; run the ingest step first")
    df = read_table(path, exclude=TABLES_DIR)
    if cfg.data.timestamp in df.columns:
        df[cfg.data.timestamp] = pd.to_datetime(df[cfg.data.timestamp], utc=True)
        df = df.sort_values(cfg.data.timestamp, kind="stable").reset_index(drop=True)
    return df


def load_table(cfg: TenantConfig, ws: Workspace, name: str) -> pd.DataFrame:
    """An auxiliary table (data.tables) of the ingested snapshot."""
    if name not in cfg.data.tables:
        raise KeyError(f"tenant {cfg.name!r} declares no table {name!r} (data.tables: {sorted(cfg.data.tables)})")
    path = ws.raw_dir(cfg.name) / TABLES_DIR / name
    if not path.exists():
        raise FileNotFoundError(f"tenant {cfg.name!r} has no ingested table {name!r} at {path}; run ingest first")
    return read_table(path)
