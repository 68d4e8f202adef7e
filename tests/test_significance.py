"""Bootstrap intervals, paired differences and McNemar's test, against known answers."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from stages.evaluation.significance import (
    confusion_counts,
    mcnemar,
    metric_intervals,
    paired_difference,
    scores_from_confusion,
    stratified_resamples,
    verdict,
)


def noisy_predictions(gold: np.ndarray, accuracy: float, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    wrong = rng.random(len(gold)) > accuracy
    shifted = (gold + rng.integers(1, n_classes, size=len(gold))) % n_classes
    return np.where(wrong, shifted, gold)


def test_vectorised_scores_equal_scikit_learn():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 4, size=500)
    predicted = noisy_predictions(gold, 0.6, 4, rng)
    predicted[predicted == 3] = 2  # class 3 is never predicted: its F1 is 0, as zero_division=0 says
    scores = scores_from_confusion(confusion_counts(gold, predicted, np.arange(500)[None, :], 4), positive=1)
    assert scores["macro_f1"][0] == pytest.approx(f1_score(gold, predicted, average="macro", labels=range(4), zero_division=0))
    assert scores["accuracy"][0] == pytest.approx(accuracy_score(gold, predicted))
    assert scores["f1"][0] == pytest.approx(f1_score(gold, predicted, labels=[1], average="macro"))


def test_resamples_keep_every_class_count():
    gold = np.array([0] * 90 + [1] * 7 + [2] * 3)
    indices = stratified_resamples(gold, resamples=50, seed=1)
    assert indices.shape == (50, 100)
    for row in indices:
        assert np.bincount(gold[row], minlength=3).tolist() == [90, 7, 3]


def test_interval_covers_the_true_value_about_95_percent_of_the_time():
    """Draw 200 valid sets from a population whose accuracy is known; the interval should cover it ~95%."""
    rng = np.random.default_rng(7)
    covered = 0
    for trial in range(200):
        gold = rng.integers(0, 2, size=300)
        predicted = noisy_predictions(gold, 0.8, 2, rng)
        low, high = metric_intervals(gold, predicted, 2, resamples=400, seed=trial)["accuracy"]
        covered += low <= 0.8 <= high
    assert 0.88 <= covered / 200 <= 0.99


def test_paired_difference_finds_a_real_gap_and_no_gap_between_equals():
    rng = np.random.default_rng(3)
    gold = rng.integers(0, 3, size=2000)
    weak = noisy_predictions(gold, 0.70, 3, rng)
    strong = np.where(rng.random(2000) < 0.5, gold, weak)  # fixes about half of weak's errors
    diff = paired_difference(gold, weak, strong, 3)
    true_gap = f1_score(gold, strong, average="macro") - f1_score(gold, weak, average="macro")
    assert diff.difference == pytest.approx(true_gap)
    assert diff.low <= true_gap <= diff.high and diff.detectable and diff.low > 0
    assert verdict(diff, "HEAD", "workspace").startswith("workspace is better than HEAD by")
    same = paired_difference(gold, weak, weak.copy(), 3)
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0) and not same.detectable
    assert verdict(same).startswith("no detectable difference")


def test_mcnemar_against_a_hand_computed_exact_p_value():
    # 10 texts only A gets right, 2 only B, 8 both right: p = 2 * (C(12,0)+C(12,1)+C(12,2)) / 2**12 = 158/4096
    gold = np.zeros(20, dtype=int)
    a = np.array([0] * 10 + [1] * 2 + [0] * 8)
    b = np.array([1] * 10 + [0] * 2 + [0] * 8)
    result = mcnemar(gold, a, b)
    assert (result.only_a_right, result.only_b_right) == (10, 2)
    assert result.p_value == pytest.approx(158 / 4096)
    assert mcnemar(gold, a, a).p_value == 1.0
