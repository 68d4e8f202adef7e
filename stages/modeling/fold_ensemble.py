"""The k fold models as one ensemble for an unlabelled test file (submit stage, split.folds > 1).

Each cv_train@<fold> stage predicted the test split with its fold model (stages/modeling/fold_outputs.py);
the submission's probabilities are their mean, row by row, and its label the class of highest mean probability.
"""
from __future__ import annotations

import datasets
import numpy as np
import pandas as pd

from stages.common.errors import UserError
from stages.common.params import DataParams, Params
from stages.modeling.fold_outputs import read_test
from stages.modeling.submission import submission_columns, submission_frame, unlabelled_test


def average_probabilities(per_fold: list[np.ndarray]) -> np.ndarray:
    """The fold models' ensemble: the mean of their class probabilities, row by row (rows still sum to 1)."""
    if not per_fold:
        raise ValueError("no fold probabilities to average")
    shapes = sorted({p.shape for p in per_fold})
    if len(shapes) != 1:
        raise UserError(f"the folds' test predictions differ in shape ({shapes}): some fold ran on other data; "
                        f"run `dvc repro`")
    return np.mean(np.stack(per_fold), axis=0)


def make_cv_submission(params: Params) -> tuple[pd.DataFrame, str]:
    """(submission frame from the fold average, one-line description), as submission.make_submission."""
    data: DataParams = params.data
    split = datasets.load_from_disk(params.paths.split)
    names = split["train"].features["label"].names
    if not unlabelled_test(split):
        why = ("the test file is labelled: the evaluate stage scores it" if "test" in split
               else "data.test_csv is not set")
        return pd.DataFrame(columns=submission_columns(names, data.id_column, data.label_column)), f"header only ({why})"
    per_fold = [read_test(params.paths.cv, fold, len(names)) for fold in params.split.fold_ids]
    probabilities = average_probabilities(per_fold)
    if len(probabilities) != len(split["test"]):
        raise UserError(f"{params.paths.cv}: the folds predicted {len(probabilities)} test rows, the test split has "
                        f"{len(split['test'])}: fold outputs of other data; run `dvc repro`")
    frame = submission_frame(split["test"]["id"], probabilities, names, data.id_column, data.label_column)
    return frame, f"{len(frame)} unlabelled test rows, mean of {len(per_fold)} fold models' probabilities"
