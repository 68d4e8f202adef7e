"""K-fold cross-validation (split.folds > 1): one real `dvc repro` of the tiny pipeline with 3 folds, shared by
the end-to-end checks below, plus in-process checks of the fold assignment, out-of-fold assembly and averaging."""
from __future__ import annotations

import json
import re

import datasets
import numpy as np
import pandas as pd
import pytest

from stages.common.errors import UserError
from stages.common.params import SplitParams, project_params
from stages.dataset.folds import CV_SPLITS, fold_rows, folds_summary, heldout_folds
from stages.cv_evaluate import OOF_COLUMNS
from stages.evaluation.cross_validation import mean_and_std, oof_frame, out_of_fold
from stages.evaluation.metrics import classification_scores
from stages.modeling.fold_ensemble import average_probabilities
from stages.modeling.fold_outputs import HELDOUT_FILE, fold_dir, write_probabilities
from tests.conftest import SAMPLE_TEST_ROWS, make_pipeline_repo, run, write_params

FOLDS = [1, 2, 3]
CV_TARGETS = ["cv_evaluate", "submit"]  # the cv stages and what they need; embed, baselines, evaluate stay out
FAST = {"train": {"epochs": 1}}  # 4 trainings here (3 folds + the single split): one epoch each is enough


# ---- in-process ---------------------------------------------------------------------------------------------

def three_folds(**overrides) -> SplitParams:
    return SplitParams.from_project(folds=3, fold_ids=FOLDS, **overrides)


@pytest.mark.parametrize("split, fragment", [
    ({"folds": 3}, "split.fold_ids: must be [1, 2, 3] for split.folds 3"),
    ({"folds": 3, "fold_ids": [0, 1, 2]}, "write fold_ids: [1, 2, 3] under split"),
    ({"fold_ids": [1]}, "split.fold_ids: must be [] for split.folds 1"),
    ({"folds": 0, "fold_ids": []}, "split.folds"),
])
def test_fold_list_that_disagrees_with_folds_is_a_one_line_error(split, fragment):
    with pytest.raises(UserError) as error:
        project_params({"split": split})
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_every_row_held_out_once_and_dev_carved_from_the_fold_training_part():
    labels = np.array([0] * 20 + [1] * 10 + [2] * 2)
    names = ["a", "b", "c"]
    split = three_folds()
    assignment = heldout_folds(labels, 3, split.seed)
    assert sorted(set(assignment)) == FOLDS
    for fold in FOLDS:
        rows, _ = fold_rows(labels, names, fold, split)
        assert np.array_equal(rows.heldout, np.flatnonzero(assignment == fold))
        parts = np.concatenate([rows.train, rows.dev, rows.heldout])
        assert sorted(parts) == list(range(len(labels)))  # a partition: selection never sees held-out rows
        assert set(labels[rows.train]) == {0, 1, 2}       # every class keeps a training row
    summary, notes = folds_summary(labels, names, split)
    assert sum(summary["class_counts"][str(f)]["heldout"]["c"] for f in FOLDS) == 2
    assert any("'c' has 2 rows, fewer than split.folds 3" in note for note in notes)


def test_more_folds_than_rows_of_the_largest_class_is_a_user_error():
    with pytest.raises(UserError, match="split.folds: 5 folds need a class with at least 5 rows"):
        heldout_folds(np.array([0, 0, 1, 1, 1, 1]), 5, 42)


def test_average_of_fold_probabilities_known_answers():
    first = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    second = np.array([[0.5, 0.5], [0.4, 0.6], [0.1, 0.9]])
    third = np.array([[0.7, 0.3], [0.0, 1.0], [0.6, 0.4]])
    averaged = average_probabilities([first, second, third])
    assert np.allclose(averaged, [[0.7, 0.3], [0.2, 0.8], [0.4, 0.6]])
    assert np.allclose(averaged.sum(axis=1), 1.0)
    with pytest.raises(UserError, match="differ in shape"):
        average_probabilities([first, second[:2]])


def test_mean_and_sample_std_known_answers():
    assert mean_and_std([0.5, 0.7, 0.9]) == pytest.approx((0.7, 0.2))
    assert mean_and_std([0.8]) == (0.8, 0.0)


def test_out_of_fold_columns_are_those_of_the_header_written_when_cross_validation_is_off():
    frame = oof_frame(["text"], np.array([1]), np.array([2]), np.array([[0.25, 0.75]]), ["x", "y"])
    assert list(frame.columns) == OOF_COLUMNS + ["p_x", "p_y"]
    assert frame.iloc[0].tolist() == [0, 2, "text", "y", "y", 0.25, 0.75]


def test_out_of_fold_refuses_rows_held_out_twice_or_never(tmp_path):
    names = ["a", "b"]
    probabilities = np.array([[0.9, 0.1], [0.3, 0.7]])
    for fold, rows in ((1, [0, 1]), (2, [1, 2])):
        fold_dir(tmp_path, fold).mkdir()
        write_probabilities(fold_dir(tmp_path, fold) / HELDOUT_FILE, probabilities, names, np.array(rows))
    with pytest.raises(UserError, match="cv row 1 is held out by folds 1 and 2"):
        out_of_fold(tmp_path, [1, 2], 3, 2)
    with pytest.raises(UserError, match="held out by no fold"):
        out_of_fold(tmp_path, [1], 3, 2)
    fold_of_row, read = out_of_fold(tmp_path, [1], 2, 2)
    assert fold_of_row.tolist() == [1, 1] and np.allclose(read, probabilities)


# ---- one real `dvc repro` with split.folds 3 ----------------------------------------------------------------

@pytest.fixture(scope="module")
def cv_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("cv")
    test_csv = root / "unlabelled.csv"
    test_csv.write_text("id,text\n" + "".join(f"{i},{t}\n" for i, t in SAMPLE_TEST_ROWS if t), encoding="utf-8")
    repo = make_pipeline_repo(root / "repo", {"split": {"folds": 3, "fold_ids": FOLDS},
                                              "data": {"test_csv": str(test_csv)}, **FAST})
    first = run(["dvc", "repro", *CV_TARGETS], repo)
    second = run(["dvc", "repro", *CV_TARGETS], repo)
    return repo, first.stdout, second.stdout


def cv_rows(repo) -> pd.DataFrame:
    split = datasets.load_from_disk(str(repo / "data" / "split"))
    return pd.concat([split[name].to_pandas() for name in CV_SPLITS], ignore_index=True), split


@pytest.mark.slow
def test_one_stage_per_fold_runs_then_a_second_repro_skips_all(cv_repo):
    repo, first, second = cv_repo
    for fold in FOLDS:
        assert f"Running stage 'cv_train@{fold}'" in first
        # each fold ends with its held-out score and its training speed
        assert re.search(rf"cv_train: fold {fold}: .*held-out macro-F1 [0-9.]+ on \d+ rows; \d+ examples in "
                         r"[0-9.]+ s = [0-9.]+ examples/s", first), first
    assert "Running stage 'cv_train@4'" not in first
    assert "Running stage" not in second, second


@pytest.mark.slow
def test_out_of_fold_predictions_cover_every_training_row_exactly_once(cv_repo):
    repo, _, _ = cv_repo
    rows, split = cv_rows(repo)
    oof = pd.read_csv(repo / "data" / "cv_eval" / "oof_predictions.csv", keep_default_na=False)
    assert oof["row"].tolist() == list(range(len(rows)))
    assert oof["text"].tolist() == rows["text"].tolist()
    assert sorted(oof["fold"].unique()) == FOLDS
    names = split["train"].features["label"].names
    for fold in FOLDS:  # each fold's own record agrees: held out + train + dev = all rows
        record = json.loads((repo / "data" / "cv" / f"fold_{fold}" / "metrics.json").read_text())
        assert record["rows"]["heldout"] == int((oof["fold"] == fold).sum())
        assert sum(record["rows"].values()) == len(rows)
    assert oof["gold"].tolist() == [names[i] for i in rows["label"]]


@pytest.mark.slow
def test_metrics_report_out_of_fold_f1_with_interval_and_fold_mean_and_std(cv_repo):
    repo, _, _ = cv_repo
    cv = json.loads((repo / "data" / "cv_eval" / "metrics.json").read_text())["cv"]
    per_fold = json.loads((repo / "data" / "cv_eval" / "per_fold.json").read_text())
    oof = pd.read_csv(repo / "data" / "cv_eval" / "oof_predictions.csv", keep_default_na=False)
    names = sorted(oof["gold"].unique())
    gold = oof["gold"].map(names.index).to_numpy()
    predicted = oof["predicted"].map(names.index).to_numpy()
    assert cv["folds"] == 3 and cv["rows"] == len(oof)
    assert cv["oof_macro_f1"] == pytest.approx(classification_scores(gold, predicted, len(names))["macro_f1"], abs=1e-6)
    assert cv["oof_macro_f1_ci95_low"] <= cv["oof_macro_f1"] <= cv["oof_macro_f1_ci95_high"]
    assert cv["oof_macro_f1_ci95_low"] < cv["oof_macro_f1_ci95_high"]
    assert [f["fold"] for f in per_fold] == FOLDS
    scores = [f["macro_f1"] for f in per_fold]
    assert cv["fold_macro_f1_mean"] == pytest.approx(np.mean(scores), abs=1e-6)
    assert cv["fold_macro_f1_std"] == pytest.approx(np.std(scores, ddof=1), abs=1e-6)
    shown = run(["dvc", "exp", "show", "--json"], repo).stdout
    assert "oof_macro_f1" in shown and "fold_macro_f1_std" in shown


@pytest.mark.slow
def test_submission_is_the_mean_of_the_fold_models_probabilities(cv_repo):
    repo, _, _ = cv_repo
    submission = pd.read_csv(repo / "data" / "submission.csv")
    folds = [pd.read_csv(repo / "data" / "cv" / f"fold_{fold}" / "test.csv") for fold in FOLDS]
    columns = [c for c in submission.columns if c.startswith("p_")]
    assert len(submission) == len([t for _, t in SAMPLE_TEST_ROWS if t]) and columns == list(folds[0].columns)
    expected = np.mean([f[columns].to_numpy() for f in folds], axis=0)
    assert np.allclose(submission[columns].to_numpy(), expected, atol=1.5e-6)
    assert not np.allclose(folds[0][columns].to_numpy(), folds[1][columns].to_numpy(), atol=1e-4)  # real folds
    assert submission["label"].tolist() == [columns[i][2:] for i in expected.argmax(axis=1)]


@pytest.mark.slow
def test_a_changed_train_param_reruns_the_fold_trainings_and_not_the_folds(cv_repo):
    repo, _, _ = cv_repo
    params = (repo / "params.yaml").read_text(encoding="utf-8")
    try:
        write_params(repo, {"train": {"epochs": 3}})
        changed = set(json.loads(run(["dvc", "status", "--json"], repo).stdout))
    finally:
        (repo / "params.yaml").write_text(params, encoding="utf-8")
    # embed / baselines / evaluate / package never ran here, so they show as changed too; cv_split must not
    assert {f"cv_train@{fold}" for fold in FOLDS} | {"train"} <= changed
    assert not changed & {"cv_split", "cv_evaluate", "split", "tokenize", "base_model", "submit"}
