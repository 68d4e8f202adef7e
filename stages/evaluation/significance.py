"""How sure a number is: bootstrap intervals for one run, paired tests for two runs on the same texts.

Everything is vectorised over resamples: 1,000 stratified resamples of a few thousand texts cost well
under a second. The seed is fixed, so the same predictions always give the same interval.

- `metric_intervals`: 95% percentile intervals of macro-F1, accuracy and the positive-class F1, from a
  bootstrap that resamples texts within each gold class (the class counts of the scored split stay fixed,
  so a 14-row class is never resampled away).
- `paired_difference`: the same resamples applied to two sets of predictions on the same texts, so the
  interval is of the difference itself (much narrower than comparing two separate intervals).
- `mcnemar`: the exact McNemar test on the texts one side gets right and the other wrong.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

RESAMPLES = 1000
SEED = 20261127
LEVEL = 0.95


def stratified_resamples(gold: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(resamples, n) row indices: each row draws, within every gold class, as many rows as it has, with replacement."""
    gold = np.asarray(gold)
    rng = np.random.default_rng(seed)
    indices = np.empty((resamples, len(gold)), dtype=np.int64)
    start = 0
    for label in np.unique(gold):
        rows = np.flatnonzero(gold == label)
        draws = rng.integers(0, len(rows), size=(resamples, len(rows)))
        indices[:, start:start + len(rows)] = rows[draws]
        start += len(rows)
    return indices


def confusion_counts(gold: np.ndarray, predicted: np.ndarray, indices: np.ndarray, n_classes: int) -> np.ndarray:
    """(resamples, n_classes, n_classes) confusion matrices (gold on rows) of every resample at once."""
    resamples = indices.shape[0]
    cells = (np.asarray(gold)[indices] * n_classes + np.asarray(predicted)[indices]
             + (np.arange(resamples) * n_classes * n_classes)[:, None])
    counts = np.bincount(cells.ravel(), minlength=resamples * n_classes * n_classes)
    return counts.reshape(resamples, n_classes, n_classes)


def scores_from_confusion(confusion: np.ndarray, positive: int) -> dict[str, np.ndarray]:
    """Macro-F1 (zero for a class with no gold and no predicted rows, as scikit-learn's zero_division=0),
    accuracy and the positive class's F1, one value per matrix."""
    true_positive = np.diagonal(confusion, axis1=-2, axis2=-1).astype(np.float64)
    gold_count = confusion.sum(axis=-1)
    predicted_count = confusion.sum(axis=-2)
    denominator = gold_count + predicted_count
    f1 = np.divide(2 * true_positive, denominator, out=np.zeros_like(true_positive), where=denominator > 0)
    total = confusion.sum(axis=(-2, -1))
    return {"macro_f1": f1.mean(axis=-1), "accuracy": true_positive.sum(axis=-1) / np.maximum(total, 1),
            "f1": f1[..., positive]}


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def metric_intervals(gold: np.ndarray, predicted: np.ndarray, n_classes: int, positive: int = 1,
                     resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, tuple[float, float]]:
    """95% stratified-bootstrap intervals of macro_f1, accuracy and f1 (the positive class's)."""
    indices = stratified_resamples(gold, resamples, seed)
    scores = scores_from_confusion(confusion_counts(gold, predicted, indices, n_classes), positive)
    return {name: percentile_interval(values) for name, values in scores.items()}


@dataclass(frozen=True)
class PairedDifference:
    """B minus A on the same texts: the observed difference and its 95% paired-bootstrap interval."""
    metric: str
    a: float
    b: float
    difference: float
    low: float
    high: float

    @property
    def detectable(self) -> bool:
        return self.low > 0 or self.high < 0


def paired_difference(gold: np.ndarray, predicted_a: np.ndarray, predicted_b: np.ndarray, n_classes: int,
                      positive: int = 1, metric: str = "macro_f1", resamples: int = RESAMPLES,
                      seed: int = SEED) -> PairedDifference:
    """Both prediction sets are scored on the same resampled texts, so text difficulty cancels out."""
    indices = stratified_resamples(gold, resamples, seed)
    full = np.arange(len(gold))[None, :]
    score = {}
    for side, predicted in (("a", predicted_a), ("b", predicted_b)):
        score[side] = scores_from_confusion(confusion_counts(gold, predicted, indices, n_classes), positive)[metric]
        score[side + "_full"] = scores_from_confusion(confusion_counts(gold, predicted, full, n_classes), positive)[metric][0]
    low, high = percentile_interval(score["b"] - score["a"])
    return PairedDifference(metric, float(score["a_full"]), float(score["b_full"]),
                            float(score["b_full"] - score["a_full"]), low, high)


@dataclass(frozen=True)
class McNemar:
    only_a_right: int
    only_b_right: int
    p_value: float


def mcnemar(gold: np.ndarray, predicted_a: np.ndarray, predicted_b: np.ndarray) -> McNemar:
    """Exact (binomial) McNemar test: under no difference, texts that only one side gets right are a fair coin."""
    right_a = np.asarray(predicted_a) == np.asarray(gold)
    right_b = np.asarray(predicted_b) == np.asarray(gold)
    only_a, only_b = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    p_value = 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return McNemar(only_a, only_b, p_value)


def verdict(diff: PairedDifference, name_a: str = "A", name_b: str = "B", digits: int = 3) -> str:
    """One line in words, e.g. 'B is better by 0.031 (95% CI 0.012..0.050)'."""
    interval = f"95% CI {diff.low:+.{digits}f}..{diff.high:+.{digits}f}"
    metric = diff.metric.replace("_", "-").replace("macro-f1", "macro-F1")
    if not diff.detectable:
        return f"no detectable difference in {metric} between {name_a} and {name_b} ({interval})"
    better, worse = (name_b, name_a) if diff.difference > 0 else (name_a, name_b)
    return f"{better} is better than {worse} by {abs(diff.difference):.{digits}f} {metric} ({interval} for {name_b} - {name_a})"
