"""submit stage: predictions for the unlabelled test file, as a competition-style submission CSV.

Columns: `data.id_column`, `data.label_column` (the predicted class name), then `p_<class>` for every
class. The file always exists, because DVC requires declared outputs: without an unlabelled test set
(`data.test_csv` unset, or a test file that has labels and is scored by the evaluate stage instead) it
holds the header line only. Probabilities come from `stages.inference.predict_proba` on the tokenize
stage's ids, exactly as in the evaluate stage.
"""
from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pandas as pd

from stages.common.errors import UserError
from stages.common.outputs import write_csv
from stages.common.params import DataParams
from stages.common.spreadsheet import spreadsheet_safe
from stages.dataset.multi_label import is_multi_label, names_of
from stages.modeling.task_outputs import multi_label_strings
from stages.modeling.inference import PROBABILITY_DIGITS, probability_columns
from stages.modeling.window_pooling import document_probabilities


def submission_columns(names: list[str], id_column: str, label_column: str) -> list[str]:
    columns = [id_column, label_column] + [f"p_{name}" for name in names]
    if len(set(columns)) != len(columns):
        raise UserError(f"data.id_column {id_column!r} and data.label_column {label_column!r} collide with the "
                        f"probability columns {columns[2:]}; rename one of them")
    return columns


def submission_frame(ids: list[str], probabilities: np.ndarray, names: list[str], id_column: str,
                     label_column: str) -> pd.DataFrame:
    columns = submission_columns(names, id_column, label_column)
    frame = pd.DataFrame({columns[0]: ids, columns[1]: [names[i] for i in probabilities.argmax(axis=1)]})
    return frame.assign(**probability_columns(probabilities, names))[columns]


def unlabelled_test(split: datasets.DatasetDict) -> bool:
    return "test" in split and "label" not in split["test"].column_names


def make_submission(paths, data: DataParams, batch_size: int) -> tuple[pd.DataFrame, str]:
    """(submission frame, one-line description of what it holds)."""
    split = datasets.load_from_disk(paths.split)
    # data.task regression: a float label, and the submission holds the predicted value in data.label_column
    regression = isinstance(split["train"].features["label"], datasets.Value)
    multi = is_multi_label(split["train"])  # data.task multi_label: the labels over the model's threshold, joined
    names = [] if regression else names_of(split["train"]) if multi else split["train"].features["label"].names
    if not unlabelled_test(split):
        why = ("the test file is labelled: its scores are in the evaluate stage's metrics" if "test" in split
               else "data.test_csv is not set")
        empty = pd.DataFrame(columns=submission_columns(names, data.id_column, data.label_column))
        return empty, f"header only ({why})"
    from transformers import AutoModelForSequenceClassification

    from stages.common.hardware import resolve_device

    tokenized = datasets.load_from_disk(paths.tokenized)
    model = AutoModelForSequenceClassification.from_pretrained(paths.model, use_safetensors=True)
    pairs = "text_pair" in split["test"].column_names  # sentence pairs: their token_type_ids too
    probabilities = document_probabilities(model, tokenized["test"], batch_size, resolve_device("auto"),
                                           desc="predict test", pairs=pairs)
    if regression:
        values = np.asarray(probabilities[:, 0], dtype=np.float64).round(PROBABILITY_DIGITS)
        frame = pd.DataFrame({data.id_column: split["test"]["id"], data.label_column: values})
        return frame, f"{len(frame)} unlabelled test rows (predicted values)"
    if multi:
        frame = pd.DataFrame({data.id_column: split["test"]["id"],
                              data.label_column: multi_label_strings(model.config, probabilities, names)})
        frame = frame.assign(**probability_columns(probabilities, names))[
            submission_columns(names, data.id_column, data.label_column)]
        return frame, f"{len(frame)} unlabelled test rows (every label over the threshold chosen on dev)"
    frame = submission_frame(split["test"]["id"], probabilities, names, data.id_column, data.label_column)
    return frame, f"{len(frame)} unlabelled test rows"


def write_submission(frame: pd.DataFrame, path: str | Path) -> None:
    """The CSV as people open it in a spreadsheet: no id or class name can run as a formula."""
    write_csv(spreadsheet_safe(frame), path)
