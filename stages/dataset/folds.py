"""Stratified k-fold cross-validation (split.folds > 1) over every labelled row the split stage kept.

The cross-validated rows ("cv rows") are the split stage's train, dev and valid splits concatenated in that
order: cv row i is the i-th of them. Each row is held out by exactly one fold. Inside each fold's training part,
`carve_dev` takes the dev rows that early stopping and the kept checkpoint are chosen on, so a fold's
selection never sees the rows that fold is scored on. Both the cv_split and the cv_train stages compute the
assignment from the same labels and params, so it is written nowhere but the summary.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import datasets
import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from stages.common.errors import UserError
from stages.common.params import SplitParams
from stages.dataset.splitting import carve_dev

CV_SPLITS = ("train", "dev", "valid")  # of the split stage's DatasetDict, in cv row order


@dataclass(frozen=True)
class FoldRows:
    """cv row numbers of one fold, each array sorted."""
    fold: int
    train: np.ndarray
    dev: np.ndarray
    heldout: np.ndarray


def cv_dataset(dataset_dict: datasets.DatasetDict) -> datasets.Dataset:
    """The cv rows (split or tokenize output): train, dev and valid, one after the other."""
    return datasets.concatenate_datasets([dataset_dict[name] for name in CV_SPLITS])


def cv_labels(dataset_dict: datasets.DatasetDict) -> np.ndarray:
    return np.concatenate([np.asarray(dataset_dict[name]["label"], dtype=np.int64) for name in CV_SPLITS])


def heldout_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Per cv row, the fold (1..folds) that holds it out: scikit-learn's StratifiedKFold, shuffled with `seed`."""
    counts = np.bincount(labels)
    if counts.max() < folds:
        raise UserError(f"split.folds: {folds} folds need a class with at least {folds} rows, but the largest has "
                        f"{int(counts.max())}; lower split.folds (and split.fold_ids) or add rows")
    assignment = np.zeros(len(labels), dtype=np.int64)
    with warnings.catch_warnings():
        # A class with fewer rows than folds is reported by folds_summary's notes instead.
        warnings.simplefilter("ignore", UserWarning)
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for index, (_, heldout) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
            assignment[heldout] = index + 1
    return assignment


def fold_rows(labels: np.ndarray, names: list[str], fold: int, split: SplitParams) -> tuple[FoldRows, list[str]]:
    """Rows of `fold`: held out, dev (carved from the rest, as the single split carves it) and train."""
    assignment = heldout_folds(labels, split.folds, split.seed)
    heldout = np.flatnonzero(assignment == fold)
    rest = np.flatnonzero(assignment != fold)
    frame = pd.DataFrame({"label": [names[i] for i in labels[rest]]}, index=rest)
    train, dev, notes = carve_dev(frame, split.dev_size, split.dev_min_per_class, split.seed)
    rows = FoldRows(fold, train.index.to_numpy(dtype=np.int64), dev.index.to_numpy(dtype=np.int64), heldout)
    return rows, [f"fold {fold}: {note}" for note in notes]


def folds_summary(labels: np.ndarray, names: list[str], split: SplitParams) -> tuple[dict, list[str]]:
    """(folds.json: per fold and part, rows per class; notes on classes too rare for every fold)."""
    summary: dict = {"folds": split.folds, "seed": split.seed, "rows": int(len(labels)), "label_names": names,
                     "row_order": "cv row i = the i-th row of the split stage's train, dev, valid splits in turn"}
    counts = np.bincount(labels, minlength=len(names))
    notes = [f"class {name!r} has {int(counts[i])} rows, fewer than split.folds {split.folds}: "
             f"{split.folds - int(counts[i])} of the folds hold none of it out" for i, name in enumerate(names)
             if counts[i] < split.folds]
    per_fold = {}
    for fold in range(1, split.folds + 1):
        rows, more = fold_rows(labels, names, fold, split)
        notes += more
        per_fold[str(fold)] = {part: {name: int(np.sum(labels[getattr(rows, part)] == i)) for i, name in enumerate(names)}
                               for part in ("train", "dev", "heldout")}
    summary["class_counts"] = per_fold
    return summary, notes
