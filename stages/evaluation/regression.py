"""Regression metrics (data.task: regression): Pearson, Spearman, MSE and MAE with bootstrap intervals.

The intervals reuse significance.py's resampling, stratified on quantile bins of the gold score (the same
bins the split stratifies on; a float label has no classes), so a resample keeps the spread of the scored
split. A correlation is undefined when either side is constant (e.g. a model predicting one value for
every text): it is reported as 0.0, no linear or rank relation measurable, rather than NaN (invalid JSON).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from transformers import EvalPrediction

from stages.dataset.regression import QUANTILE_BINS, quantile_bins
from stages.evaluation.significance import RESAMPLES, SEED, percentile_interval, stratified_resamples

METRICS = ("pearson", "spearman", "mse", "mae")
LOWER_IS_BETTER = ("mse", "mae")
NOT_APPLICABLE = "does not apply to data.task regression"


def _correlation(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation along the last axis; 0.0 where either side is constant."""
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((x * x).sum(axis=-1) * (y * y).sum(axis=-1))
    numerator = (x * y).sum(axis=-1)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 1e-12)


def regression_scores(gold: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    gold, predicted = np.asarray(gold, dtype=np.float64), np.asarray(predicted, dtype=np.float64).reshape(-1)
    error = predicted - gold
    return {"pearson": float(_correlation(gold, predicted)),
            "spearman": float(_correlation(rankdata(gold), rankdata(predicted))),
            "mse": float(np.mean(error ** 2)), "mae": float(np.mean(np.abs(error)))}


def resample_scores(gold: np.ndarray, predicted: np.ndarray, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric of every resample at once: `indices` is (resamples, n) rows."""
    gold, predicted = np.asarray(gold, dtype=np.float64)[indices], np.asarray(predicted, dtype=np.float64)[indices]
    error = predicted - gold
    return {"pearson": _correlation(gold, predicted),
            "spearman": _correlation(rankdata(gold, axis=-1), rankdata(predicted, axis=-1)),
            "mse": (error ** 2).mean(axis=-1), "mae": np.abs(error).mean(axis=-1)}


def regression_resamples(gold: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """Bootstrap rows drawn within quantile bins of the gold scores."""
    bins = quantile_bins(pd.Series(np.asarray(gold, dtype=np.float64)), max(1, min(QUANTILE_BINS, len(gold))))
    return stratified_resamples(bins.to_numpy(), resamples, seed)


def regression_intervals(gold: np.ndarray, predicted: np.ndarray, resamples: int = RESAMPLES,
                         seed: int = SEED) -> dict[str, tuple[float, float]]:
    scores = resample_scores(gold, predicted, regression_resamples(gold, resamples, seed))
    return {name: percentile_interval(values) for name, values in scores.items()}


def regression_headline(gold: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """metrics.json's keys of one scored split: each metric followed by its 95% interval."""
    scores, intervals = regression_scores(gold, predicted), regression_intervals(gold, predicted)
    headline: dict = {}
    for key in METRICS:
        headline[key] = scores[key]
        headline[f"{key}_ci95_low"], headline[f"{key}_ci95_high"] = intervals[key]
    return headline


def make_regression_compute_metrics():
    """The Trainer's compute_metrics for a one-output regression head."""
    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        outputs = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        return regression_scores(np.asarray(prediction.label_ids), np.asarray(outputs).reshape(-1))

    return compute_metrics


# The dev-score curves that dvc.yaml's top-level `dev_scores` plot draws (classification metrics). A regression run
# logs pearson/spearman/mse/mae curves instead (same folder); these files get their header only, so `dvc plots show`
# loads every declared plot without an error and draws that one empty.
CLASSIFICATION_CURVES = ("macro_f1", "accuracy", "macro_precision", "macro_recall")


def write_classification_curve_placeholders(log_dir: str | Path) -> None:
    folder = Path(log_dir) / "plots" / "metrics" / "eval"
    folder.mkdir(parents=True, exist_ok=True)
    for name in CLASSIFICATION_CURVES:
        path = folder / f"{name}.tsv"
        if not path.exists():
            path.write_text(f"step\t{name}\n", encoding="utf-8")
