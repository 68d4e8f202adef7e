"""The fine-tuned model blended with TF-IDF: w * p_model + (1 - w) * p_tfidf, per text and class.

Reported as its own metric (`blend.*` in metrics.json), never in place of the fine-tuned model's. The weight is
chosen on the dev split (where TF-IDF, trained on the train split only, and the model both predict texts they did
not learn from) and then applied once to valid and a labelled test file, so the blend's valid score is as honest
as the model's.
"""
from __future__ import annotations

import numpy as np

from stages.evaluation.metrics import classification_scores
from stages.evaluation.significance import metric_intervals

# 0, 0.05, ..., 1: finer steps would fit the dev split's noise (dev has tens to hundreds of texts).
MODEL_WEIGHTS = np.round(np.linspace(0.0, 1.0, 21), 2)


def blended(model: np.ndarray, tfidf: np.ndarray, model_weight: float) -> np.ndarray:
    return model_weight * model + (1.0 - model_weight) * tfidf


def choose_model_weight(gold: np.ndarray, model: np.ndarray, tfidf: np.ndarray, n_classes: int) -> float:
    """The weight of the model with the best dev macro-F1; among equal scores the one nearest 0.5 (neither side
    wins a tie it cannot tell apart), then the larger."""
    scores = [classification_scores(gold, blended(model, tfidf, w).argmax(axis=1), n_classes)["macro_f1"]
              for w in MODEL_WEIGHTS]
    best = max(scores)
    tied = [w for w, s in zip(MODEL_WEIGHTS, scores) if s >= best - 1e-12]
    return float(min(tied, key=lambda w: (abs(w - 0.5), -w)))


def blend_metrics(model_weight: float, scored: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                  n_classes: int, positive: int) -> dict:
    """{"model_weight": w, <split>: macro-F1 and accuracy with their 95% intervals} for each scored split
    (name -> (gold, model probabilities, TF-IDF probabilities))."""
    result: dict = {"model_weight": model_weight}
    for name, (gold, model, tfidf) in scored.items():
        predicted = blended(model, tfidf, model_weight).argmax(axis=1)
        scores = classification_scores(gold, predicted, n_classes, positive)
        intervals = metric_intervals(gold, predicted, n_classes, positive)
        result[name] = {}
        for key in ("macro_f1", "accuracy"):
            result[name][key] = scores[key]
            result[name][f"{key}_ci95_low"], result[name][f"{key}_ci95_high"] = intervals[key]
    return result
