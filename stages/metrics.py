"""Classification metrics shared by the train stage (compute_metrics) and the evaluate stage."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from transformers import EvalPrediction


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


def make_compute_metrics(n_classes: int):
    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        return classification_scores(np.asarray(prediction.label_ids), np.argmax(logits, axis=-1), n_classes)

    return compute_metrics
