"""Ingest a tenant's data into daily parquet partitions and fingerprint the snapshot.

Sources: a seeded generator named in the tenant file, or a CSV/parquet table given by path.
The snapshot hash (sha256 over partition bytes) is the data lineage recorded with each model.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import asdict, dataclass
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
        write_partitions(read_table(src), staging, cfg.data.timestamp, cfg.data.partition_by_day)
    paths = sorted(staging.rglob("*.parquet"))
    if not paths:
        raise RuntimeError(f"ingest of tenant {cfg.name!r} produced no parquet files in {staging}")
    # swap in the complete snapshot only once it is fully written
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    paths = sorted(out.rglob("*.parquet"))
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
    return Snapshot(str(out), len(paths), rows, fingerprint(paths, out))


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
