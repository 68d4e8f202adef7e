"""Multi-label metrics (data.task: multi_label): micro, macro and samples F1 with bootstrap intervals, the
per-label table, and the decision threshold chosen on the dev split.

A label is predicted when its sigmoid probability reaches the threshold. One global threshold is chosen on dev
(never valid or test) from THRESHOLD_GRID, maximising train.metric_for_best_model; the train stage stores it in
the model's config.json (MULTI_LABEL_THRESHOLD) and evaluate, submit and predict read it from there. The Trainer's
per-epoch dev scores (early stopping, the checkpoint kept) use 0.5: the threshold is chosen once, for the kept model.

F1 follows scikit-learn with zero_division=0: a label (macro) or a row (samples) with no gold and no predicted
label scores 0. The bootstrap resamples rows within strata of each row's rarest gold label (rows without a label
form their own stratum): an approximation of stratification for label sets, so a rare label keeps its rows.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score, precision_recall_fscore_support
from transformers import EvalPrediction

from stages.evaluation.significance import RESAMPLES, SEED, percentile_interval, stratified_resamples

METRICS = ("micro_f1", "macro_f1", "samples_f1")
THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 .. 0.95
DEFAULT_THRESHOLD = 0.5
MULTI_LABEL_THRESHOLD = "multi_label_threshold"  # the custom key in the model's config.json
NOT_APPLICABLE = "does not apply to data.task multi_label"


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def predicted_labels(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    return (np.asarray(probabilities) >= threshold).astype(np.int64)


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp, dtype=np.float64), where=denominator > 0)


def _counts(gold: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gold, predicted = gold.astype(bool), predicted.astype(bool)
    return ((gold & predicted).astype(np.float64), (~gold & predicted).astype(np.float64),
            (gold & ~predicted).astype(np.float64))


def resample_scores(gold: np.ndarray, predicted: np.ndarray, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric of every resample at once: `indices` is (resamples, n) rows; gold and predicted (n, labels)."""
    tp, fp, fn = _counts(np.asarray(gold)[indices], np.asarray(predicted)[indices])  # (resamples, n, labels)
    micro = _f1(tp.sum(axis=(1, 2)), fp.sum(axis=(1, 2)), fn.sum(axis=(1, 2)))
    macro = _f1(tp.sum(axis=1), fp.sum(axis=1), fn.sum(axis=1)).mean(axis=-1)
    samples = _f1(tp.sum(axis=2), fp.sum(axis=2), fn.sum(axis=2)).mean(axis=-1)
    return {"micro_f1": micro, "macro_f1": macro, "samples_f1": samples}


def multi_label_scores(gold: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    gold, predicted = np.asarray(gold).astype(np.int64), np.asarray(predicted).astype(np.int64)
    return {"micro_f1": float(f1_score(gold, predicted, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(gold, predicted, average="macro", zero_division=0)),
            "samples_f1": float(f1_score(gold, predicted, average="samples", zero_division=0)),
            "subset_accuracy": float((gold == predicted).all(axis=1).mean()) if len(gold) else 0.0}


def rarest_label_strata(gold: np.ndarray) -> np.ndarray:
    """Each row's rarest gold label (by count in `gold`), -1 for a row without labels."""
    gold = np.asarray(gold).astype(bool)
    counts = gold.sum(axis=0)
    ranked = np.where(gold, counts[None, :], np.iinfo(np.int64).max)
    return np.where(gold.any(axis=1), ranked.argmin(axis=1), -1)


def multi_label_intervals(gold: np.ndarray, predicted: np.ndarray, resamples: int = RESAMPLES,
                          seed: int = SEED) -> dict[str, tuple[float, float]]:
    indices = stratified_resamples(rarest_label_strata(gold), resamples, seed)
    return {name: percentile_interval(values) for name, values in resample_scores(gold, predicted, indices).items()}


def multi_label_headline(gold: np.ndarray, predicted: np.ndarray, threshold: float) -> dict:
    """metrics.json's keys of one scored split: each F1 with its 95% interval, exact-match accuracy, the threshold."""
    scores, intervals = multi_label_scores(gold, predicted), multi_label_intervals(gold, predicted)
    headline: dict = {}
    for key in METRICS:
        headline[key] = scores[key]
        headline[f"{key}_ci95_low"], headline[f"{key}_ci95_high"] = intervals[key]
    headline["subset_accuracy"] = scores["subset_accuracy"]
    headline["threshold"] = float(threshold)
    headline["threshold_source"] = "dev"
    return headline


def per_label(gold: np.ndarray, predicted: np.ndarray, names: list[str]) -> dict[str, dict]:
    precision, recall, f1, support = precision_recall_fscore_support(
        np.asarray(gold).astype(np.int64), np.asarray(predicted).astype(np.int64), labels=list(range(len(names))),
        average=None, zero_division=0)
    return {name: {"precision": round(float(precision[i]), 6), "recall": round(float(recall[i]), 6),
                   "f1": round(float(f1[i]), 6), "support": int(support[i])} for i, name in enumerate(names)}


def choose_threshold(gold: np.ndarray, probabilities: np.ndarray, metric: str = "micro_f1") -> float:
    """The grid threshold with the best `metric` on these (dev) rows; ties go to the one nearest 0.5. `metric`
    loss (or one without a score here) selects on micro_f1."""
    metric = metric if metric in METRICS else "micro_f1"
    best, best_score = DEFAULT_THRESHOLD, -1.0
    for threshold in sorted(THRESHOLD_GRID, key=lambda t: (abs(t - DEFAULT_THRESHOLD), t)):
        score = multi_label_scores(gold, predicted_labels(probabilities, threshold))[metric]
        if score > best_score + 1e-12:
            best, best_score = threshold, score
    return float(best)


def stored_threshold(config) -> float:
    """The threshold recorded in a model's config (transformers' PretrainedConfig), 0.5 if none was."""
    value = getattr(config, MULTI_LABEL_THRESHOLD, None)
    return float(value) if isinstance(value, (int, float)) else DEFAULT_THRESHOLD


def make_multi_label_compute_metrics():
    """The Trainer's compute_metrics for a multi-label head: sigmoid >= 0.5 (see the module docstring)."""
    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        scores = multi_label_scores(np.asarray(prediction.label_ids) > 0.5,
                                    predicted_labels(sigmoid(logits), DEFAULT_THRESHOLD))
        return {key: scores[key] for key in METRICS}

    return compute_metrics


def label_strings(predicted: np.ndarray, names: list[str], separator: str) -> list[str]:
    """The predicted labels of each row joined by the separator ('' for none), in label-name order."""
    return [separator.join(names[i] for i in np.flatnonzero(row)) for row in np.asarray(predicted)]
