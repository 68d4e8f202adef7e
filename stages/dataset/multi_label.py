"""Multi-label rows (data.task: multi_label): any number of labels per text, none included.

Two input forms:
  data.label_column + data.label_separator   one cell holds the labels joined, `anger|joy`; an empty cell is a
                                             row with no label
  data.label_columns: [a, b, c]              one 0/1 column per label (the column names are the label names)

Internally a row's labels are one canonical string (label names in index order, joined by the separator), so the
cleaning of single-label rows (duplicates, conflicts: the same text with another label set) applies unchanged.
The saved DatasetDict holds `label` as a list of ClassLabel ids per row (datasets' own multi-label form, as in
go_emotions): the names travel with the features; the train stage turns the lists into the multi-hot float
vectors that BCEWithLogits needs.

Splits are stratified by iterative stratification (Sechidis, Tsoumakas and Vlahavas 2011): the rarest label
is placed first, each of its rows going to the split that still wants most of that label; a label that iterative
stratification leaves out of train gets one row moved back, so the model sees every label.
"""
from __future__ import annotations

import math
from typing import Optional

import datasets
import numpy as np
import pandas as pd

from stages.common.errors import UserError
from stages.common.params import DataParams

ONE, ZERO = ("1", "1.0"), ("0", "0.0")


def label_sets(source: str, frame: pd.DataFrame, data: DataParams) -> tuple[list[list[str]], list[str]]:
    """(the label names of every row of `frame`, the label names seen in the order the input declares them).
    The caller has checked that the label column(s) exist."""
    if data.label_columns:
        sets: list[list[str]] = [[] for _ in range(len(frame))]
        for column in data.label_columns:
            cells = frame[column].astype(str).str.strip()
            bad = ~cells.isin(ONE + ZERO)
            if bad.any():
                first = bad.idxmax()
                raise UserError(f"{source}: cell {cells[first]!r} in column {column!r} on row {int(first) + 1} is "
                                f"not 0 or 1 ({int(bad.sum())} such cells in that column); with data.label_columns every "
                                f"label cell must be 0 or 1")
            for i, on in enumerate(cells.isin(ONE).to_numpy()):
                if on:
                    sets[i].append(column)
        return sets, [str(c) for c in data.label_columns]
    separator = data.label_separator
    sets = [sorted({part.strip() for part in str(cell).split(separator) if part.strip()})
            for cell in frame[data.label_column]]
    return sets, sorted({name for row in sets for name in row})


def joined_labels(source: str, frame: pd.DataFrame, data: DataParams,
                  label_names: Optional[list[str]]) -> tuple[pd.Series, list[str]]:
    """(one canonical string per row: its labels in index order joined by data.label_separator, label names)."""
    sets, seen = label_sets(source, frame, data)
    names = list(label_names) if label_names is not None else (seen if data.label_columns else sorted(seen))
    index = {name: i for i, name in enumerate(names)}
    for row, labels in zip(frame.index, sets):
        unknown = [label for label in labels if label not in index]
        if unknown:
            raise UserError(f"{source}: label {unknown[0]!r} on row {int(row) + 1} is not in data.label_names "
                            f"{names}; add it to data.label_names or fix the row")
    separator = data.label_separator
    for name in names:
        if separator in name:
            raise UserError(f"{source}: label name {name!r} contains data.label_separator {separator!r}; "
                            f"set data.label_separator to a character no label name holds")
    joined = [separator.join(sorted(labels, key=index.__getitem__)) for labels in sets]
    return pd.Series(joined, index=frame.index, dtype=object), names


def label_ids(joined: pd.Series, names: list[str], separator: str) -> list[list[int]]:
    index = {name: i for i, name in enumerate(names)}
    return [[index[label] for label in cell.split(separator)] if cell else [] for cell in joined]


def multi_hot(ids: list[list[int]], n_labels: int) -> np.ndarray:
    """(rows, n_labels) float32 0/1: what BCEWithLogits and scikit-learn's multi-label metrics read."""
    matrix = np.zeros((len(ids), n_labels), dtype=np.float32)
    for row, labels in enumerate(ids):
        matrix[row, list(labels)] = 1.0
    return matrix


def drop_rare_labels(frame: pd.DataFrame, names: list[str], data: DataParams,
                     source: str, minimum: int = 2) -> tuple[pd.DataFrame, list[str], list[str]]:
    """A label on fewer than `minimum` rows cannot be in both train and valid: error, or (on_rare_class: drop)
    removed from the rows that carry it (the rows stay, with their other labels)."""
    counts = multi_hot(label_ids(frame["label"], names, data.label_separator), len(names)).sum(axis=0)
    rare = [(name, int(count)) for name, count in zip(names, counts) if count < minimum]
    if not rare:
        return frame, names, []
    listed = ", ".join(f"{name!r} ({count} row{'' if count == 1 else 's'})" for name, count in rare)
    if data.on_rare_class == "error":
        raise UserError(f"{source}: label {listed} is on fewer than {minimum} rows, too few for a stratified split; "
                        f"add rows for it, or set data.on_rare_class: drop to leave the label out")
    gone = {name for name, _ in rare}
    kept = names if data.label_names is not None else [name for name in names if name not in gone]
    separator = data.label_separator
    relabelled = frame["label"].map(lambda cell: separator.join(
        label for label in cell.split(separator) if label and label not in gone))
    return frame.assign(label=relabelled), kept, [f"{source}: removed rare label {listed} from its rows "
                                                  f"(data.on_rare_class: drop)"]


def iterative_split(labels: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the rows in the smaller (test) part: iterative stratification of a (rows, labels) 0/1
    matrix, Sechidis et al. 2011, algorithm 1, for two subsets. Rows without labels fill the subsets last."""
    rng = np.random.default_rng(seed)
    n_rows = len(labels)
    fractions = np.array([1.0 - test_fraction, test_fraction])
    wanted_rows = fractions * n_rows
    wanted = fractions[:, None] * labels.sum(axis=0)[None, :]  # (subsets, labels)
    subset = np.full(n_rows, -1)
    remaining = labels.astype(bool).copy()
    while remaining.any():
        counts = remaining.sum(axis=0)
        present = np.flatnonzero(counts)
        rarest = present[counts[present] == counts[present].min()]
        label = rng.choice(rarest)
        for row in rng.permutation(np.flatnonzero(remaining[:, label])):
            best = np.flatnonzero(wanted[:, label] == wanted[:, label].max())
            if len(best) > 1:
                best = best[wanted_rows[best] == wanted_rows[best].max()]
            chosen = rng.choice(best)
            subset[row] = chosen
            wanted[chosen] -= labels[row]
            wanted_rows[chosen] -= 1
            remaining[row] = False
    for row in rng.permutation(np.flatnonzero(subset < 0)):  # rows with no label
        chosen = int(np.argmax(wanted_rows))
        subset[row] = chosen
        wanted_rows[chosen] -= 1
    test = subset == 1
    for label in range(labels.shape[1]):  # every label keeps a training row
        rows = np.flatnonzero(labels[:, label] > 0)
        if len(rows) and test[rows].all():
            test[rows[0]] = False
    if not test.any() and n_rows > 1:  # a tiny file: the smaller part still gets a row, one that train can spare
        counts = labels[~test].sum(axis=0)
        spare = [row for row in range(n_rows) if np.all(counts[labels[row] > 0] >= 2)]
        test[rng.choice(spare) if spare else n_rows - 1] = True
    return test


def stratified_split(frame: pd.DataFrame, names: list[str], fraction: float, seed: int, source: str,
                     separator: str, what: str = "split.valid_size") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(larger part, smaller part), each in the file's row order."""
    if len(frame) < 2:
        raise UserError(f"{source}: {len(frame)} row left after cleaning; a multi-label split needs at least 2")
    if math.ceil(len(frame) * fraction) >= len(frame):
        raise UserError(f"{source}: {what} {fraction} leaves no training rows out of {len(frame)}; lower it or add rows")
    labels = multi_hot(label_ids(frame["label"], names, separator), len(names))
    test = iterative_split(labels, fraction, seed)
    return frame[~test].sort_index(), frame[test].sort_index()


def unseen_labels(joined: pd.Series, names: list[str], separator: str) -> list[str]:
    return sorted({label for cell in joined for label in cell.split(separator) if label and label not in names})


def label_features(names: list[str]) -> datasets.List:
    return datasets.List(datasets.ClassLabel(names=names))


def is_multi_label(dataset: datasets.Dataset) -> bool:
    """The split stage stores a multi-label `label` as a list of ClassLabel ids."""
    feature = dataset.features.get("label")
    return isinstance(feature, (datasets.List, datasets.Sequence)) and isinstance(
        getattr(feature, "feature", None), datasets.ClassLabel)


def names_of(dataset: datasets.Dataset) -> list[str]:
    return list(dataset.features["label"].feature.names)


def label_counts(frame: pd.DataFrame, names: list[str], separator: str) -> dict[str, int]:
    counts = multi_hot(label_ids(frame["label"], names, separator), len(names)).sum(axis=0)
    return {name: int(count) for name, count in zip(names, counts)}
