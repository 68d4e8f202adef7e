"""Metrics: what is computed from gold labels and predictions or class probabilities.

Label metrics (F1, accuracy, per class) serve both the Trainer's compute_metrics and the evaluate stage;
probability metrics add ranking (ROC-AUC, AP), curves and calibration. A new metric goes here.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)
from transformers import EvalPrediction

from stages.common.errors import UserError


def classification_scores(gold: np.ndarray, predicted: np.ndarray, n_classes: int, positive: int = 1) -> dict[str, float]:
    """F1 / precision / recall: the positive class's for 2 classes, macro-averaged above; plus macro and weighted F1."""
    labels = list(range(n_classes))
    average = "binary" if n_classes == 2 else "macro"
    kwargs = {"pos_label": positive} if average == "binary" else {}
    precision, recall, f1, _ = precision_recall_fscore_support(
        gold, predicted, labels=labels, average=average, zero_division=0, **kwargs)
    macro = precision_recall_fscore_support(gold, predicted, labels=labels, average="macro", zero_division=0)
    weighted = precision_recall_fscore_support(gold, predicted, labels=labels, average="weighted", zero_division=0)
    return {
        "accuracy": float(accuracy_score(gold, predicted)),
        "f1": float(f1),
        "precision": float(precision),
        "recall": float(recall),
        "macro_f1": float(macro[2]),
        "macro_precision": float(macro[0]),
        "macro_recall": float(macro[1]),
        "weighted_f1": float(weighted[2]),
    }


def per_class_scores(gold: np.ndarray, predicted: np.ndarray, names: list[str]) -> dict[str, dict[str, float]]:
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=list(range(len(names))), average=None, zero_division=0)
    return {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])} for i, name in enumerate(names)}


PREDICTED_CLASSES = "predicted_classes"  # distinct classes the model gave the dev texts (Trainer evaluations)


def make_compute_metrics(n_classes: int, positive: int):
    """The Trainer's compute_metrics; `positive` is the same class the evaluate stage reports F1 for."""
    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        predicted = np.argmax(logits, axis=-1)
        scores = classification_scores(np.asarray(prediction.label_ids), predicted, n_classes, positive)
        # 1 = the constant answer (every text the same class): early stopping waits while a model sits there
        scores[PREDICTED_CLASSES] = int(len(np.unique(predicted)))
        return scores

    return compute_metrics


def rounded(value, digits: int = 6):
    """Round floats (also inside dicts) so metrics files are stable and readable in `dvc metrics show`."""
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, float):
        return round(value, digits)
    return value


def positive_index(names: list[str], positive_label: str | None) -> int:
    """Index of the positive class of a binary task: the param, or the second label name."""
    if positive_label is None:
        return 1
    if positive_label not in names:
        raise UserError(f"evaluate.positive_label: {positive_label!r} is not a class; classes are {names}")
    return names.index(positive_label)


def curve_classes(names: list[str], positive: int) -> list[int]:
    """Classes that get a ROC / PR curve: the positive class of a binary task, every class (one-vs-rest) above."""
    return [positive] if len(names) == 2 else list(range(len(names)))


def class_ranking(gold: np.ndarray, probabilities: np.ndarray, classes: list[int]) -> dict[int, dict[str, float]]:
    """One-vs-rest ROC-AUC and average precision of each class in `classes` that has a curve.

    A class absent from (or the only class in) `gold` has no curve and is left out.
    """
    result = {}
    for index in classes:
        is_class = gold == index
        if is_class.all() or not is_class.any():
            continue
        result[index] = {"roc_auc": float(roc_auc_score(is_class, probabilities[:, index])),
                         "average_precision": float(average_precision_score(is_class, probabilities[:, index]))}
    return result


def ranking_scores(gold: np.ndarray, probabilities: np.ndarray, names: list[str], positive: int) -> dict[str, float | None]:
    """ROC-AUC and average precision: of the positive class for 2 classes, macro over one-vs-rest classes above.

    None when no class has a curve (e.g. a valid split holding a single class).
    """
    scores = class_ranking(gold, probabilities, curve_classes(names, positive)).values()
    return {key: float(np.mean([s[key] for s in scores])) if scores else None
            for key in ("roc_auc", "average_precision")}


def curve_frames(gold: np.ndarray, probabilities: np.ndarray, names: list[str], positive: int) -> dict[str, dict[int, pd.DataFrame]]:
    """{'roc': {class: fpr/tpr}, 'pr': {class: recall/precision}}, points in ascending x for line plots.

    A class without positives in `gold` gets a flat placeholder curve so every declared plot file exists.
    """
    curves: dict[str, dict[int, pd.DataFrame]] = {"roc": {}, "pr": {}}
    for index in curve_classes(names, positive):
        is_class = gold == index
        scores = probabilities[:, index]
        if is_class.any() and not is_class.all():
            fpr, tpr, _ = roc_curve(is_class, scores, drop_intermediate=True)
            precision, recall, _ = precision_recall_curve(is_class, scores, drop_intermediate=True)
            # precision_recall_curve returns recall descending; reverse for a left-to-right line.
            precision, recall = precision[::-1], recall[::-1]
        else:
            fpr, tpr = np.array([0.0, 1.0]), np.array([0.0, 1.0])
            recall, precision = np.array([0.0, 1.0]), np.array([0.0, 0.0])
        curves["roc"][index] = pd.DataFrame({"fpr": np.round(fpr, 6), "tpr": np.round(tpr, 6)})
        curves["pr"][index] = pd.DataFrame({"recall": np.round(recall, 6), "precision": np.round(precision, 6)})
    return curves


def reliability_table(gold: np.ndarray, probabilities: np.ndarray, bins: int) -> pd.DataFrame:
    """Per equal-width confidence bin (non-empty ones): mean confidence, accuracy and count of the top prediction."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == gold
    # Bin i holds confidences in (i/bins, (i+1)/bins]; the top class's probability is always >= 1/n_classes > 0.
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        members = which == b
        if members.any():
            rows.append({"bin": b + 1, "lower": round(b / bins, 6), "upper": round((b + 1) / bins, 6),
                         "confidence": round(float(confidence[members].mean()), 6),
                         "accuracy": round(float(correct[members].mean()), 6), "count": int(members.sum())})
    return pd.DataFrame(rows, columns=["bin", "lower", "upper", "confidence", "accuracy", "count"])


def expected_calibration_error(table: pd.DataFrame) -> float:
    """Sum over bins of |accuracy - confidence| weighted by the bin's share of texts."""
    if table.empty:
        return 0.0
    weights = table["count"] / table["count"].sum()
    return float((weights * (table["accuracy"] - table["confidence"]).abs()).sum())
