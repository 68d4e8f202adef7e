"""Out-of-fold scores of a k-fold cross-validation (the cv_evaluate stage).

Every cv row is predicted once, by the fold model that did not train on it (nor select on it). The pooled
out-of-fold predictions give one macro-F1 and accuracy with a 95% stratified-bootstrap interval
(significance.metric_intervals, the evaluate stage's intervals); the folds' own held-out scores give the
mean and the standard deviation across folds (sample standard deviation, ddof 1): how much one split's
score moves with the luck of the split.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stages.common.errors import UserError
from stages.evaluation.metrics import classification_scores, rounded
from stages.evaluation.significance import metric_intervals
from stages.modeling.fold_outputs import read_heldout
from stages.modeling.inference import probability_columns

HEADLINE = ("macro_f1", "accuracy")


def out_of_fold(cv_dir: str | Path, fold_ids: list[int], n_rows: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(fold of each cv row, probabilities of each cv row from that fold's model); every row exactly once."""
    fold_of_row = np.zeros(n_rows, dtype=np.int64)
    probabilities = np.zeros((n_rows, n_classes), dtype=np.float64)
    for fold in fold_ids:
        rows, fold_probabilities = read_heldout(cv_dir, fold, n_classes)
        if len(rows) and (rows.min() < 0 or rows.max() >= n_rows):
            raise UserError(f"{cv_dir}/fold_{fold}: rows beyond the {n_rows} cv rows: written for other data; "
                            f"run `dvc repro`")
        twice = rows[fold_of_row[rows] != 0]
        if len(twice):
            raise UserError(f"{cv_dir}: cv row {int(twice[0])} is held out by folds {int(fold_of_row[twice[0]])} and "
                            f"{fold}: fold outputs of different runs; run `dvc repro`")
        fold_of_row[rows] = fold
        probabilities[rows] = fold_probabilities
    missing = np.flatnonzero(fold_of_row == 0)
    if len(missing):
        raise UserError(f"{cv_dir}: {len(missing)} cv rows (e.g. row {int(missing[0])}) are held out by no fold: "
                        f"fold outputs of different runs; run `dvc repro`")
    return fold_of_row, probabilities


def mean_and_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value)."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def cv_metrics(gold: np.ndarray, probabilities: np.ndarray, fold_of_row: np.ndarray, n_classes: int,
               positive: int) -> tuple[dict, list[dict]]:
    """(metrics.json's `cv` section, per-fold held-out scores)."""
    predicted = probabilities.argmax(axis=1)
    pooled = classification_scores(gold, predicted, n_classes, positive)
    intervals = metric_intervals(gold, predicted, n_classes, positive)
    per_fold = []
    for fold in np.unique(fold_of_row):
        mask = fold_of_row == fold
        scores = classification_scores(gold[mask], predicted[mask], n_classes, positive)
        per_fold.append({"fold": int(fold), "rows": int(mask.sum()), **{key: scores[key] for key in HEADLINE}})
    section: dict = {"folds": len(per_fold), "rows": int(len(gold))}
    for key in HEADLINE:
        section[f"oof_{key}"] = pooled[key]
        section[f"oof_{key}_ci95_low"], section[f"oof_{key}_ci95_high"] = intervals[key]
    for key in HEADLINE:
        section[f"fold_{key}_mean"], section[f"fold_{key}_std"] = mean_and_std([f[key] for f in per_fold])
    return rounded(section), rounded(per_fold)


def oof_frame(texts: list[str], gold: np.ndarray, fold_of_row: np.ndarray, probabilities: np.ndarray,
              names: list[str]) -> pd.DataFrame:
    """One row per cv row: its number, the fold that held it out, text, gold and out-of-fold prediction."""
    frame = pd.DataFrame({"row": np.arange(len(texts)), "fold": fold_of_row, "text": texts,
                          "gold": [names[i] for i in gold],
                          "predicted": [names[i] for i in probabilities.argmax(axis=1)]})
    return frame.assign(**probability_columns(probabilities, names))
