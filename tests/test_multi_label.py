"""Multi-label classification (data.task: multi_label), on real texts.

Data: the bundled sample (data/sample/train.csv: positive / negative / neutral reviews) with label sets
synthesised so the task is well defined: a row carries its sentiment unless it is neutral (no sentiment label),
plus `long` when the text has 35 characters or more. So rows hold 0, 1 or 2 labels, some cells are empty, and
each label is learnable from the text. The end-to-end run is tiny (1 epoch, 30 pretraining steps): it checks the
plumbing (multi-hot labels, BCE head, the dev-chosen threshold, every stage's files, predict = evaluate), not quality.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, precision_recall_fscore_support

from stages.common.errors import UserError
from stages.common.params import DataParams, SplitParams, project_params
from stages.dataset.multi_label import iterative_split, multi_hot
from stages.dataset.splitting import make_splits
from stages.evaluation.multi_label import (
    THRESHOLD_GRID,
    choose_threshold,
    multi_label_headline,
    multi_label_scores,
    per_label,
)
from tests.conftest import REPO, make_pipeline_repo, run

LONG = 35


def label_sets(n: int | None = None) -> pd.DataFrame:
    sample = pd.read_csv(REPO / "data/sample/train.csv")
    sample = sample if n is None else sample.head(n)
    cells = []
    for text, sentiment in zip(sample["text"], sample["label"]):
        labels = [] if sentiment == "neutral" else [sentiment]
        cells.append("|".join(labels + (["long"] if len(text) >= LONG else [])))
    return pd.DataFrame({"text": sample["text"], "labels": cells})


def split_of(tmp_path: Path, frame: pd.DataFrame, **data) -> tuple:
    csv = tmp_path / "train.csv"
    frame.to_csv(csv, index=False)
    params = DataParams.from_project(train_csv=str(csv), task="multi_label", label_column="labels", **data)
    return make_splits(params, SplitParams.from_project())


# --- input ----------------------------------------------------------------------------------------------


def test_separator_and_column_forms_give_the_same_labels(tmp_path):
    frame = label_sets(90)
    joined, summary, _ = split_of(tmp_path, frame)
    assert summary["label_names"] == ["long", "negative", "positive"]
    assert joined["train"].features["label"].feature.names == ["long", "negative", "positive"]
    columns = frame[["text"]].assign(**{name: frame["labels"].str.split("|").map(lambda s, n=name: int(n in s))
                                        for name in ("long", "negative", "positive")})
    by_column, summary2, _ = split_of(tmp_path, columns, label_columns=["long", "negative", "positive"])
    assert summary2["class_counts"] == summary["class_counts"]
    for name in ("train", "dev", "valid"):
        assert by_column[name]["text"] == joined[name]["text"]
        assert by_column[name]["label"][:] == joined[name]["label"][:]
    # an empty cell is a row with no label, kept
    empty = [t for t, cell in zip(frame["text"], frame["labels"]) if cell == ""]
    assert empty and any(labels == [] for name in joined for labels in joined[name]["label"][:])


def test_bad_zero_one_cell_names_file_column_and_row(tmp_path):
    frame = pd.DataFrame({"text": [f"テキスト{i}" for i in range(10)], "a": ["1", "0"] * 5, "b": ["0"] * 10})
    frame.loc[6, "b"] = "yes"
    with pytest.raises(UserError) as err:
        split_of(tmp_path, frame, label_columns=["a", "b"])
    message = str(err.value)
    assert "train.csv" in message and "'yes'" in message and "column 'b'" in message and "row 7" in message


def test_a_file_without_any_label_is_refused(tmp_path):
    """Every cell empty (or every 0/1 column all 0 and dropped as rare): a head with no outputs cannot train."""
    texts = [f"テキスト{i}です。" for i in range(12)]
    with pytest.raises(UserError, match=r"train.csv: no row carries a label in column 'labels'"):
        split_of(tmp_path, pd.DataFrame({"text": texts, "labels": [""] * 12}))
    with pytest.raises(UserError, match=r"no row carries a label in columns \['a', 'b'\]"):
        split_of(tmp_path, pd.DataFrame({"text": texts, "a": [0] * 12, "b": [0] * 12}), label_columns=["a", "b"],
                 on_rare_class="drop")


def test_label_columns_need_multi_label_and_folds_are_refused():
    with pytest.raises(UserError, match="data.label_columns .* needs data.task: multi_label"):
        project_params({"data": {"label_columns": ["a", "b"]}})
    with pytest.raises(UserError, match="single_label tasks only"):
        project_params({"data": {"task": "multi_label"}, "split": {"folds": 2, "fold_ids": [1, 2]}})
    with pytest.raises(UserError, match="sliding_window .* multi_label"):
        project_params({"data": {"task": "multi_label"}, "tokenize": {"long_text": "sliding_window"}})
    assert project_params({"data": {"task": "multi_label"}}).train.metric_for_best_model == "micro_f1"
    with pytest.raises(UserError, match="spearman does not apply to data.task multi_label"):
        project_params({"data": {"task": "multi_label"}, "train": {"metric_for_best_model": "spearman"}})


def test_iterative_stratification_keeps_every_label_in_train_and_spreads_them():
    rng = np.random.default_rng(0)
    labels = (rng.random((300, 6)) < np.array([0.5, 0.3, 0.1, 0.05, 0.02, 0.01])).astype(np.float32)
    labels[:2, 5] = 1  # the rarest label on at least 2 rows
    test = iterative_split(labels, 0.2, seed=1)
    assert abs(test.mean() - 0.2) < 0.03
    train_counts, test_counts = labels[~test].sum(axis=0), labels[test].sum(axis=0)
    assert (train_counts > 0).all()
    common = labels.sum(axis=0) >= 30  # proportions of the common labels close to the split's
    share = test_counts[common] / labels.sum(axis=0)[common]
    assert np.all(np.abs(share - 0.2) < 0.05), share


def test_split_keeps_every_label_in_train_and_dev_and_valid_see_them(tmp_path):
    dataset, summary, _ = split_of(tmp_path, label_sets(120))
    counts = summary["class_counts"]
    assert all(counts["train"][name] > 0 for name in summary["label_names"])
    assert all(counts["valid"][name] > 0 and counts["dev"][name] > 0 for name in summary["label_names"])
    texts = [set(dataset[name]["text"]) for name in ("train", "dev", "valid")]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])


def test_tiny_file_still_gets_valid_rows_and_a_labelled_test_file_is_checked(tmp_path):
    labels = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    test = iterative_split(labels, 0.1, seed=0)
    assert test.sum() >= 1 and (labels[~test].sum(axis=0) > 0).all()
    test_csv = tmp_path / "test.csv"
    pd.DataFrame({"text": ["新しい文です。", "別の新しい文です。"], "labels": ["long", "long|angry"]}).to_csv(test_csv, index=False)
    with pytest.raises(UserError, match=r"label 'angry' on row 2 never occurs in training"):
        split_of(tmp_path, label_sets(60), test_csv=str(test_csv))
    pd.DataFrame({"text": ["新しい文です。", "別の新しい文です。"], "labels": ["long", ""]}).to_csv(test_csv, index=False)
    dataset, summary, _ = split_of(tmp_path, label_sets(60), test_csv=str(test_csv))
    assert dataset["test"]["label"][:] == [[0], []] and summary["class_counts"]["test"]["long"] == 1


# --- metrics and the threshold --------------------------------------------------------------------------


def test_scores_match_scikit_learn_and_intervals_cover_them():
    rng = np.random.default_rng(3)
    gold = (rng.random((200, 4)) < 0.3).astype(int)
    predicted = np.where(rng.random((200, 4)) < 0.8, gold, 1 - gold)
    scores = multi_label_scores(gold, predicted)
    for average in ("micro", "macro", "samples"):
        assert scores[f"{average}_f1"] == pytest.approx(f1_score(gold, predicted, average=average, zero_division=0))
    headline = multi_label_headline(gold, predicted, 0.4)
    for key in ("micro_f1", "macro_f1", "samples_f1"):
        assert headline[f"{key}_ci95_low"] <= headline[key] <= headline[f"{key}_ci95_high"]
    assert headline["threshold"] == 0.4 and headline["threshold_source"] == "dev"
    table = per_label(gold, predicted, ["a", "b", "c", "d"])
    precision, recall, f1, support = precision_recall_fscore_support(gold, predicted, zero_division=0)
    assert [table[n]["f1"] for n in "abcd"] == pytest.approx(f1, abs=1e-6)
    assert [table[n]["support"] for n in "abcd"] == support.tolist()


def test_threshold_is_chosen_on_the_rows_given_only():
    rng = np.random.default_rng(5)
    gold = (rng.random((300, 3)) < 0.3).astype(int)
    # A model whose probabilities are low across the board: the best dev threshold is well below 0.5.
    probabilities = np.clip(gold * 0.3 + rng.random((300, 3)) * 0.2, 0, 1)
    chosen = choose_threshold(gold, probabilities)
    assert chosen in THRESHOLD_GRID and chosen < 0.5
    best = max(f1_score(gold, probabilities >= t, average="micro", zero_division=0) for t in THRESHOLD_GRID)
    assert f1_score(gold, probabilities >= chosen, average="micro", zero_division=0) == pytest.approx(best)
    # metric macro_f1 / samples_f1 select on that metric; loss falls back to micro_f1
    assert choose_threshold(gold, probabilities, "loss") == chosen
    best_macro = max(f1_score(gold, probabilities >= t, average="macro", zero_division=0) for t in THRESHOLD_GRID)
    assert f1_score(gold, probabilities >= choose_threshold(gold, probabilities, "macro_f1"), average="macro",
                    zero_division=0) == pytest.approx(best_macro)


# --- end to end -----------------------------------------------------------------------------------------


def predict_frame(repo: Path, args: list[str]) -> pd.DataFrame:
    result = run(["python", "-m", "stages.predict", "data/release", *args], repo)
    return pd.read_csv(io.StringIO(result.stdout), dtype=str, keep_default_na=False)


@pytest.mark.slow
def test_multi_label_end_to_end_and_predict_equals_evaluate(tmp_path):
    frame = label_sets(150)
    csv, test_csv = tmp_path / "labels.csv", tmp_path / "test.csv"
    frame[:140].to_csv(csv, index=False)
    frame[140:][["text"]].to_csv(test_csv, index=False)  # unlabelled: the submit stage predicts its label sets
    repo = make_pipeline_repo(tmp_path / "repo", {
        "data": {"train_csv": str(csv), "test_csv": str(test_csv), "label_column": "labels", "task": "multi_label"},
        "train": {"epochs": 1, "class_weights": "balanced"}})
    result = run(["dvc", "repro"], repo)
    assert "does not apply to data.task multi_label" in result.stderr + result.stdout
    from transformers import AutoConfig, pipeline

    config = AutoConfig.from_pretrained(repo / "data/model")
    assert config.problem_type == "multi_label_classification" and config.num_labels == 3
    threshold = config.multi_label_threshold
    assert threshold in THRESHOLD_GRID
    metrics = json.loads((repo / "data/eval/metrics.json").read_text())
    assert list(metrics["valid"]) == [f"{m}{s}" for m in ("micro_f1", "macro_f1", "samples_f1")
                                      for s in ("", "_ci95_low", "_ci95_high")] + [
        "subset_accuracy", "threshold", "threshold_source"]
    assert metrics["valid"]["threshold"] == threshold and metrics["valid"]["threshold_source"] == "dev"
    evaluated = pd.read_csv(repo / "data/eval/predictions.csv", dtype=str, keep_default_na=False)
    valid = evaluated[evaluated["split"] == "valid"].reset_index(drop=True)
    names = ["long", "negative", "positive"]
    assert list(valid.columns) == ["split", "text", "gold", "predicted", *[f"p_{n}" for n in names], "tfidf_predicted"]
    gold = np.array([[int(n in cell.split("|")) for n in names] for cell in valid["gold"]])
    predicted = np.array([[int(n in cell.split("|")) for n in names] for cell in valid["predicted"]])
    assert metrics["valid"]["micro_f1"] == pytest.approx(f1_score(gold, predicted, average="micro", zero_division=0),
                                                         abs=1e-6)
    probabilities = valid[[f"p_{n}" for n in names]].astype(float).to_numpy()
    differ = (probabilities >= threshold) != predicted.astype(bool)  # only a probability at the threshold (rounding)
    assert np.all(np.abs(probabilities[differ] - threshold) < 1e-6)
    per_class = json.loads((repo / "data/eval/per_class.json").read_text())
    assert set(per_class["valid"]) == set(names) and "support" in per_class["valid"]["long"]
    baselines = json.loads((repo / "data/baselines/metrics.json").read_text())
    assert {"micro_f1", "macro_f1", "samples_f1"} <= set(baselines["tfidf"]["valid"])
    assert "skipped" in baselines["mteb"] and "skipped" in baselines["knn"]
    assert (repo / "data/eval/confusion.csv").read_text() == "actual,predicted\n"
    json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    assert not json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout).get("errors")
    report = (repo / "data/eval/report.md").read_text()
    assert "## Per label (valid)" in report and "blend" in report
    card = (repo / "data/release/README.md").read_text()
    assert "multi_label_classification" in card and "Rows carrying each label" in card
    # predict on the release equals evaluate's predictions, one row per text
    given = tmp_path / "valid.csv"
    import datasets

    pd.DataFrame({"text": datasets.load_from_disk(str(repo / "data/split"))["valid"]["text"]}).to_csv(given, index=False)
    predicted_rows = predict_frame(repo, ["--input", str(given)])
    assert len(predicted_rows) == len(valid)
    assert predicted_rows["label"].tolist() == valid["predicted"].tolist()
    for name in names:
        assert predicted_rows[f"p_{name}"].astype(float).tolist() == valid[f"p_{name}"].astype(float).tolist()
    # the stored threshold is the one the dev rows choose (the Trainer never saw valid)
    split = datasets.load_from_disk(str(repo / "data/split"))
    dev_csv = tmp_path / "dev.csv"
    pd.DataFrame({"text": split["dev"]["text"]}).to_csv(dev_csv, index=False)
    dev_rows = predict_frame(repo, ["--input", str(dev_csv)])
    dev_gold = multi_hot(split["dev"]["label"][:], len(names))
    assert choose_threshold(dev_gold, dev_rows[[f"p_{n}" for n in names]].astype(float).to_numpy()) == threshold
    submission = pd.read_csv(repo / "data/submission.csv", dtype=str, keep_default_na=False)
    assert list(submission.columns) == ["id", "labels", *[f"p_{n}" for n in names]]
    assert submission["labels"].tolist() == predict_frame(repo, ["--input", str(test_csv)])["label"].tolist()
    # transformers' own pipeline reads problem_type and applies a sigmoid, matching p_<label>
    classify = pipeline("text-classification", model=str(repo / "data/release"), top_k=None)
    scores = classify([valid["text"][0]])[0]
    by_label = {row["label"]: row["score"] for row in scores}
    for name in names:
        assert by_label[name] == pytest.approx(float(valid[f"p_{name}"][0]), abs=1e-5)


def test_model_card_totals_are_rows_not_label_occurrences():
    from stages.evaluation.model_card import data_section

    summary = {"task": "multi_label", "label_names": ["a", "b"], "class_counts": {"train": {"a": 3, "b": 2}},
               "rows": {"train": 4}}
    text = data_section(summary, {"train_csv": "x.csv"})
    assert "Rows carrying each label" in text and "| train | 3 | 2 | 4 |" in text


def test_a_rare_label_stops_the_split_or_is_removed_from_its_row(tmp_path):
    frame = label_sets(60)
    frame.loc[3, "labels"] = frame.loc[3, "labels"] + "|sarcasm" if frame.loc[3, "labels"] else "sarcasm"
    with pytest.raises(UserError, match=r"label 'sarcasm' \(1 row\) is on fewer than 2 rows.*data.on_rare_class: drop"):
        split_of(tmp_path, frame)
    dataset, summary, notes = split_of(tmp_path, frame, on_rare_class="drop")
    assert summary["label_names"] == ["long", "negative", "positive"]
    assert any("removed rare label 'sarcasm'" in note for note in notes)
    assert sum(len(dataset[name]) for name in ("train", "dev", "valid")) == 60  # the row stays


def test_sentence_pairs_with_label_sets(tmp_path):
    frame = label_sets(60)
    frame = frame.assign(hypothesis=frame["text"].str[::-1])
    dataset, summary, _ = split_of(tmp_path, frame, text_pair_column="hypothesis")
    assert dataset["train"].column_names == ["text", "text_pair", "label"]
    assert sum(len(dataset[name]) for name in ("train", "dev", "valid")) == 60
