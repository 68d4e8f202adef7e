"""Turn the user's labelled table into a stratified train/valid (optional test) DatasetDict.

Cleaning (empty texts, duplicates, conflicting labels, rare classes) happens here, before the split,
so no text can land in two splits; every change to the user's rows is returned as a note.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Optional

import datasets
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from stages.common.errors import UserError
from stages.common.params import DataParams, SplitParams
from stages.dataset import multi_label, regression
from stages.dataset.pairs import PAIR
from stages.dataset.storage import save_dataset
from stages.dataset.tables import Table, read_table, require_column, resolve_labels


def drop_empty_texts(frame: pd.DataFrame, text_column: str, on_empty: str, source: str) -> tuple[pd.DataFrame, list[str]]:
    empty = frame[text_column].str.strip().eq("")
    if not empty.any():
        return frame, []
    if on_empty == "error":
        row = int(empty.idxmax()) + 1
        raise UserError(f"{source}: empty text in column {text_column!r} on row {row} ({int(empty.sum())} in all); "
                        f"fill or remove them, or set data.on_empty_text: drop")
    if empty.all():
        others = ", ".join(repr(c) for c in frame.columns if c != text_column)
        raise UserError(f"{source}: all {len(frame)} rows have an empty text in column {text_column!r}, so no row is "
                        f"left; is data.text_column the column that holds the texts? (other columns: {others or 'none'})")
    return frame[~empty], [f"{source}: dropped {int(empty.sum())} rows with an empty text"]


def drop_duplicates(frame: pd.DataFrame, on_conflict: str, source: str) -> tuple[pd.DataFrame, list[str]]:
    """Deduplicate before splitting so that no text can land in both train and valid. With sentence pairs a
    duplicate is the same (text, text_pair) pair."""
    notes = []
    key = ["text", PAIR] if PAIR in frame.columns else ["text"]
    what = "text" if len(key) == 1 else "text pair"
    exact = frame.duplicated([*key, "label"], keep="first")
    if exact.any():
        notes.append(f"{source}: dropped {int(exact.sum())} exact duplicate rows (same {what}, same label)")
        frame = frame[~exact]
    labels_per_text = frame.groupby(key, sort=False)["label"].transform("nunique")
    conflicting = labels_per_text.gt(1)
    if conflicting.any():
        first_text = frame.loc[conflicting, "text"].iloc[0]
        first_key = frame.loc[conflicting, key].iloc[0]
        rows = [int(i) + 1 for i in frame.index[frame[key].eq(first_key).all(axis=1)]]
        texts = len(frame.loc[conflicting, key].drop_duplicates())
        where = f"{texts} {what}s have different labels, e.g. rows {rows} ({first_text[:30]!r})"
        if on_conflict == "error":
            raise UserError(f"{source}: {where}; fix the labels or set data.on_conflict to drop or keep")
        if on_conflict == "drop":
            frame = frame[~conflicting]
            notes.append(f"{source}: {where}; dropped all {int(conflicting.sum())} of their rows")
        else:
            notes.append(f"{source}: {where}; kept them (data.on_conflict: keep)")
    return frame, notes


def texts_of(table: Table, data: DataParams, on_empty: str) -> tuple[pd.DataFrame, dict, list[str]]:
    """(rows left after dropping empty texts, {"text": ..., "text_pair": ...} columns, notes); with sentence pairs
    a row is dropped when either of its texts is empty."""
    require_column(table, data.text_column, "data.text_column")
    columns = {"text": data.text_column}
    if data.text_pair_column:
        require_column(table, data.text_pair_column, "data.text_pair_column")
        columns[PAIR] = data.text_pair_column
    frame, notes = table.frame, []
    for column in columns.values():
        frame, dropped = drop_empty_texts(frame, column, on_empty, table.source)
        notes += dropped
    return frame, {name: frame[column].to_numpy() for name, column in columns.items()}, notes


def load_labelled(table: Table, data: DataParams, label_names: Optional[list[str]], text_param: str) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Clean one labelled table into a frame with `text` (and `text_pair`) and `label` (class name, or a number
    for data.task regression) columns."""
    require_column(table, data.text_column, "data.text_column")
    for column in data.label_columns or []:  # data.task multi_label with one 0/1 column per label
        require_column(table, column, "data.label_columns")
    if not data.label_columns:
        require_column(table, data.label_column, "data.label_column")
    notes = list(table.notes)
    frame, texts, dropped = texts_of(table, data, data.on_empty_text)
    notes += dropped
    if data.task == "regression":
        labels, names = regression.numeric_labels(frame[data.label_column], table.source, data.label_column), []
    elif data.task == "multi_label":  # one canonical `a|b` string per row (stages/dataset/multi_label.py)
        labels, names = multi_label.joined_labels(table.source, frame, data, label_names)
    else:
        labels, names = resolve_labels(frame[data.label_column], label_names, table.source, data.label_column)
        stripped = frame[data.label_column].ne(labels)
        if stripped.any():
            notes.append(f"{table.source}: stripped surrounding whitespace from {int(stripped.sum())} labels")
    clean = pd.DataFrame({**texts, "label": labels.to_numpy()}, index=frame.index)
    return clean, names, notes


MIN_ROWS_PER_CLASS = 2


def drop_rare_classes(frame: pd.DataFrame, on_rare: str, source: str) -> tuple[pd.DataFrame, list[str]]:
    counts = frame["label"].value_counts()
    rare = counts[counts < MIN_ROWS_PER_CLASS]
    if not len(rare):
        return frame, []
    listed = ", ".join(f"{label!r} ({int(count)} row)" for label, count in rare.items())
    if on_rare == "error":
        raise UserError(f"{source}: class {listed} has fewer than {MIN_ROWS_PER_CLASS} rows, too few for a "
                        f"stratified split; add rows for it, or set data.on_rare_class: drop to leave it out")
    return frame[~frame["label"].isin(rare.index)], [f"{source}: dropped rare class {listed} (data.on_rare_class: drop)"]


def check_splittable(counts: pd.Series, valid_size: float, source: str, notes: list[str] | None = None) -> None:
    if counts.empty:
        why = "; ".join(notes or []) or "every row was removed"
        raise UserError(f"{source}: no rows left after cleaning ({why}); fix the rows or relax data.on_conflict / "
                        f"data.on_rare_class")
    if len(counts) < 2:
        raise UserError(f"{source}: only one class ({counts.index[0]!r}) after cleaning; "
                        f"a classifier needs at least 2 classes in data.label_column")
    total = int(counts.sum())
    n_valid = math.ceil(total * valid_size)
    if n_valid < len(counts):
        need = len(counts) / total
        raise UserError(f"{source}: split.valid_size {valid_size} gives {n_valid} validation rows for "
                        f"{len(counts)} classes; raise split.valid_size to at least {need:.3f} or add rows")
    if total - n_valid < len(counts):
        raise UserError(f"{source}: split.valid_size {valid_size} leaves {total - n_valid} training rows for "
                        f"{len(counts)} classes; lower split.valid_size")


def stratified_split(frame: pd.DataFrame, valid_size: float, seed: int, source: str,
                     notes: list[str] | None = None, by: str = "label") -> tuple[pd.DataFrame, pd.DataFrame]:
    """`notes` say what cleaning removed, for the message when nothing is left; `by`: the column stratified on
    (the label, or a regression label's quantile bin)."""
    if by == "label":
        check_splittable(frame["label"].value_counts(), valid_size, source, notes)
    elif len(frame) < 2:
        check_splittable(frame[by].value_counts(), valid_size, source, notes)  # the no-rows message
        raise UserError(f"{source}: {len(frame)} row left after cleaning; a regression split needs at least 2")
    train, valid = train_test_split(frame, test_size=valid_size, random_state=seed, stratify=frame[by])
    # Keep the file's row order inside each split: easier to read, and independent of the shuffle.
    return train.sort_index(), valid.sort_index()


def carve_dev(train: pd.DataFrame, dev_size: float, min_per_class: int, seed: int,
              by: str = "label") -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Split the training rows into (train, dev), stratified by hand so every class with 2+ rows gets dev rows.

    Each class gives round(n * dev_size) rows, at least `min_per_class` and never all of them: the dev split is
    what early stopping and the kept checkpoint are chosen on, so a rare class must be present there too,
    while train keeps at least one row of every class. The valid split is never touched here.
    """
    rng = np.random.default_rng(seed)
    dev_rows: list = []
    notes = []
    for label in sorted(train[by].unique()):
        rows = train.index[train[by].eq(label)].to_numpy()
        take = min(max(round(len(rows) * dev_size), min_per_class), len(rows) - 1)
        if take <= 0:
            notes.append(f"{'class' if by == 'label' else 'label quantile bin'} {label!r} has {len(rows)} training row, so none is left for the dev split "
                         f"(early stopping cannot see it)")
            continue
        dev_rows.extend(rng.permutation(rows)[:take].tolist())
    dev = train.loc[sorted(dev_rows)]
    return train.drop(index=dev.index), dev, notes


def to_dataset(frame: pd.DataFrame, names: list[str], labelled: bool = True,
               separator: Optional[str] = None) -> datasets.Dataset:
    """`names` empty: a regression label (float32); `separator`: multi-label rows (a list of ClassLabel ids)."""
    columns = {"text": frame["text"].tolist()}
    features = {"text": datasets.Value("string")}
    if PAIR in frame.columns:
        columns[PAIR] = frame[PAIR].tolist()
        features[PAIR] = datasets.Value("string")
    if labelled and separator is not None:
        columns["label"] = multi_label.label_ids(frame["label"], names, separator)
        features["label"] = multi_label.label_features(names)
    elif labelled and not names:
        columns["label"] = frame["label"].astype(np.float32).tolist()
        features["label"] = datasets.Value("float32")
    elif labelled:
        index = {name: i for i, name in enumerate(names)}
        columns["label"] = [index[label] for label in frame["label"]]
        features["label"] = datasets.ClassLabel(names=names)
    if "id" in frame.columns:
        columns = {"id": frame["id"].tolist(), **columns}
        features = {"id": datasets.Value("string"), **features}
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def load_test(data: DataParams, names: list[str], train_texts: set[str]) -> tuple[pd.DataFrame, bool, list[str]]:
    """The optional test file: labelled (with labels seen in training) or unlabelled."""
    table = read_table(data.test_csv, data.encoding, data.sep, param="data.test_csv")
    require_column(table, data.text_column, "data.text_column")
    labelled = (all(c in table.frame.columns for c in data.label_columns) if data.label_columns
                else data.label_column in table.frame.columns)
    notes = list(table.notes)
    if labelled:
        # With data.label_names the test file may use the same integer ids as the training file.
        frame, _, more = load_labelled(table, data, data.label_names, "data.test_csv")
        notes += more
        unseen = ([] if data.task == "regression" else
                  multi_label.unseen_labels(frame["label"], names, data.label_separator) if data.task == "multi_label"
                  else unseen_labels(frame, names))
        if unseen:
            carries = (frame["label"].str.split(data.label_separator, regex=False).map(lambda labels: unseen[0] in labels)
                       if data.task == "multi_label" else frame["label"].eq(unseen[0]))
            row = int(frame.index[carries][0]) + 1
            raise UserError(f"{table.source}: label {unseen[0]!r} on row {row} never occurs in training "
                            f"(training labels: {names}); fix the test file or data.label_names")
    else:
        frame, texts, dropped = texts_of(table, data, "drop")
        notes += dropped
        ids = (frame[data.id_column] if data.id_column in frame.columns
               else pd.Series([str(i + 1) for i in frame.index], index=frame.index))
        frame = pd.DataFrame({"id": ids.to_numpy(), **texts}, index=frame.index)
        notes.append(f"{table.source}: no {data.label_column!r} column: unlabelled test set of {len(frame)} rows")
    overlap = int(frame["text"].isin(train_texts).sum())
    if overlap:
        notes.append(f"{table.source}: {overlap} test texts also occur in the training CSV (leakage)")
    return frame, labelled, notes


def unseen_labels(frame: pd.DataFrame, names: list[str]) -> list[str]:
    return [label for label in sorted(set(frame["label"])) if label not in names]



def split_summary(parts: dict[str, pd.DataFrame], names: list[str], source_hash: str,
                  separator: Optional[str] = None) -> dict:
    """Class counts per split; for regression (`names` empty) the label's statistics per split instead; for
    multi-label rows (`separator`) the rows carrying each label."""
    if separator is not None:
        counts = {split: (multi_label.label_counts(frame, names, separator) if "label" in frame.columns
                          else {"unlabelled": len(frame)}) for split, frame in parts.items()}
        rows = {split: len(frame) for split, frame in parts.items()}
        return {"task": "multi_label", "label_names": names, "class_counts": counts, "rows": rows,
                "train_csv_sha256": source_hash}
    if not names:
        stats = {split: (regression.label_statistics(frame["label"]) if "label" in frame.columns
                         else {"unlabelled": len(frame)}) for split, frame in parts.items()}
        return {"task": "regression", "label_names": [], "label_statistics": stats, "train_csv_sha256": source_hash}
    counts = {}
    for split, frame in parts.items():
        if "label" in frame.columns:
            per_class = frame["label"].value_counts()
            counts[split] = {name: int(per_class.get(name, 0)) for name in names}
        else:
            counts[split] = {"unlabelled": len(frame)}
    return {"label_names": names, "class_counts": counts, "train_csv_sha256": source_hash}


def save_split(dataset_dict: datasets.DatasetDict, summary: dict, out_dir: str | Path) -> None:
    save_dataset(dataset_dict, out_dir, summary)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def make_splits(data: DataParams, split: SplitParams) -> tuple[datasets.DatasetDict, dict, list[str]]:
    table = read_table(data.train_csv, data.encoding, data.sep)
    frame, names, notes = load_labelled(table, data, data.label_names, "data.train_csv")
    frame, more = drop_duplicates(frame, data.on_conflict, table.source)
    notes += more
    if data.task == "multi_label":  # iterative stratification (stages/dataset/multi_label.py)
        return multi_label_splits(data, split, table, frame, names, notes)
    if data.task == "regression":
        by = regression.STRATUM
        frame = frame.assign(**{by: regression.quantile_bins(frame["label"], regression.bin_count(
            len(frame), split.valid_size))}) if len(frame) else frame.assign(**{by: []})
    else:
        by = "label"
        frame, more = drop_rare_classes(frame, data.on_rare_class, table.source)
        notes += more
        if data.label_names is None:  # classes named by the data: a dropped class is no class
            names = [name for name in names if name in set(frame["label"])]
    train, valid = stratified_split(frame, split.valid_size, split.seed, table.source, notes, by=by)
    if by != "label":  # the training rows' own bins, so dev spans their range too
        train = train.assign(**{by: regression.quantile_bins(train["label"], regression.bin_count(
            len(train), split.dev_size))})
    train, dev, more = carve_dev(train, split.dev_size, split.dev_min_per_class, split.seed, by=by)
    notes += [f"{table.source}: {note}" for note in more]
    parts = {"train": train, "dev": dev, "valid": valid}
    splits = {name: to_dataset(part, names) for name, part in parts.items()}
    if data.test_csv:
        test, labelled, more = load_test(data, names, set(frame["text"]))
        notes += more
        parts["test"] = test
        splits["test"] = to_dataset(test, names, labelled=labelled)
    summary = split_summary(parts, names, file_sha256(data.train_csv))
    return datasets.DatasetDict(splits), summary, notes


def multi_label_splits(data: DataParams, split: SplitParams, table: Table, frame: pd.DataFrame, names: list[str],
                       notes: list[str]) -> tuple[datasets.DatasetDict, dict, list[str]]:
    """make_splits for data.task multi_label: train/dev/valid by iterative stratification on the label sets
    (split.dev_min_per_class does not apply: a row carries several labels)."""
    frame, names, more = multi_label.drop_rare_labels(frame, names, data, table.source)
    notes += more
    if len(frame) == 0:
        check_splittable(frame["label"].value_counts(), split.valid_size, table.source, notes)
    if not names:  # every cell empty (or every label dropped as rare): a model with no outputs
        where = (f"columns {data.label_columns}" if data.label_columns else f"column {data.label_column!r}")
        raise UserError(f"{table.source}: no row carries a label in {where} after cleaning; a multi-label task needs "
                        f"at least one label on 2 rows: check data.label_column / data.label_columns and "
                        f"data.label_separator {data.label_separator!r}")
    separator = data.label_separator
    train, valid = multi_label.stratified_split(frame, names, split.valid_size, split.seed, table.source, separator)
    train, dev = multi_label.stratified_split(train, names, split.dev_size, split.seed, table.source, separator,
                                              "split.dev_size")
    parts = {"train": train, "dev": dev, "valid": valid}
    splits = {name: to_dataset(part, names, separator=separator) for name, part in parts.items()}
    if data.test_csv:
        test, labelled, more = load_test(data, names, set(frame["text"]))
        notes += more
        parts["test"] = test
        splits["test"] = to_dataset(test, names, labelled=labelled, separator=separator)
    summary = split_summary(parts, names, file_sha256(data.train_csv), separator)
    return datasets.DatasetDict(splits), summary, notes
