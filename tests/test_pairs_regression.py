"""Sentence pairs (data.text_pair_column) and regression (data.task: regression), on real texts.

Data: real sentences from ../shared/data, labels synthesised so each task is well defined (the shared sets
hold neither pairs nor scores):
- pairs (JNLI / paraphrase style): JCoLA sentences; a row pairs a sentence with itself ("same") or with the next
  sentence of the file ("different");
- regression (a score per text): chABSA sentences, score = characters / 10 (one decimal): a number the model can
  learn from the text, so the score column is a real float column with ties and a spread.
- both at once (JSTS style): sentence pairs with a score, for the one end-to-end run.
The end-to-end run is tiny (1 epoch, 30 pretraining steps): it checks the plumbing (token_type_ids, float
labels, the files every stage writes, predict = evaluate), not quality; pair classification's class columns
are the single-text ones, checked by the other end-to-end tests.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr
from transformers import AutoConfig, AutoTokenizer

from stages.common.params import project_params
from stages.dataset.pairs import encode_pairs
from stages.evaluation.regression import regression_headline, regression_intervals, regression_scores
from tests.conftest import call_main, make_pipeline_repo, need_shared_data, run
from tests.test_errors import setup

ROWS = 60


def pair_rows(n: int = ROWS) -> pd.DataFrame:
    sentences = pd.read_csv(need_shared_data("jcola_acceptability"))["text"].drop_duplicates().tolist()
    rows = []
    for i in range(n):
        a = sentences[i]
        same = i % 2 == 0
        rows.append({"premise": a, "hypothesis": a if same else sentences[i + 1], "label": "same" if same else "different"})
    return pd.DataFrame(rows)


def score_rows(n: int = ROWS) -> pd.DataFrame:
    texts = pd.read_csv(need_shared_data("chabsa_sentiment"))["text"].drop_duplicates().tolist()[:n]
    return pd.DataFrame({"text": texts, "score": [round(len(t) / 10, 1) for t in texts]})


# --- metrics ------------------------------------------------------------------------------------------


def test_regression_scores_match_scipy_and_intervals_cover_them():
    rng = np.random.default_rng(0)
    gold = rng.normal(size=200)
    predicted = gold + rng.normal(scale=0.8, size=200)
    scores = regression_scores(gold, predicted)
    assert scores["pearson"] == pytest.approx(pearsonr(gold, predicted)[0])
    assert scores["spearman"] == pytest.approx(spearmanr(gold, predicted)[0])
    assert scores["mse"] == pytest.approx(np.mean((predicted - gold) ** 2))
    assert scores["mae"] == pytest.approx(np.mean(np.abs(predicted - gold)))
    intervals = regression_intervals(gold, predicted)
    for key, (low, high) in intervals.items():
        assert low < scores[key] < high, key
    assert regression_intervals(gold, predicted) == intervals  # fixed seed
    headline = regression_headline(gold, predicted)
    assert list(headline)[:3] == ["pearson", "pearson_ci95_low", "pearson_ci95_high"]
    # A constant prediction has no measurable correlation: 0.0, not NaN (metrics.json must stay valid JSON).
    assert regression_scores(gold, np.full(200, 0.5))["pearson"] == 0.0


def test_metric_for_best_model_auto_and_cross_task_refusal():
    assert project_params().train.metric_for_best_model == "macro_f1"  # today's behaviour
    assert project_params({"data": {"task": "regression"}}).train.metric_for_best_model == "spearman"
    with pytest.raises(Exception, match="train.metric_for_best_model: macro_f1 does not apply to data.task regression"):
        project_params({"data": {"task": "regression"}, "train": {"metric_for_best_model": "macro_f1"}})
    with pytest.raises(Exception, match="split.folds > 1 .* supports single-text single_label tasks only"):
        project_params({"data": {"text_pair_column": "b"}, "split": {"folds": 3, "fold_ids": [1, 2, 3]}})
    with pytest.raises(Exception, match="with data.text_pair_column the pair is truncated"):
        project_params({"data": {"text_pair_column": "b"}, "tokenize": {"long_text": "head_tail"}})
    with pytest.raises(Exception, match="with data.task regression use head_tail or truncate"):
        project_params({"data": {"task": "regression"}, "tokenize": {"long_text": "sliding_window"}})


# --- split --------------------------------------------------------------------------------------------


def test_bad_regression_cell_names_file_column_and_row(tmp_path):
    csv = "text,score\n良い商品です。,0.5\n悪い商品です。,とても\n普通です。,0.1\n"
    workdir = setup(tmp_path, csv, {"data": {"task": "regression", "label_column": "score"}})
    result = call_main("stages.split", cwd=workdir)
    assert result.returncode == 2
    assert result.stderr.startswith("error: train.csv: label 'とても' in column 'score' on row 2 is not a number")
    assert not (workdir / "data/split").exists()


@pytest.mark.parametrize("cells, message", [
    (["0.5", "", "0.1"], "error: train.csv: empty label in column 'score' on row 2 (1 empty in all)"),
    (["３．５", "0.2", "0.1"], "error: train.csv: label '３．５' in column 'score' on row 1 is not a number"),
    (["2", "2.0", "2"], "error: train.csv: every label in column 'score' is 2; a regression needs scores that differ"),
])
def test_empty_full_width_and_constant_scores_are_refused(tmp_path, cells, message):
    texts = ["良い商品です。", "悪い商品です。", "普通です。"]
    csv = "text,score\n" + "".join(f"{text},{cell}\n" for text, cell in zip(texts, cells))
    result = call_main("stages.split", cwd=setup(tmp_path, csv, {"data": {"task": "regression", "label_column": "score"}}))
    assert result.returncode == 2 and result.stderr.startswith(message), result.stderr
    assert not (tmp_path / "data/split").exists()


def test_pair_split_dedups_on_the_pair_and_stratifies_regression_on_bins(tmp_path):
    pairs = pair_rows()
    doubled = pd.concat([pairs, pairs.iloc[:3]], ignore_index=True)  # 3 exact duplicate pairs
    # Same first text, another second text: not a duplicate of a pair.
    doubled.loc[len(doubled)] = {"premise": pairs["premise"][0], "hypothesis": "別の文です。", "label": "different"}
    workdir = setup(tmp_path, doubled.to_csv(index=False),
                    {"data": {"text_column": "premise", "text_pair_column": "hypothesis"}})
    result = call_main("stages.split", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "dropped 3 exact duplicate rows (same text pair, same label)" in result.stdout
    split = datasets.load_from_disk(str(workdir / "data/split"))
    assert sum(len(part) for part in split.values()) == ROWS + 1
    assert split["train"].column_names == ["text", "text_pair", "label"]

    scores = score_rows()
    (tmp_path / "regression").mkdir()
    workdir = setup(tmp_path / "regression", scores.to_csv(index=False),
                    {"data": {"task": "regression", "label_column": "score"}})
    assert call_main("stages.split", cwd=workdir).returncode == 0
    split = datasets.load_from_disk(str(workdir / "data/split"))
    assert split["train"].features["label"].dtype == "float32"
    summary = json.loads((workdir / "data/split/summary.json").read_text())
    assert summary["task"] == "regression" and sum(s["rows"] for s in summary["label_statistics"].values()) == ROWS
    # Stratified on quantile bins: valid spans the range (a row from the lowest and the highest fifth).
    ordered = np.sort(scores["score"].to_numpy())
    valid = np.asarray(split["valid"]["label"])
    assert valid.min() <= ordered[ROWS // 5] and valid.max() >= ordered[-ROWS // 5 - 1]


# --- end to end ---------------------------------------------------------------------------------------


def predict_frame(repo: Path, args: list[str]) -> pd.DataFrame:
    from stages.predict import run as predict

    out = io.StringIO()
    # data/release: the packaged model, whose tokenizer truncates at tokenize.max_length as the tokenize stage did
    predict([str(repo / "data/release"), *args, "--no-progress"], stdout=out, stderr=io.StringIO())
    return pd.read_csv(io.StringIO(out.getvalue()), dtype={"text": str})


def scored_pair_rows(n: int) -> pd.DataFrame:
    """JSTS-style rows: a JCoLA sentence paired with itself (score 5.0) or with the next sentence of the file
    (score 4 x the shorter / longer length ratio, one decimal), so the score column has ties and a spread."""
    pairs = pair_rows(n)
    ratio = [min(len(a), len(b)) / max(len(a), len(b)) for a, b in zip(pairs["premise"], pairs["hypothesis"])]
    score = [5.0 if same == "same" else round(4 * r, 1) for same, r in zip(pairs["label"], ratio)]
    return pairs.drop(columns="label").assign(score=score)


@pytest.mark.slow
def test_pair_regression_end_to_end_and_predict_equals_evaluate(tmp_path):
    """One `dvc repro` for both features (a JSTS-style task): the pair plumbing (token types, the pair column
    recorded in the model, predict reading it) and the regression plumbing (float labels, regression metrics,
    the scatter plot, predict = evaluate, the submission's score column)."""
    rows = scored_pair_rows(ROWS + 3)
    csv, test_csv = tmp_path / "pairs.csv", tmp_path / "test.csv"
    rows[:ROWS].to_csv(csv, index=False)
    rows[ROWS:].drop(columns="score").assign(id=["a", "b", "c"]).to_csv(test_csv, index=False)  # unlabelled
    repo = make_pipeline_repo(tmp_path / "repo", {
        "data": {"train_csv": str(csv), "test_csv": str(test_csv), "text_column": "premise",
                 "text_pair_column": "hypothesis", "label_column": "score", "task": "regression"},
        "train": {"epochs": 1}})
    result = run(["dvc", "repro"], repo)
    assert "train.class_weights: sqrt does not apply to data.task regression" in result.stderr + result.stdout
    # The builtin tokenizer lays a pair out as BERT does: [CLS] a [SEP] b [SEP], token types 0 then 1.
    tokenizer = AutoTokenizer.from_pretrained(repo / "data/base_model")
    encoded = encode_pairs(tokenizer, ["今日は晴れです。"], ["明日は雨です。"], 64)
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
    first_sep = tokens.index("[SEP]")
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and tokens.count("[SEP]") == 2
    types = encoded["token_type_ids"][0]
    assert set(types[:first_sep + 1]) == {0} and set(types[first_sep + 1:]) == {1}
    tokenized = datasets.load_from_disk(str(repo / "data/tokenized"))
    assert "token_type_ids" in tokenized["train"].column_names
    assert any(1 in types for types in tokenized["train"]["token_type_ids"])
    config = AutoConfig.from_pretrained(repo / "data/model")
    assert config.text_pair_column == "hypothesis" and config.problem_type == "regression"
    metrics = json.loads((repo / "data/eval/metrics.json").read_text())
    assert list(metrics["valid"]) == [f"{m}{s}" for m in ("pearson", "spearman", "mse", "mae")
                                      for s in ("", "_ci95_low", "_ci95_high")]
    evaluated = pd.read_csv(repo / "data/eval/predictions.csv", dtype={"text": str, "text_pair": str})
    assert list(evaluated.columns[:3]) == ["split", "text", "text_pair"]
    valid = evaluated[evaluated["split"] == "valid"].reset_index(drop=True)
    gold = valid["gold"].to_numpy()
    assert metrics["valid"]["mse"] == pytest.approx(np.mean((valid["predicted"] - gold) ** 2), abs=1e-5)
    # One epoch of a tiny model learns little, but the head starts at the training mean: about the error of
    # predicting the mean (a head starting at 0 is off by the whole mean, squared).
    assert metrics["valid"]["mse"] < 2 * np.var(gold) + 0.5
    baselines = json.loads((repo / "data/baselines/metrics.json").read_text())
    assert {"pearson", "spearman", "mse", "mae"} <= set(baselines["tfidf"]["valid"])
    assert "skipped" in baselines["mteb"] and "skipped" in baselines["knn"]
    # The classification plots DVC declares still exist (header only), and `dvc metrics diff` reads the file.
    assert (repo / "data/eval/confusion.csv").read_text() == "actual,predicted\n"
    json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    assert not json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout).get("errors")
    assert (repo / "data/train_log/plots/metrics/eval/spearman.tsv").read_text().startswith("step\tspearman\n")
    report = (repo / "data/eval/report.md").read_text()
    assert "Spearman" in report and "figures/scatter.png" in report and (repo / "data/eval/figures/scatter.png").is_file()
    # predict reads the pair column recorded in the model: same rows, same scores as evaluate.
    given = tmp_path / "valid.csv"  # the texts as the split holds them (predictions.csv escapes formula-like cells)
    split = datasets.load_from_disk(str(repo / "data/split"))["valid"]
    pd.DataFrame({"text": split["text"], "hypothesis": split["text_pair"]}).to_csv(given, index=False)
    predicted = predict_frame(repo, ["--input", str(given)])
    assert list(predicted.columns) == ["text", "text_pair", "prediction"]
    assert predicted["text_pair"].tolist() == valid["text_pair"].tolist()
    assert predicted["prediction"].tolist() == valid["predicted"].tolist()
    submission = pd.read_csv(repo / "data/submission.csv")
    assert list(submission.columns) == ["id", "score"] and submission["id"].tolist() == ["a", "b", "c"]
    on_test = predict_frame(repo, ["--input", str(test_csv), "--text-column", "premise"])
    assert submission["score"].tolist() == on_test["prediction"].tolist()
    card = (repo / "data/release/README.md").read_text()
    assert "spearman" in card.lower()


@pytest.mark.parametrize("model_type", ["bert", "roberta"])
def test_a_regression_head_starts_at_the_training_mean(model_type):
    """Scores far from 0 (ratings 1-5) must not cost the first epochs of MSE just to learn their level."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from stages.modeling.training import start_at_mean

    config = AutoConfig.for_model(model_type, vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=40, num_labels=1,
                                  problem_type="regression")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    before = model(input_ids=ids).logits.squeeze(-1)
    assert start_at_mean(model, 3.5)
    after = model(input_ids=ids).logits.squeeze(-1)
    assert torch.allclose(after - before, torch.full_like(before, 3.5), atol=1e-5)  # only the level moved
