"""End to end: real `dvc repro` in a temporary copy of the repo, on the tiny builtin model."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tests.conftest import call_main, copy_repo, make_pipeline_repo, need_shared_data, run
from tests.test_errors import setup

pytestmark = pytest.mark.slow


def read_metrics(repo):
    return json.loads((repo / "data/eval/metrics.json").read_text())


def flat_keys(metrics: dict, prefix: str = "") -> dict:
    """metrics.json as `dvc metrics` names its keys: valid.macro_f1, valid.macro_f1_ci95_low, ..."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(flat_keys(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_repro_rerun_and_selective_exp_run(sample_run, tmp_path):
    for stage in ("split", "base_model", "tokenize", "embed", "train", "evaluate"):
        assert f"Running stage '{stage}'" in sample_run.stdout
    pipeline_repo = copy_repo(sample_run.repo, tmp_path / "repo")

    metrics = read_metrics(pipeline_repo)
    valid = metrics["valid"]
    per_class = json.loads((pipeline_repo / "data/eval/per_class.json").read_text())["valid"]
    assert set(per_class) == {"negative", "neutral", "positive"}
    assert sum(c["support"] for c in per_class.values()) == 90  # 20% of the 450 sample rows
    # The headline numbers are those of the written predictions, and the baselines those of their own stage.
    predictions = pd.read_csv(pipeline_repo / "data/eval/predictions.csv")
    scored = predictions[predictions["split"] == "valid"]
    assert valid["macro_f1"] == pytest.approx(f1_score(scored["gold"], scored["predicted"], average="macro"), abs=1e-6)
    assert valid["accuracy"] == pytest.approx(accuracy_score(scored["gold"], scored["predicted"]), abs=1e-6)
    assert {name: c["support"] for name, c in per_class.items()} == scored["gold"].value_counts().to_dict()
    baselines = json.loads((pipeline_repo / "data/baselines/metrics.json").read_text())
    assert baselines["tfidf"]["valid"]["accuracy"] == pytest.approx(
        accuracy_score(scored["gold"], scored["tfidf_predicted"]), abs=1e-6)
    # The run's summary (also printed at the end of the evaluate stage) names the files and judges TF-IDF.
    summary = run(["python", "-m", "stages.evaluate", "--summary"], pipeline_repo).stdout.splitlines()
    assert len(summary) <= 8 and summary[0].startswith(f"valid macro-F1 {valid['macro_f1']:.4f} (95% CI ")
    assert any("TF-IDF" in line for line in summary) and any("data/eval/report.md" in line for line in summary)
    # Better than chance on a 3-class balanced sample even with the tiny model.
    assert valid["accuracy"] > 0.45
    assert (pipeline_repo / "data/eval/confusion.csv").read_text().startswith("actual,predicted\n")

    model = AutoModelForSequenceClassification.from_pretrained(pipeline_repo / "data/model")
    assert model.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    tokenizer = AutoTokenizer.from_pretrained(pipeline_repo / "data/model")
    assert type(tokenizer).__name__ == "BertJapaneseTokenizer"

    second = run(["dvc", "repro"], pipeline_repo)
    assert "Running stage" not in second.stdout
    assert "Data and pipelines are up to date" in second.stdout

    exp = run(["dvc", "exp", "run", "-S", "train.learning_rate=0.0001"], pipeline_repo)
    ran = {stage for stage in ("split", "base_model", "tokenize", "embed", "train", "evaluate")
           if f"Running stage '{stage}'" in exp.stdout}
    assert ran == {"train", "evaluate"}, exp.stdout

    table = run(["python", "-m", "stages.compare", "--table"], pipeline_repo).stdout.splitlines()  # `make compare`
    assert max(len(line) for line in table) < 100 and table[0].startswith("experiment")
    assert any(line.startswith("workspace") and "learning_rate=0.0001" in line for line in table), table
    shown = json.loads(run(["dvc", "exp", "show", "--json"], pipeline_repo).stdout)
    flat = json.dumps(shown)
    assert "0.0001" in flat and "0.002" in flat  # both runs' learning rates listed
    assert "macro_f1" in flat

    # workspace (the experiment) vs HEAD (the baseline run): every reported change is between those two files.
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], pipeline_repo).stdout)["data/eval/metrics.json"]
    head = flat_keys(json.loads(run(["git", "show", "HEAD:data/eval/metrics.json"], pipeline_repo).stdout))
    workspace = flat_keys(read_metrics(pipeline_repo))
    assert any(key.startswith("valid.") for key in diff), diff  # another learning rate, another model
    for key, change in diff.items():
        assert (change["old"], change["new"]) == (head.get(key), workspace.get(key)), key
    baseline_diff = json.loads(run(["dvc", "metrics", "diff", "--json"], pipeline_repo).stdout).get(
        "data/baselines/metrics.json", {})
    assert not baseline_diff  # the baselines stage did not rerun for a training param


def test_real_dataset_runs_without_code_change(tmp_path):
    """The whole pipeline on a real, unbalanced set from ../shared/data (403 rows, 49 toxic)."""
    csv = need_shared_data("ja_toxic_inspection")
    repo = make_pipeline_repo(tmp_path / "toxic", {"data": {"train_csv": str(csv)}, "train": {"epochs": 1}})
    run(["dvc", "repro"], repo)
    per_class = json.loads((repo / "data/eval/per_class.json").read_text())
    assert set(per_class["valid"]) == {"normal", "toxic"}
    summary = json.loads((repo / "data/split/summary.json").read_text())
    assert sum(sum(split.values()) for split in summary["class_counts"].values()) == 403


@pytest.mark.parametrize("dataset", ["chabsa_sentiment", "jcola_acceptability"])
def test_other_real_datasets_read_and_split_without_code_change(tmp_path, dataset):
    """The other shared sets through the split stage (in-process): what differs between data sets is read and
    split there; the stages after it run the same code on any split."""
    csv = need_shared_data(dataset)
    workdir = setup(tmp_path, None, {"data": {"train_csv": str(csv)}})
    result = call_main("stages.split", cwd=workdir)
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(csv, dtype=str)
    kept = frame.drop_duplicates(["text", "label"])  # exact duplicates are dropped, with a note
    duplicates = len(frame) - len(kept)
    assert (f"dropped {duplicates} exact duplicate rows" in result.stdout) == (duplicates > 0), result.stdout
    summary = json.loads((workdir / "data/split/summary.json").read_text())
    counts = kept["label"].value_counts().to_dict()
    assert summary["label_names"] == sorted(counts)
    assert {name: sum(split.get(name, 0) for split in summary["class_counts"].values()) for name in counts} == counts
