"""LETOR / SVMlight ranking files: `label qid:Q 1:v 2:v ... # comment`, one document per line.

The format of MSLR-WEB10K/30K, LETOR 3.0/4.0 and Yahoo! LTR. Feature indices may be sparse; a
missing feature is 0 (the SVMlight convention). Rows of one query are contiguous in the files,
and their order is kept (`doc_id` numbers them within the file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

LETOR_TIME = pd.Timestamp("2000-01-01", tz="UTC")  # LETOR has no time; every row gets this one


def read_letor(path: Path | str, split: str | None = None, num_features: int | None = None) -> pd.DataFrame:
    """A LETOR file as a frame: label, qid (str), doc_id, f1..fN (float64) [, split]."""
    path = Path(path)
    labels, qids, feats = [], [], []
    width = 0
    with path.open() as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) < 2 or not parts[1].startswith("qid:"):
                raise ValueError(f"{path}:{lineno}: expected 'label qid:Q idx:value ...', got {line[:80]!r}")
            try:
                labels.append(int(float(parts[0])))
                row = {}
                for tok in parts[2:]:
                    idx, _, val = tok.partition(":")
                    row[int(idx)] = float(val)
            except ValueError as err:
                raise ValueError(f"{path}:{lineno}: {err}") from None
            if row and min(row) < 1:
                raise ValueError(f"{path}:{lineno}: feature indices start at 1")
            qids.append(parts[1][4:])
            feats.append(row)
            width = max(width, max(row, default=0))
    if not labels:
        raise ValueError(f"{path}: no rows")
    width = max(width, num_features or 0)
    matrix = np.zeros((len(labels), width), dtype=np.float64)
    for i, row in enumerate(feats):
        for idx, val in row.items():
            matrix[i, idx - 1] = val
    df = pd.DataFrame(matrix, columns=[f"f{i}" for i in range(1, width + 1)])
    df.insert(0, "doc_id", np.arange(len(labels), dtype=np.int64))
    df.insert(0, "qid", qids)
    df.insert(0, "label", np.asarray(labels, dtype=np.int64))
    if split:
        df["split"] = split
    return df


def read_letor_set(train: Path, valid: Path | None = None, test: Path | None = None) -> pd.DataFrame:
    """Train (and validation / test) files as one frame with a `split` column and one width.

    Query ids are prefixed by their split so a qid reused across files stays separate."""
    files = [(s, Path(p)) for s, p in (("train", train), ("valid", valid), ("test", test)) if p]
    frames = [read_letor(p, s) for s, p in files]
    width = max(sum(c.startswith("f") and c[1:].isdigit() for c in f.columns) for f in frames)
    out = []
    offset = 0
    for f in frames:
        for i in range(1, width + 1):
            if f"f{i}" not in f.columns:
                f[f"f{i}"] = 0.0
        f["qid"] = f["split"] + ":" + f["qid"]
        f["doc_id"] += offset
        offset += len(f)
        out.append(f)
    df = pd.concat(out, ignore_index=True)
    df["event_time"] = LETOR_TIME
    cols = ["qid", "doc_id", "label", "split", "event_time"] + [f"f{i}" for i in range(1, width + 1)]
    return df[cols]


def write_letor(df: pd.DataFrame, path: Path | str, features: list[str], label: str = "label",
                qid: str = "qid") -> Path:
    """Write rows as a LETOR file (used by tests and to export training sets)."""
    path = Path(path)
    with path.open("w") as fh:
        for row in df[[label, qid, *features]].itertuples(index=False):
            vals = " ".join(f"{i}:{v:g}" for i, v in enumerate(row[2:], 1))
            fh.write(f"{int(row[0])} qid:{row[1]} {vals}\n")
    return path
