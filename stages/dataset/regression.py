"""Regression labels (data.task: regression): numeric cells, and the quantile bins the split stratifies on.

A regression split cannot stratify on the label itself (every value is its own "class"), so the rows are
ranked by label and cut into at most QUANTILE_BINS equal-count bins; train/valid and train/dev are then
stratified on those bins, so every split spans the whole range of scores (low, middle and high).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from stages.common.errors import UserError

QUANTILE_BINS = 5
STRATUM = "stratum"  # the column the split stratifies on: the label (classification) or its quantile bin


def numeric_labels(cells: pd.Series, source: str, column: str) -> pd.Series:
    """The label column as floats; a cell that is not a finite number is an error naming its row."""
    text = cells.astype(str).str.strip()
    empty = text.eq("")
    if empty.any():  # the same words as a classification label's empty cell (stages/dataset/tables.py)
        raise UserError(f"{source}: empty label in column {column!r} on row {int(empty.idxmax()) + 1} "
                        f"({int(empty.sum())} empty in all); fill it in or remove the row")
    values = pd.to_numeric(text, errors="coerce")
    bad = values.isna() | ~np.isfinite(values.fillna(0.0))
    if bad.any():
        first = bad.idxmax()
        raise UserError(f"{source}: label {text[first]!r} in column {column!r} on row {int(first) + 1} is not a number "
                        f"({int(bad.sum())} such cells in all); with data.task: regression every label must be a "
                        f"number: fix those cells, or set data.task: single_label for class names")
    if len(values) and values.nunique() == 1:
        raise UserError(f"{source}: every label in column {column!r} is {values.iloc[0]:g}; a regression needs scores "
                        f"that differ (Pearson and Spearman are undefined otherwise): check data.label_column")
    return values.astype(np.float64)


def bin_count(n_rows: int, valid_size: float) -> int:
    """Bins small enough that each split can hold a row of every bin (as a class needs in a stratified split)."""
    n_valid = math.ceil(n_rows * valid_size)
    return max(1, min(QUANTILE_BINS, n_valid, n_rows - n_valid, n_rows // 2))


def quantile_bins(labels: pd.Series, bins: int) -> pd.Series:
    """Equal-count bins 0..bins-1 of the labels in rank order (ties broken by row order, so bins stay equal)."""
    ranks = labels.rank(method="first").to_numpy() - 1
    return pd.Series((ranks * bins // len(labels)).astype(int), index=labels.index)


def label_statistics(labels: pd.Series) -> dict[str, float]:
    values = np.asarray(labels, dtype=np.float64)
    return {"rows": int(len(values)), "mean": round(float(values.mean()), 6), "std": round(float(values.std()), 6),
            "min": round(float(values.min()), 6), "max": round(float(values.max()), 6)}
