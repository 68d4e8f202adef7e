"""End to end for evaluation: one real `dvc repro` of the tiny pipeline, then metrics, plots and an experiment.

One module-scoped run serves every assertion (a `dvc repro` is the expensive part).
"""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from stages.evaluation.report import missing_references
from tests.conftest import copy_repo, run
from tests.test_evaluate import assert_meaningful_png

pytestmark = pytest.mark.slow

NAMES = ["negative", "neutral", "positive"]
STAGES = ("split", "base_model", "tokenize", "embed", "train", "baselines", "evaluate")


@pytest.fixture(scope="module")
def committed_run(sample_run, tmp_path_factory):
    for stage in STAGES:
        assert f"Running stage '{stage}'" in sample_run.stdout
    return copy_repo(sample_run.repo, tmp_path_factory.mktemp("evaluate") / "repo")


def spec_rows(spec: dict) -> list[dict]:
    """The rows DVC put into a filled Vega-Lite spec (top level or in a layer; not a layer's own constants)."""
    layers = [spec, *spec.get("layer", [])]
    rows = [row for layer in layers for row in layer.get("data", {}).get("values", []) if row]
    assert rows, spec.get("title")
    return rows


def html_specs(html: str) -> dict[str, dict]:
    """The Vega-Lite spec of each chart in `dvc plots show`'s HTML page, by its div id."""
    found = re.findall(r'<div id = "([^"]+)">\s*<script type = "text/javascript">\s*var spec = (.*?);\s*vegaEmbed',
                       html, flags=re.DOTALL)
    return {div: json.loads(spec) for div, spec in found}


def assert_plot_specs(spec: dict[str, dict]) -> None:
    """What each chart of the HTML page draws: the fields the templates in .dvc/plots/ encode exist in the
    rows DVC filled in from the real run's files."""
    for curve in ("data_eval_roc_csv", "data_eval_pr_csv"):
        points = pd.DataFrame(spec_rows(spec[curve]))
        assert points["class"].unique().tolist() == NAMES and points.groupby("class").size().min() >= 2, curve
        assert "per class" in spec[curve]["title"]["text"]
    roc_diagonal = spec["data_eval_roc_csv"]["layer"][0]["encoding"]
    assert (roc_diagonal["x2"], roc_diagonal["y2"]) == ({"datum": 1}, {"datum": 1})
    # Gold on rows (y) and predicted on columns (x), as in figures/confusion.png.
    confusion = spec["data_eval_confusion_csv"]["spec"]["encoding"]
    assert (confusion["y"]["field"], confusion["x"]["field"]) == ("actual", "predicted")
    assert (confusion["y"]["title"], confusion["x"]["title"]) == ("gold", "predicted")
    reliability = spec["data_eval_reliability_csv"]
    assert reliability["layer"][0]["encoding"]["color"]["datum"] == "perfect calibration"
    assert {"confidence", "accuracy", "count"} <= set(spec_rows(reliability)[0])
    # Loss: training and dev from two files on one chart, told apart by the file each row came from.
    assert {row["filename"] for row in spec_rows(spec["loss"])} == {"train/loss.tsv", "eval/loss.tsv"}
    assert "training vs dev" in spec["loss"]["title"]["text"]
    # Dev scores: one line per score, coloured by the source column DVC names in each row's `field`.
    assert spec["dev_scores"]["encoding"]["color"]["field"] == "field"
    scores = {row["field"] for row in spec_rows(spec["dev_scores"])}
    assert scores == {"macro_f1", "accuracy", "macro_precision", "macro_recall"}


def test_metrics_report_and_figures_of_a_real_run(committed_run):
    out = committed_run / "data/eval"
    metrics = json.loads((out / "metrics.json").read_text())
    predictions = pd.read_csv(out / "predictions.csv")
    names = NAMES
    assert list(predictions.columns) == ["split", "text", "gold", "predicted", *[f"p_{n}" for n in names], "tfidf_predicted"]
    valid = predictions[predictions["split"] == "valid"]
    gold, predicted = valid["gold"], valid["predicted"]
    probabilities = valid[[f"p_{n}" for n in names]].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (np.array(names)[probabilities.argmax(axis=1)] == predicted.to_numpy()).all()

    # Every headline metric equals scikit-learn's on the written predictions (3 classes: macro averages).
    expected = {"accuracy": accuracy_score(gold, predicted), "macro_f1": f1_score(gold, predicted, average="macro")}
    for key, value in expected.items():
        assert metrics["valid"][key] == pytest.approx(value, abs=1e-6), key
        # the file rounds to 6 digits
        assert metrics["valid"][f"{key}_ci95_low"] - 1e-6 <= value <= metrics["valid"][f"{key}_ci95_high"] + 1e-6, key
    per_class = json.loads((out / "per_class.json").read_text())["valid"]
    assert per_class["neutral"]["precision"] == pytest.approx(
        precision_score(gold, predicted, labels=["neutral"], average="macro", zero_division=0), abs=1e-6)
    assert per_class["positive"]["recall"] == pytest.approx(
        recall_score(gold, predicted, labels=["positive"], average="macro", zero_division=0), abs=1e-6)
    # Ranking metrics: one-vs-rest per class, averaged (probabilities in the file are rounded to 6 digits).
    one_vs_rest = [(gold == name).to_numpy() for name in names]
    auc = np.mean([roc_auc_score(is_class, probabilities[:, i]) for i, is_class in enumerate(one_vs_rest)])
    ap = np.mean([average_precision_score(is_class, probabilities[:, i]) for i, is_class in enumerate(one_vs_rest)])
    # Rounding can tie a positive with a negative that were ordered before (a tie counts 1/2): the difference from
    # the stage's full-precision AUC is at most half the share of tied pairs, averaged over the classes.
    tied = np.mean([np.sum(probabilities[is_class, i][:, None] == probabilities[~is_class, i][None, :])
                    / (is_class.sum() * (~is_class).sum()) for i, is_class in enumerate(one_vs_rest)])
    assert abs(metrics["valid"]["roc_auc"] - auc) <= tied / 2 + 2e-6
    assert ap > 0  # multi-class AP is in the report's per-class curves, not a headline key
    assert "average_precision" not in metrics["valid"] and "f1" not in metrics["valid"]
    # ECE by hand: equal-width bins (i/bins, (i+1)/bins] of the top probability, |accuracy - confidence|
    # weighted by each bin's share; the same bins as reliability.csv.
    bins = yaml.safe_load((committed_run / "params.yaml").read_text())["evaluate"]["calibration_bins"]
    confidence = probabilities.max(axis=1)
    correct = (predicted == gold).to_numpy()
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    ece = sum(abs(correct[which == b].mean() - confidence[which == b].mean()) * (which == b).mean()
              for b in range(bins) if (which == b).any())
    assert metrics["valid"]["ece"] == pytest.approx(ece, abs=1e-4)
    reliability = pd.read_csv(out / "reliability.csv")
    assert reliability["count"].sum() == len(valid)
    assert list(reliability["bin"]) == sorted(b + 1 for b in set(which.tolist()))
    # TF-IDF's per-text labels ride along in predictions.csv; its score in the baselines file matches them.
    baselines = json.loads((committed_run / "data/baselines/metrics.json").read_text())
    assert set(baselines) == {"tfidf", "probe", "mteb", "knn"}
    assert baselines["tfidf"]["valid"]["macro_f1"] == pytest.approx(
        f1_score(gold, valid["tfidf_predicted"], average="macro"), abs=1e-6)

    assert len(valid) == 90
    unlabelled = predictions[predictions["split"] == "test"]  # the shared run's unlabelled test file
    assert len(unlabelled) == 3 and unlabelled["gold"].isna().all()
    for kind in ("roc", "pr"):
        assert pd.read_csv(out / f"{kind}.csv")["class"].unique().tolist() == NAMES, kind

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
    assert any(key.startswith("mteb.valid.") for key in diff.get("data/baselines/metrics.json", {})), diff
    assert not diff.get("data/eval/metrics.json"), diff  # same model, same predictions

    shown = json.dumps(json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout))
    for key in ("mteb", "macro_f1_mean", "samples_per_label", "roc_auc", "ece", "tfidf"):
        assert key in shown, key

    plots = run(["dvc", "plots", "show"], repo)
    html = (repo / "dvc_plots/index.html").read_text()
    assert plots.returncode == 0 and "dvc_plots" in plots.stdout
    # One chart per question, not per file: ROC and PR hold every class, DVCLive's 13 TSVs become 4 charts.
    specs = html_specs(html)
    assert set(specs) == {"loss", "dev_scores", "learning_rate", "grad_norm", "data_eval_confusion_csv",
                          "data_eval_roc_csv", "data_eval_pr_csv", "data_eval_reliability_csv"}, set(specs)
    assert (repo / "dvc_plots/static/workspace_data_eval_embedding_map.png").is_file()
    assert_plot_specs(specs)

    run(["dvc", "plots", "diff", "HEAD", "-o", "plots_diff"], repo)
    assert "data_eval_reliability_csv" in (repo / "plots_diff/index.html").read_text()


def test_blend_weight_comes_from_dev_alone_and_its_valid_score_from_that_weight(committed_run):
    import datasets
    import torch
    from transformers import AutoModelForSequenceClassification

    from stages.evaluation.blend import choose_model_weight
    from stages.modeling.inference import predict_proba

    metrics = json.loads((committed_run / "data/eval/metrics.json").read_text())
    blend = metrics["blend"]
    split = datasets.load_from_disk(str(committed_run / "data/split"))
    tokenized = datasets.load_from_disk(str(committed_run / "data/tokenized"))
    tfidf = np.load(committed_run / "data/baselines/tfidf_probabilities.npz")
    assert set(tfidf.files) == {"dev", "valid"}
    model = AutoModelForSequenceClassification.from_pretrained(committed_run / "data/model")
    model_dev = predict_proba(model, tokenized["dev"]["input_ids"], 64, torch.device("cpu"))
    # Only dev texts, their gold labels and both sides' dev probabilities decide the weight.
    assert blend["model_weight"] == choose_model_weight(np.asarray(split["dev"]["label"]), model_dev, tfidf["dev"],
                                                        len(NAMES))
    predictions = pd.read_csv(committed_run / "data/eval/predictions.csv")
    valid = predictions[predictions["split"] == "valid"]
    model_valid = valid[[f"p_{n}" for n in NAMES]].to_numpy()
    w = blend["model_weight"]
    blended = np.array(NAMES)[(w * model_valid + (1 - w) * tfidf["valid"]).argmax(axis=1)]
    assert blend["valid"]["macro_f1"] == pytest.approx(f1_score(valid["gold"], blended, average="macro"), abs=1e-6)
    report = (committed_run / "data/eval/report.md").read_text()
    assert "blend: fine-tuned model and TF-IDF probabilities, weight chosen on dev" in report
