"""baselines stage: what a run must beat, scored on the same valid (and labelled test) split as the model.

- probe: logistic regression on all frozen embed-stage vectors of train;
- mteb: the MTEB classification protocol on the same vectors (n experiments, each a logistic regression
  on `samples_per_label` random train vectors per class; mean and standard deviation);
- knn: cosine k-nearest-neighbours on the same vectors;
- tfidf: TF-IDF of MeCab words (fugashi + unidic-lite) and character n-grams + logistic regression.

It does not read the fine-tuned model, so `dvc exp run -S train.*` never reruns it.
"""
from __future__ import annotations

import io
import unicodedata
import warnings
import zipfile
from pathlib import Path
from typing import Optional

import datasets
import numpy as np
import pandas as pd
import scipy.sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from tqdm.auto import tqdm

from stages.common.errors import UserError
from stages.common.outputs import atomic_file
from stages.common.params import BaselinesParams
from stages.dataset.japanese import mecab_words, prepare_texts
from stages.evaluation.metrics import classification_scores
from stages.evaluation.significance import metric_intervals

# Keys kept per baseline: enough to compare with the model without flooding `dvc exp show`.
COMPARED = ("macro_f1", "accuracy")
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"  # TF-IDF's label per scored text, for paired comparisons with the model
PROBABILITIES_FILE = "tfidf_probabilities.npz"  # TF-IDF's class probabilities on dev and the scored splits (blend)


def compared_scores(gold: np.ndarray, predicted: np.ndarray, n_classes: int) -> dict[str, float]:
    scores = classification_scores(gold, predicted, n_classes)
    return {key: scores[key] for key in COMPARED}


def scores_with_interval(gold: np.ndarray, predicted: np.ndarray, n_classes: int) -> dict[str, float]:
    """macro-F1 with its 95% stratified-bootstrap interval, then accuracy: the headline baseline's keys."""
    scores = compared_scores(gold, predicted, n_classes)
    low, high = metric_intervals(gold, predicted, n_classes)["macro_f1"]
    return {"macro_f1": scores["macro_f1"], "macro_f1_ci95_low": low, "macro_f1_ci95_high": high,
            "accuracy": scores["accuracy"]}


def logistic_regression(max_iter: int, seed: int, c: float = 1.0, class_weight: str = "none") -> LogisticRegression:
    return LogisticRegression(max_iter=max_iter, random_state=seed, C=c,
                              class_weight="balanced" if class_weight == "balanced" else None)


def fit_quietly(model, features, labels):
    # A capped max_iter is part of the MTEB protocol; its convergence warning is expected noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(features, labels)


def linear_probe(train_vectors: np.ndarray, train_labels: np.ndarray, eval_sets: dict[str, tuple[np.ndarray, np.ndarray]],
                 n_classes: int, max_iter: int, seed: int, class_weight: str = "none") -> dict:
    """Logistic regression on frozen sentence vectors: how much the encoder alone separates the classes."""
    probe = fit_quietly(logistic_regression(max_iter, seed, class_weight=class_weight), train_vectors, train_labels)
    return {name: compared_scores(gold, probe.predict(vectors), n_classes) for name, (vectors, gold) in eval_sets.items()}


def undersample(labels: np.ndarray, samples_per_label: int, rng: np.random.RandomState) -> np.ndarray:
    """MTEB's undersampling: shuffle the train rows, keep the first `samples_per_label` of each class."""
    order = np.arange(len(labels))
    rng.shuffle(order)
    kept, taken = [], {}
    for row in order:
        label = int(labels[row])
        if taken.get(label, 0) < samples_per_label:
            taken[label] = taken.get(label, 0) + 1
            kept.append(row)
    return np.asarray(kept)


def mteb_protocol(train_vectors: np.ndarray, train_labels: np.ndarray, eval_sets: dict[str, tuple[np.ndarray, np.ndarray]],
                  n_classes: int, n_experiments: int, samples_per_label: int, max_iter: int, seed: int) -> dict:
    """Mean and standard deviation over `n_experiments` few-shot logistic regressions, as MTEB scores classification."""
    rng = np.random.RandomState(seed)  # MTEB's generator, shared by the experiments in sequence
    runs: dict[str, list[dict]] = {name: [] for name in eval_sets}
    for _ in tqdm(range(n_experiments), desc="mteb protocol", mininterval=2):
        rows = undersample(train_labels, samples_per_label, rng)
        model = fit_quietly(logistic_regression(max_iter, seed), train_vectors[rows], train_labels[rows])
        for name, (vectors, gold) in eval_sets.items():
            runs[name].append(compared_scores(gold, model.predict(vectors), n_classes))
    result = {}
    for name, scores in runs.items():
        result[name] = {}
        for key in ("accuracy", "macro_f1"):
            values = np.array([s[key] for s in scores])
            result[name][f"{key}_mean"] = float(values.mean())
            result[name][f"{key}_std"] = float(values.std())
    return result


def knn(train_vectors: np.ndarray, train_labels: np.ndarray, eval_sets: dict[str, tuple[np.ndarray, np.ndarray]],
        n_classes: int, k: int) -> dict:
    model = KNeighborsClassifier(n_neighbors=min(k, len(train_labels)), metric="cosine", algorithm="brute")
    model.fit(train_vectors, train_labels)
    return {name: compared_scores(gold, model.predict(vectors), n_classes) for name, (vectors, gold) in eval_sets.items()}


def tfidf_features(word_ngram_max: int, char_ngram_max: int):
    """Vectorizers over (space-joined MeCab words, NFKC text): word n-grams and character n-grams."""
    words = TfidfVectorizer(tokenizer=str.split, token_pattern=None, lowercase=False, sublinear_tf=True,
                            ngram_range=(1, word_ngram_max))
    chars = (TfidfVectorizer(analyzer="char", lowercase=False, sublinear_tf=True, ngram_range=(1, char_ngram_max))
             if char_ngram_max > 0 else None)
    return words, chars


def tfidf_matrix(word_ngram_max: int, char_ngram_max: int):
    """`features(texts, fit)`: the TF-IDF matrix of texts, or of sentence pairs ((text, text_pair) tuples).

    A pair's row is the features of its text, those of its text_pair (one vocabulary fitted on both sides), and
    their element-wise product: the words and characters the two share, what entailment and similarity hinge on
    and what a bag of both texts joined into one string would lose."""
    words, chars = tfidf_features(word_ngram_max, char_ngram_max)

    def single(texts: list[str], fit: bool):
        texts, _ = prepare_texts(texts)  # the notes on these texts come from the tokenize stage
        tokens = mecab_words(tqdm(texts, desc="mecab", mininterval=2))
        normal = [unicodedata.normalize("NFKC", t) for t in texts]
        parts = [words.fit_transform(tokens) if fit else words.transform(tokens)]
        if chars is not None:
            parts.append(chars.fit_transform(normal) if fit else chars.transform(normal))
        return scipy.sparse.hstack(parts).tocsr()

    def features(texts: list, fit: bool):
        if not texts or isinstance(texts[0], str):
            return single(texts, fit)
        first, second = [a for a, _ in texts], [b for _, b in texts]
        both = single(first + second, fit)
        a, b = both[:len(first)], both[len(first):]
        return scipy.sparse.hstack([a, b, a.multiply(b)]).tocsr()

    return features


def texts_of(split: datasets.Dataset) -> list:
    """What TF-IDF reads per row: the text, or the (text, text_pair) pair."""
    if "text_pair" in split.column_names:
        return list(zip(split["text"], split["text_pair"]))
    return list(split["text"])


def tfidf_baseline(train_texts: list[str], train_labels: np.ndarray, eval_sets: dict[str, tuple[list[str], np.ndarray]],
                   n_classes: int, word_ngram_max: int, char_ngram_max: int, c: float, max_iter: int, seed: int,
                   class_weight: str = "none", unscored: Optional[dict[str, list[str]]] = None) -> tuple:
    """(scores per eval set, predicted class per eval set, class probabilities per eval and `unscored` set)."""
    features = tfidf_matrix(word_ngram_max, char_ngram_max)
    model = fit_quietly(logistic_regression(max_iter, seed, c, class_weight), features(train_texts, fit=True), train_labels)
    predicted, probabilities = {}, {}
    for name, texts in {**{n: t for n, (t, _) in eval_sets.items()}, **(unscored or {})}.items():
        matrix = features(texts, fit=False)
        probabilities[name] = np.zeros((len(texts), n_classes))
        probabilities[name][:, model.classes_] = model.predict_proba(matrix)  # a class absent from train stays 0
        if name in eval_sets:
            predicted[name] = model.predict(matrix)
    scores = {name: scores_with_interval(gold, predicted[name], n_classes) for name, (_, gold) in eval_sets.items()}
    return scores, predicted, probabilities


def scored_splits(split: datasets.DatasetDict) -> list[str]:
    return [name for name in ("valid", "test") if name in split and "label" in split[name].column_names]


def load_vectors(embeddings_dir: str | Path, names: list[str]) -> dict[str, np.ndarray]:
    """The embed stage's vectors of the named splits (the probe and kNN of every task read them)."""
    vectors = {}
    for name in names:
        path = Path(embeddings_dir) / f"{name}.npy"
        if not path.is_file():
            raise UserError(f"{path}: embeddings missing; run `dvc repro embed` first")
        vectors[name] = np.load(path)
    return vectors


def run_baselines(split: datasets.DatasetDict, embeddings_dir: str | Path,
                  params: BaselinesParams) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(scores per baseline and split, TF-IDF's predicted class index per text of each scored split, TF-IDF's class
    probabilities per text of each scored split and of dev: what the evaluate stage's blend reads)."""
    names = split["train"].features["label"].names
    n_classes = len(names)
    train_labels = np.asarray(split["train"]["label"])
    evaluated = scored_splits(split)
    vectors = load_vectors(embeddings_dir, ["train", *evaluated])
    vector_sets = {name: (vectors[name], np.asarray(split[name]["label"])) for name in evaluated}
    text_sets = {name: (texts_of(split[name]), np.asarray(split[name]["label"])) for name in evaluated}
    train = vectors["train"]
    fits = {
        "tfidf": lambda: tfidf_baseline(
            texts_of(split["train"]), train_labels, text_sets, n_classes, params.tfidf.word_ngram_max,
            params.tfidf.char_ngram_max, params.tfidf.c, params.tfidf.max_iter, params.seed, params.class_weight,
            unscored={name: texts_of(split[name]) for name in ("dev",) if name in split}),
        "probe": lambda: linear_probe(train, train_labels, vector_sets, n_classes, params.probe.max_iter, params.seed,
                                      params.class_weight),
        "mteb": lambda: mteb_protocol(train, train_labels, vector_sets, n_classes, params.mteb.n_experiments,
                                      params.mteb.samples_per_label, params.mteb.max_iter, params.seed),
        "knn": lambda: knn(train, train_labels, vector_sets, n_classes, params.knn.k),
    }
    scores = {}
    # One bar over the fits (TF-IDF's MeCab pass and the MTEB repeats have their own): each can take minutes.
    with tqdm(fits.items(), desc="baselines", unit="baseline") as bar:
        for name, fit in bar:
            bar.set_postfix_str(name, refresh=True)
            scores[name] = fit()
    scores["tfidf"], tfidf_predicted, tfidf_probabilities = scores["tfidf"]
    return scores, tfidf_predicted, tfidf_probabilities


def predictions_table(predicted: dict[str, np.ndarray], names: list[str]) -> pd.DataFrame:
    """One row per scored text, in split order: split, tfidf (the predicted class name)."""
    return pd.concat([pd.DataFrame({"split": name, "tfidf": [names[i] for i in rows]}) for name, rows in predicted.items()],
                     ignore_index=True)


def save_tfidf_probabilities(probabilities: dict[str, np.ndarray], path: str | Path) -> None:
    """An .npz archive (np.load reads it) with a fixed timestamp per member: np.savez stamps the current time,
    so identical probabilities would give a different file, and DVC a different hash, on every run."""
    with atomic_file(path) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for name, rows in probabilities.items():
            buffer = io.BytesIO()
            np.save(buffer, rows)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue())


def load_tfidf_probabilities(directory: str | Path, split: str, n_rows: int) -> np.ndarray | None:
    """TF-IDF's class probabilities per text of `split` (baselines stage), or None if it has none for that split."""
    path = Path(directory) / PROBABILITIES_FILE
    if not path.is_file():
        return None
    with np.load(path) as stored:
        rows = stored[split] if split in stored.files else None
    return rows if rows is not None and len(rows) == n_rows else None


def load_tfidf_predictions(directory: str | Path, split: str, n_rows: int) -> list[str] | None:
    """TF-IDF's label per text of `split` from the baselines stage, or None if it scored no such split."""
    path = Path(directory) / PREDICTIONS_FILE
    if not path.is_file():
        return None
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    rows = table.loc[table["split"] == split, "tfidf"].tolist()
    return rows if len(rows) == n_rows else None
