"""End to end for evaluation: one real `dvc repro` of the tiny pipeline, then metrics, plots and an experiment.

One module-scoped run serves every assertion (a `dvc repro` is the expensive part).
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from stages.evaluation.report import missing_references
from tests.conftest import copy_repo, run
from tests.test_evaluate import assert_meaningful_png

pytestmark = pytest.mark.slow

STAGES = ("split", "base_model", "tokenize", "embed", "train", "baselines", "evaluate")


@pytest.fixture(scope="module")
def committed_run(sample_run, tmp_path_factory):
    for stage in STAGES:
        assert f"Running stage '{stage}'" in sample_run.stdout
    return copy_repo(sample_run.repo, tmp_path_factory.mktemp("evaluate") / "repo")


def test_metrics_report_and_figures_of_a_real_run(committed_run):
    out = committed_run / "data/eval"
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall", "roc_auc",
                "average_precision", "ece"):
        assert 0.0 <= metrics["valid"][key] <= 1.0, key
    for baseline in ("probe", "knn", "tfidf"):
        assert 0.0 <= metrics[baseline]["valid"]["macro_f1"] <= 1.0
    assert metrics["mteb"]["valid"]["macro_f1_std"] >= 0.0
    # The bundled sample is easy for a word/character model: the classical bar is high.
    assert metrics["tfidf"]["valid"]["macro_f1"] > 0.9

    predictions = pd.read_csv(out / "predictions.csv")
    assert list(predictions.columns) == ["split", "text", "gold", "predicted", "p_negative", "p_neutral", "p_positive"]
    assert (predictions["split"] == "valid").sum() == 90
    unlabelled = predictions[predictions["split"] == "test"]  # the shared run's unlabelled test file
    assert len(unlabelled) == 3 and unlabelled["gold"].isna().all()
    assert sorted(p.name for p in (out / "roc").iterdir()) == ["negative.csv", "neutral.csv", "positive.csv"]

    pngs = sorted(out.rglob("*.png"))
    assert len(pngs) == 6
    for png in pngs:
        assert_meaningful_png(png)
    assert missing_references(out / "report.md") == []


def test_exp_run_shows_changed_metrics_and_plots_render(committed_run):
    repo = committed_run
    exp = run(["dvc", "exp", "run", "-S", "baselines.mteb.samples_per_label=4"], repo)
    ran = {stage for stage in STAGES if f"Running stage '{stage}'" in exp.stdout}
    assert ran == {"baselines", "evaluate"}, exp.stdout  # the model is not retrained for a baseline knob

    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], repo).stdout)
    changed = {key for changes in diff.values() for key in changes}
    assert any(key.startswith("mteb.valid.") for key in changed), changed
    assert not any(key.startswith("valid.") for key in changed), changed  # same model, same predictions

    shown = json.dumps(json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout))
    for key in ("mteb", "macro_f1_mean", "samples_per_label", "roc_auc", "ece", "tfidf"):
        assert key in shown, key

    plots = run(["dvc", "plots", "show"], repo)
    html = (repo / "dvc_plots/index.html").read_text()
    assert plots.returncode == 0 and "dvc_plots" in plots.stdout
    # Each declared plot is a div named after its file (ROC/PR: one per class).
    for div in ("data_eval_confusion_csv", "data_eval_roc_negative_csv", "data_eval_pr_positive_csv",
                "data_eval_reliability_csv", "data_eval_embedding_map_png"):
        assert div in html, div
    assert (repo / "dvc_plots/static/workspace_data_eval_embedding_map.png").is_file()

    run(["dvc", "plots", "diff", "HEAD", "-o", "plots_diff"], repo)
    assert "data_eval_reliability_csv" in (repo / "plots_diff/index.html").read_text()
