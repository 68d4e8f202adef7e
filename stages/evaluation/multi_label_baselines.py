"""Baselines for data.task multi_label, scored on the same splits as the model:

- tfidf: the classification baseline's TF-IDF features (baselines.tfidf_matrix; sentence pairs included) + one
  logistic regression per label (scikit-learn's OneVsRestClassifier), C and iterations from baselines.tfidf;
- probe: the same one-vs-rest logistic regressions on the embed stage's frozen vectors;
- mteb and knn: single-label protocols (samples per class, a neighbours' vote on one class), recorded as skipped.
A baseline predicts a label at probability 0.5 (a fixed threshold: the baselines stage does not tune on dev, so
its numbers stay comparable to the single-label baselines, which tune nothing either).
"""
from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pandas as pd
from sklearn.multiclass import OneVsRestClassifier

from stages.common.params import BaselinesParams
from stages.dataset.multi_label import multi_hot, names_of
from stages.evaluation.baselines import (
    fit_quietly,
    load_vectors,
    logistic_regression,
    scored_splits,
    texts_of,
    tfidf_matrix,
)
from stages.evaluation.multi_label import (
    DEFAULT_THRESHOLD,
    label_strings,
    multi_label_headline,
    multi_label_scores,
    predicted_labels,
)

SKIPPED = {"mteb": {"skipped": "a single-label protocol (samples per class); data.task is multi_label"},
           "knn": {"skipped": "a single-label protocol (neighbours vote on one class); data.task is multi_label"}}


def one_vs_rest(max_iter: int, seed: int, c: float = 1.0) -> OneVsRestClassifier:
    return OneVsRestClassifier(logistic_regression(max_iter, seed, c))


def run_multi_label_baselines(split: datasets.DatasetDict, embeddings_dir: str | Path, params: BaselinesParams,
                              separator: str) -> tuple[dict, dict[str, list[str]], dict[str, np.ndarray]]:
    """(scores per baseline and split, TF-IDF's predicted labels (joined) per row of each scored split, TF-IDF's
    probabilities per label on dev and the scored splits)."""
    names = names_of(split["train"])
    evaluated = scored_splits(split)
    gold = {name: multi_hot(split[name]["label"][:], len(names)) for name in ["train", *evaluated]}
    features = tfidf_matrix(params.tfidf.word_ngram_max, params.tfidf.char_ngram_max)
    tfidf = fit_quietly(one_vs_rest(params.tfidf.max_iter, params.seed, params.tfidf.c),
                        features(texts_of(split["train"]), fit=True), gold["train"])
    unscored = [name for name in ("dev",) if name in split]
    probabilities = {name: tfidf.predict_proba(features(texts_of(split[name]), fit=False))
                     for name in [*evaluated, *unscored]}
    vectors = load_vectors(embeddings_dir, ["train", *evaluated])
    probe = fit_quietly(one_vs_rest(params.probe.max_iter, params.seed), vectors["train"], gold["train"])
    predicted = {name: predicted_labels(probabilities[name], DEFAULT_THRESHOLD) for name in evaluated}
    scores = {"tfidf": {name: multi_label_headline(gold[name], predicted[name], DEFAULT_THRESHOLD)
                        for name in evaluated},
              "probe": {name: multi_label_scores(gold[name], predicted_labels(probe.predict_proba(vectors[name]),
                                                                             DEFAULT_THRESHOLD)) for name in evaluated},
              **SKIPPED}
    for name in evaluated:  # the baselines use 0.5, not a dev-chosen threshold
        scores["tfidf"][name]["threshold_source"] = "fixed"
    labels = {name: label_strings(predicted[name], names, separator) for name in evaluated}
    return scores, labels, probabilities


def labels_table(predicted: dict[str, list[str]]) -> pd.DataFrame:
    """One row per scored text, in split order: split, tfidf (the predicted labels, joined)."""
    return pd.concat([pd.DataFrame({"split": name, "tfidf": rows}) for name, rows in predicted.items()],
                     ignore_index=True)


def summary(scores: dict) -> str:
    valid = {name: scores[name]["valid"] for name in ("tfidf", "probe")}
    return (f"baselines: valid micro-F1 probe {valid['probe']['micro_f1']:.4f}, TF-IDF {valid['tfidf']['micro_f1']:.4f} "
            f"(threshold 0.5; MTEB protocol and kNN skipped: single-label protocols)")
