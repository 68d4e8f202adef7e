"""One probability row per document from the probabilities of its windows (tokenize.long_text: sliding_window).

  mean  the average of the windows' probabilities (rows still sum to 1)
  max   each class's highest probability over the windows, renormalised so the row sums to 1: one window
        that reads strongly as a class lifts that class for the whole document

The pooling is read from the model's config.json (stages/dataset/windows.py records it at training), so the
evaluate, submit and predict stages pool the same way as each other and as the model was trained for.
"""
from __future__ import annotations

import datasets
import numpy as np
import torch
from transformers import PreTrainedModel

from stages.dataset.windows import DOCUMENT_COLUMN, LongText
from stages.modeling.inference import predict_proba

POOLINGS = ("mean", "max")


def pool_windows(probabilities: np.ndarray, documents: list[int] | np.ndarray, n_documents: int,
                 pooling: str) -> np.ndarray:
    """Rows of `probabilities` (one per window, `documents[i]` the document of row i) pooled into
    (n_documents, classes), in document order. Every document needs at least one window."""
    documents = np.asarray(documents, dtype=np.int64)
    counts = np.bincount(documents, minlength=n_documents)
    if len(counts) != n_documents or not counts.all():
        raise ValueError(f"windows cover {np.count_nonzero(counts)} of {n_documents} documents")
    pooled = np.zeros((n_documents, probabilities.shape[1]), dtype=np.float64)
    if pooling == "mean":
        np.add.at(pooled, documents, probabilities)
        pooled /= counts[:, None]
    elif pooling == "max":
        np.maximum.at(pooled, documents, probabilities)
        pooled /= pooled.sum(axis=1, keepdims=True)
    else:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    return pooled.astype(np.float32)


def document_probabilities(model: PreTrainedModel, tokenized: datasets.Dataset, batch_size: int,
                           device: torch.device, desc: str = "predict", pairs: bool = False) -> np.ndarray:
    """predict_proba over a tokenized split, one row per document: windows (a `document` column) are pooled as
    the model's config.json says; a split without windows is scored row for row, as before. `pairs`: sentence
    pairs (data.text_pair_column), whose token_type_ids the model reads too."""
    segments = tokenized["token_type_ids"] if pairs else None
    probabilities = predict_proba(model, tokenized["input_ids"], batch_size, device, desc=desc,
                                  token_type_ids=segments)
    if DOCUMENT_COLUMN not in tokenized.column_names:
        return probabilities
    documents = tokenized[DOCUMENT_COLUMN]
    n_documents = max(documents) + 1 if documents else 0
    pooling = LongText.from_config(model.config, "the model").window_pooling
    return pool_windows(probabilities, documents, n_documents, pooling)
