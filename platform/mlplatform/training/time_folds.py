"""Choosing over several time folds when the validation window is too thin to choose on.

A validation window with a handful of positives cannot choose a model: with one positive, early
stopping's PR-AUC peaked at round 1 (issue #18), and a tuning trial that wins there wins on one row.
When the window holds fewer than `model.split.min_validation_positives` positives, the
classification recipe chooses over `model.split.time_folds` expanding time folds of the training
and validation rows together, in time order: fold i trains on every row before its window and scores
the window; the windows are cut so that each holds an equal share of the positives (the rows before
the first window are only trained on). The rounds are the best round of the validation metric
averaged over the folds (`best_rounds`), at least `model.min_boost_rounds`; the final model trains on
the training rows alone for that many rounds, so the validation window stays unseen and the step's
metrics and its evidence check (evidence.py) still read rows the model never trained on.

This module decides and describes (library-free); the trainer trains the folds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlplatform.config import TenantConfig


@dataclass
class Folds:
    frame: pd.DataFrame  # training then validation rows, in time order
    windows: list[tuple[int, int]]  # fold i: trains on frame[:start], scores frame[start:end]

    def parts(self, i: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        start, end = self.windows[i]
        return self.frame.iloc[:start], self.frame.iloc[start:end]


def positives(y) -> int:
    return int((np.asarray(y) == 1).sum())


def thin(cfg: TenantConfig, valid_df: pd.DataFrame) -> bool:
    return positives(valid_df[cfg.data.label]) < cfg.model.split.min_validation_positives


def time_folds(cfg: TenantConfig, train_df: pd.DataFrame, valid_df: pd.DataFrame) -> Folds | None:
    """The folds, or None when the rows hold too few positives for even one (a fold needs one
    positive to train on and one to score)."""
    label, ts = cfg.data.label, cfg.data.timestamp
    frame = pd.concat([train_df, valid_df], ignore_index=True)
    if ts in frame.columns:  # else the rows' own order: training rows before validation rows
        frame = frame.iloc[np.argsort(pd.to_datetime(frame[ts], utc=True).to_numpy(), kind="stable")]
    frame = frame.reset_index(drop=True)
    pos = np.flatnonzero(frame[label].to_numpy() == 1)
    k = min(cfg.model.split.time_folds, len(pos) - 1)
    if k < 1:
        return None
    starts = [int(pos[int(len(pos) * i / (k + 1) + 0.5)]) for i in range(1, k + 1)]
    windows = list(zip(starts, starts[1:] + [len(frame)]))
    return Folds(frame, windows)


def best_rounds(curves: list[np.ndarray]) -> tuple[int, np.ndarray]:
    """The round (1-based) where the folds' mean validation metric peaks (the first, on a tie), and
    that mean curve. Curves are per round, higher is better; a fold that stopped early contributes
    the rounds it has (the mean at a round is over the folds that reached it)."""
    longest = max(len(c) for c in curves)
    padded = np.full((len(curves), longest), np.nan)
    for i, c in enumerate(curves):
        padded[i, : len(c)] = c
    mean = np.nanmean(padded, axis=0)
    return int(np.argmax(mean)) + 1, mean


def record(cfg: TenantConfig, valid_df: pd.DataFrame, folds: Folds | None = None, rounds: int | None = None,
           scores: list[float] | None = None) -> dict:
    """What the train record, the MLflow run and the output say about how the model was chosen."""
    s, label = cfg.model.split, cfg.data.label
    valid_pos = positives(valid_df[label])
    if not thin(cfg, valid_df):
        return {"rule": "validation window", "thin": False, "validation_positives": valid_pos,
                "min_validation_positives": s.min_validation_positives}
    if folds is None:
        return {"rule": "validation window (too few positives for time folds)", "thin": True,
                "validation_positives": valid_pos, "min_validation_positives": s.min_validation_positives,
                "message": f"the validation window holds {valid_pos} positive(s), fewer than "
                           f"model.split.min_validation_positives {s.min_validation_positives}, and all rows too few "
                           f"for time folds: early stopping on the window, at least "
                           f"{cfg.model.min_boost_rounds} rounds (model.min_boost_rounds)"}
    per_window = [positives(folds.parts(i)[1][label]) for i in range(len(folds.windows))]
    out = {"rule": "time folds", "thin": True, "validation_positives": valid_pos,
           "min_validation_positives": s.min_validation_positives,
           "folds": [{"train_rows": start, "window_rows": end - start, "window_positives": p}
                     for (start, end), p in zip(folds.windows, per_window)],
           "rounds": rounds,
           "message": f"the validation window holds {valid_pos} positive(s), fewer than "
                      f"model.split.min_validation_positives {s.min_validation_positives}: the rounds ({rounds}) were "
                      f"chosen over {len(folds.windows)} time folds of the training and validation rows, their "
                      f"windows holding {'/'.join(map(str, per_window))} positives"}
    if scores is not None:
        out["fold_scores"] = [round(float(x), 4) for x in scores]
    return out
