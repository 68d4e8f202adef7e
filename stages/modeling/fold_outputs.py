"""What one cv_train@<fold> stage leaves in `paths.cv/fold_<fold>/`, read back by cv_evaluate and submit.

    heldout.csv    cv row number (stages/dataset/folds.py) and p_<class> of every row the fold held out
    test.csv       p_<class> of every row of the test split, in its order (no rows without a test file)
    metrics.json   rows per part, the held-out scores and the dev scores of the kept checkpoint
    train_log/     DVCLive curves of the fold's training

The fold models themselves are not kept: their predictions are all the later stages use (see docs/evaluation.md).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stages.common.errors import UserError
from stages.common.outputs import write_csv
from stages.modeling.inference import probability_columns

HELDOUT_FILE = "heldout.csv"
TEST_FILE = "test.csv"
METRICS_FILE = "metrics.json"
LOG_DIR = "train_log"
ROW_COLUMN = "row"


def fold_dir(cv_dir: str | Path, fold: int) -> Path:
    return Path(cv_dir) / f"fold_{fold}"


def write_probabilities(path: Path, probabilities: np.ndarray, names: list[str], rows: np.ndarray | None = None) -> None:
    columns = probability_columns(probabilities, names)
    frame = pd.DataFrame({ROW_COLUMN: rows, **columns} if rows is not None else columns,
                         columns=([ROW_COLUMN] if rows is not None else []) + list(columns))
    write_csv(frame, path)


def _read(path: Path, n_classes: int) -> pd.DataFrame:
    if not path.is_file():
        raise UserError(f"{path}: missing; the cv_train stage of this fold has not run: run `dvc repro`")
    frame = pd.read_csv(path)
    if frame.shape[1] - (ROW_COLUMN in frame.columns) != n_classes:
        raise UserError(f"{path}: {frame.shape[1]} columns for {n_classes} classes: written for other data; "
                        f"run `dvc repro`")
    return frame


def read_heldout(cv_dir: str | Path, fold: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(cv row numbers, probabilities) of the rows `fold` held out."""
    frame = _read(fold_dir(cv_dir, fold) / HELDOUT_FILE, n_classes)
    return frame[ROW_COLUMN].to_numpy(dtype=np.int64), frame.drop(columns=ROW_COLUMN).to_numpy(dtype=np.float64)


def read_test(cv_dir: str | Path, fold: int, n_classes: int) -> np.ndarray:
    return _read(fold_dir(cv_dir, fold) / TEST_FILE, n_classes).to_numpy(dtype=np.float64)

