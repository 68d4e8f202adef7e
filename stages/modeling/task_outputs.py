"""What a model directory records about its task, and the predict command's rows for pairs and regression.

A model trained on sentence pairs has `text_pair_column` in its config.json (set by the train stage); a
regression model has transformers' standard `problem_type: regression` (one output, the predicted value).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from stages.dataset.pairs import PAIR, encode_pairs

PROBABILITY_DIGITS = 6  # stages.modeling.inference.PROBABILITY_DIGITS (a test checks they agree; no torch import here)


def recorded_pair_column(model_dir: str | Path) -> Optional[str]:
    """The pair column recorded in the model's config.json (read as data), or None (one text per row)."""
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # a broken directory gets its own error when the model is loaded
    column = config.get("text_pair_column") if isinstance(config, dict) else None
    return column if isinstance(column, str) and column else None


def is_regression_model(model) -> bool:
    return model.config.problem_type == "regression"


def encode_rows(tokenizer, texts: list[str], pairs: Optional[list[str]], max_length: int) -> tuple[list, Optional[list]]:
    """(token ids, token_type_ids or None) exactly as the tokenize stage makes them, for texts or sentence pairs."""
    if pairs is None:
        return tokenizer(texts, truncation=True, max_length=max_length)["input_ids"], None
    encoded = encode_pairs(tokenizer, texts, pairs, max_length)
    return encoded["input_ids"], encoded["token_type_ids"]


def with_pairs(frame: pd.DataFrame, pairs: Optional[list[str]]) -> pd.DataFrame:
    """The second text right after the first, in its own column `text_pair`."""
    if pairs is not None:
        frame.insert(list(frame.columns).index("text") + 1, PAIR, pairs)
    return frame


def regression_frame(texts: list[str], pairs: Optional[list[str]], values: np.ndarray, ids: Optional[list[str]],
                     id_column: str) -> pd.DataFrame:
    """One row per input: [id], text, [text_pair], prediction (the model's value, rounded like probabilities)."""
    columns: dict = {}
    if ids is not None:
        columns[id_column] = ids
    columns["text"] = texts
    if pairs is not None:
        columns[PAIR] = pairs
    columns["prediction"] = np.asarray(values, dtype=np.float64).reshape(-1).round(PROBABILITY_DIGITS)
    return pd.DataFrame(columns)


def regression_jsonl(frame: pd.DataFrame) -> str:
    return "".join(json.dumps({key: (float(value) if key == "prediction" else value) for key, value in row.items()},
                              ensure_ascii=False) + "\n" for row in frame.to_dict(orient="records"))


# data.task multi_label (stages/evaluation/multi_label.py, whose constants these repeat without its imports)
MULTI_LABEL_THRESHOLD, DEFAULT_THRESHOLD = "multi_label_threshold", 0.5


def is_multi_label_model(model) -> bool:
    return model.config.problem_type == "multi_label_classification"


def multi_label_strings(config, probabilities: np.ndarray, names: list[str]) -> list[str]:
    """Per row, the labels whose sigmoid probability reaches the threshold the train stage chose on dev (in
    config.json), joined by the training data's separator; '' for none."""
    threshold = getattr(config, MULTI_LABEL_THRESHOLD, None)
    threshold = float(threshold) if isinstance(threshold, (int, float)) else DEFAULT_THRESHOLD
    separator = getattr(config, "label_separator", None) or "|"
    return [separator.join(names[i] for i in np.flatnonzero(row >= threshold)) for row in np.asarray(probabilities)]
