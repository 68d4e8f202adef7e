"""Baselines for data.task regression, scored on the same splits as the model:

- tfidf: the classification baseline's TF-IDF features (baselines.tfidf_matrix; sentence pairs included) + ridge
  regression with alpha = 1 / baselines.tfidf.c (the logistic regression's C, read as the same strength);
- probe: ridge regression (alpha 1) on the embed stage's frozen vectors;
- mteb and knn: classification protocols (per-class sampling, majority vote), recorded as skipped with the reason.
"""
from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

from stages.common.params import BaselinesParams
from stages.evaluation.baselines import (
    PREDICTIONS_FILE,
    load_vectors,
    scored_splits,
    texts_of,
    tfidf_matrix,
)
from stages.evaluation.regression import regression_headline, regression_scores

SKIPPED = {"mteb": {"skipped": "a classification protocol (samples per class); data.task is regression"},
           "knn": {"skipped": "a classification protocol (neighbours vote on a class); data.task is regression"}}


def run_regression_baselines(split: datasets.DatasetDict, embeddings_dir: str | Path,
                             params: BaselinesParams) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(scores per baseline and split, TF-IDF's value per row of each scored split, TF-IDF's values on dev and the
    scored splits as (n, 1) arrays: the file the classification blend reads, kept so every declared output exists)."""
    evaluated = scored_splits(split)
    gold = {name: np.asarray(split[name]["label"], dtype=np.float64) for name in ["train", *evaluated]}
    features = tfidf_matrix(params.tfidf.word_ngram_max, params.tfidf.char_ngram_max)
    ridge = Ridge(alpha=1.0 / params.tfidf.c).fit(features(texts_of(split["train"]), fit=True), gold["train"])
    unscored = [name for name in ("dev",) if name in split]
    tfidf = {name: ridge.predict(features(texts_of(split[name]), fit=False)) for name in [*evaluated, *unscored]}
    vectors = load_vectors(embeddings_dir, ["train", *evaluated])
    probe = Ridge(alpha=1.0).fit(vectors["train"], gold["train"])
    scores = {"tfidf": {name: regression_headline(gold[name], tfidf[name]) for name in evaluated},
              "probe": {name: regression_scores(gold[name], probe.predict(vectors[name])) for name in evaluated},
              **SKIPPED}
    return scores, {name: tfidf[name] for name in evaluated}, {name: rows[:, None] for name, rows in tfidf.items()}


def values_table(predicted: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per scored text, in split order: split, tfidf (the predicted value)."""
    return pd.concat([pd.DataFrame({"split": name, "tfidf": np.round(rows.astype(np.float64), 6)})
                      for name, rows in predicted.items()], ignore_index=True)


def load_tfidf_values(directory: str | Path, split: str, n_rows: int) -> np.ndarray | None:
    path = Path(directory) / PREDICTIONS_FILE
    if not path.is_file():
        return None
    table = pd.read_csv(path, dtype={"split": str})
    rows = table.loc[table["split"] == split, "tfidf"].to_numpy(dtype=np.float64)
    return rows if len(rows) == n_rows else None


def summary(scores: dict) -> str:
    valid = {name: scores[name]["valid"] for name in ("tfidf", "probe")}
    return (f"baselines: valid Spearman probe {valid['probe']['spearman']:.4f}, TF-IDF {valid['tfidf']['spearman']:.4f} "
            f"(MTEB protocol and kNN skipped: classification protocols)")
