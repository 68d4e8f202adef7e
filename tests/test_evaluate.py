"""Evaluate and baselines stages on small synthetic predictions: fast, no model, real files."""
from __future__ import annotations

import json
import os
import re

import datasets
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score, f1_score

from stages.common.errors import UserError
from stages.common.outputs import class_file_stems
from stages.common.params import BaselinesParams, EvaluateParams
from stages.evaluation.baselines import (
    linear_probe,
    logistic_regression,
    mteb_protocol,
    run_baselines,
    undersample,
)
from stages.evaluation.evaluator import write_outputs
from stages.evaluation.metrics import (
    curve_frames,
    expected_calibration_error,
    positive_index,
    ranking_scores,
    reliability_table,
)
from stages.evaluation.report import missing_references, referenced_files


def assert_meaningful_png(path) -> None:
    """A PNG that opens, has a real size and is not one flat colour."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width >= 200 and image.height >= 150, (path, image.size)
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.std() > 5, f"{path} is (nearly) blank"
    assert len(np.unique(pixels)) > 10, f"{path} has almost no content"


def synthetic_sets(n_classes: int, rows: int = 60, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    gold = np.arange(rows) % n_classes
    logits = rng.normal(size=(rows, n_classes))
    logits[np.arange(rows), gold] += 1.5  # better than chance, with mistakes
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    texts = [f"テキスト{i}は{'とても' * (i % 5)}良い | 例" for i in range(rows)]
    return {"valid": {"texts": texts, "gold": gold, "probabilities": probabilities.astype(np.float32)}}


BASELINES = {name: {"valid": {"macro_f1": 0.4, "accuracy": 0.5}} for name in ("probe", "knn", "tfidf")}
BASELINES["mteb"] = {"valid": {"accuracy_mean": 0.4, "accuracy_std": 0.05, "macro_f1_mean": 0.35, "macro_f1_std": 0.04}}


def run_write_outputs(tmp_path, names, sets, positive=1, params=None):
    rng = np.random.default_rng(1)
    labels = np.arange(120) % len(names)
    vectors = rng.normal(size=(120, 16)).astype(np.float32) + labels[:, None]
    context = {"class_counts": {"train": {n: 40 for n in names}, "valid": {n: 20 for n in names}},
               "all_texts": {"train": ["短い"] * 10 + ["少し長いテキスト"] * 5, "valid": sets["valid"]["texts"]},
               "token_report": {"valid": {"mean_tokens": 7.25, "truncated_rate": 0.0}}, "title": "test report"}
    out = tmp_path / "eval"
    metrics = write_outputs(out, names, positive, sets, vectors, labels, BASELINES, params or EvaluateParams.from_project(), context)
    return out, metrics


@pytest.mark.parametrize("names", [["normal", "toxic"], ["否定", "中立", "肯定", "その他"]])
def test_every_declared_output_is_written_for_binary_and_multiclass(tmp_path, names):
    sets = synthetic_sets(len(names))
    out, metrics = run_write_outputs(tmp_path, names, sets)

    on_disk = json.loads((out / "metrics.json").read_text())
    per_class = json.loads((out / "per_class.json").read_text())
    assert set(on_disk) == {"valid"} and set(per_class["valid"]) == set(names)
    valid = on_disk["valid"]
    gold, predicted = sets["valid"]["gold"], sets["valid"]["probabilities"].argmax(axis=1)
    # Headline first, each estimate followed by its interval; multi-class has no duplicate f1/precision/recall.
    binary = ["f1", "f1_ci95_low", "f1_ci95_high", "precision", "recall", "roc_auc", "average_precision"]
    assert list(valid) == ["macro_f1", "macro_f1_ci95_low", "macro_f1_ci95_high", "accuracy", "accuracy_ci95_low",
                           "accuracy_ci95_high", *(binary if len(names) == 2 else ["roc_auc"]), "ece"]
    assert valid["macro_f1"] == pytest.approx(f1_score(gold, predicted, average="macro"), abs=1e-6)
    assert valid["accuracy"] == pytest.approx(accuracy_score(gold, predicted), abs=1e-6)
    for key in ("macro_f1", "accuracy"):
        assert valid[f"{key}_ci95_low"] < valid[key] < valid[f"{key}_ci95_high"], key
    assert metrics["valid"]["per_class"] == per_class["valid"] and metrics["tfidf"] == BASELINES["tfidf"]

    # One long table per curve kind, a line per class (DVC's chart colours by `class`): the positive class
    # of a binary task, every class above two, in label order, each drawn left to right.
    curves = curve_frames(gold, sets["valid"]["probabilities"], names, positive=1)
    for kind, columns in (("roc", ["fpr", "tpr"]), ("pr", ["recall", "precision"])):
        table = pd.read_csv(out / f"{kind}.csv", keep_default_na=False)
        assert list(table.columns) == ["class", *columns]
        assert list(table["class"].unique()) == (["toxic"] if len(names) == 2 else names)
        for index, (name, frame) in enumerate(table.groupby("class", sort=False)):
            assert len(frame) >= 2 and frame[columns[0]].is_monotonic_increasing, (kind, name)
            expected = curves[kind][names.index(name)]
            assert frame[columns].to_numpy().tolist() == expected.to_numpy().tolist(), (kind, name)
    assert not (out / "roc").exists() and not (out / "pr").exists()

    predictions = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert list(predictions.columns) == ["split", "text", "gold", "predicted", *[f"p_{n}" for n in names]]
    assert np.allclose(predictions[[f"p_{n}" for n in names]].sum(axis=1), 1.0, atol=1e-4)
    assert pd.read_csv(out / "confusion.csv").columns.tolist() == ["actual", "predicted"]
    assert pd.read_csv(out / "reliability.csv")["count"].sum() == len(sets["valid"]["gold"])

    pngs = sorted(out.rglob("*.png"))
    assert {p.name for p in pngs} == {"embedding_map.png", "confusion.png", "roc.png", "pr.png", "reliability.png",
                                      "lengths.png"}
    for png in pngs:
        assert_meaningful_png(png)

    report = (out / "report.md").read_text(encoding="utf-8")
    assert missing_references(out / "report.md") == []
    assert {"figures/confusion.png", "embedding_map.png"} <= set(referenced_files(report))
    assert "| **fine-tuned model** |" in report and "TF-IDF" in report and "Most confident wrong predictions" in report
    assert "テキスト" in report and "\\|" in report  # texts shown, pipes escaped so the table stays intact
    assert "same class" not in report


def test_report_warns_when_every_valid_text_gets_one_class(tmp_path):
    names = ["acceptable", "unacceptable"]
    sets = synthetic_sets(2)
    sets["valid"]["probabilities"] = np.tile(np.array([[0.8, 0.2]], dtype=np.float32), (60, 1))
    out, metrics = run_write_outputs(tmp_path, names, sets)
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "**Warning: the model gives every valid text the same class (acceptable).**" in report
    assert metrics["valid"]["per_class"]["unacceptable"]["recall"] == 0.0


def test_outputs_are_byte_identical_across_reruns(tmp_path):
    names = ["a", "b", "c"]
    first, _ = run_write_outputs(tmp_path / "1", names, synthetic_sets(3))
    second, _ = run_write_outputs(tmp_path / "2", names, synthetic_sets(3))
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_positive_label_chooses_the_binary_scores(tmp_path):
    names = ["normal", "toxic"]
    sets = synthetic_sets(2)
    _, default = run_write_outputs(tmp_path / "default", names, sets)
    out, flipped = run_write_outputs(tmp_path / "flipped", names, sets, positive=positive_index(names, "normal"))
    assert default["valid"]["f1"] == default["valid"]["per_class"]["toxic"]["f1"]
    assert flipped["valid"]["f1"] == flipped["valid"]["per_class"]["normal"]["f1"]
    assert pd.read_csv(out / "roc.csv")["class"].unique().tolist() == ["normal"]
    assert default["valid"]["roc_auc"] == pytest.approx(flipped["valid"]["roc_auc"], abs=1e-6)  # AUC is symmetric
    with pytest.raises(UserError, match="evaluate.positive_label: 'spam' is not a class"):
        positive_index(names, "spam")


def test_ece_and_reliability_by_hand():
    # Two bins used: confidence 0.95 (2 texts, 1 right) and 0.65 (2 texts, both right).
    probabilities = np.array([[0.95, 0.05], [0.95, 0.05], [0.35, 0.65], [0.35, 0.65]])
    gold = np.array([0, 1, 1, 1])
    table = reliability_table(gold, probabilities, bins=10)
    assert table[["bin", "count"]].values.tolist() == [[7, 2], [10, 2]]
    assert table["accuracy"].tolist() == [1.0, 0.5]
    assert expected_calibration_error(table) == pytest.approx(0.5 * 0.35 + 0.5 * 0.45)


def test_class_missing_from_valid_gets_placeholder_curve_and_is_left_out_of_auc():
    names = ["a", "b", "c"]
    gold = np.array([0, 1, 0, 1])
    probabilities = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.3, 0.6, 0.1]])
    scores = ranking_scores(gold, probabilities, names, positive=1)
    assert scores == {"roc_auc": 1.0, "average_precision": 1.0}
    curves = curve_frames(gold, probabilities, names, positive=1)
    assert set(curves["roc"]) == {0, 1, 2} and len(curves["roc"][2]) == 2


def test_class_file_stems_are_unique_short_and_path_free():
    names = ["a/b", "a b", "肯定", "..", "a_b", "x", "x_2", "x~", "X", "長" * 90, "長" * 90 + "x"]
    stems = class_file_stems(names)
    assert stems[:5] == ["0-a_b", "1-a_b", "2-肯定", "3", "4-a_b"]
    assert len({s.lower() for s in stems}) == len(names)  # unique even on case-insensitive file systems
    assert all(len(s.encode()) < 200 and "/" not in s and not s.startswith(".") for s in stems)


def test_mteb_undersampling_takes_samples_per_label_of_each_class():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 5)
    rows = undersample(labels, 8, np.random.RandomState(42))
    assert np.bincount(labels[rows]).tolist() == [8, 8, 5]
    again = undersample(labels, 8, np.random.RandomState(42))
    assert rows.tolist() == again.tolist()


def test_mteb_protocol_reports_mean_and_spread():
    rng = np.random.default_rng(0)
    labels = np.arange(200) % 2
    vectors = rng.normal(size=(200, 8)) + labels[:, None] * 0.8
    scores = mteb_protocol(vectors[:150], labels[:150], {"valid": (vectors[150:], labels[150:])}, 2,
                           n_experiments=5, samples_per_label=4, max_iter=100, seed=42)["valid"]
    assert set(scores) == {"accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std"}
    assert scores["accuracy_mean"] > 0.6 and scores["accuracy_std"] > 0  # 4-shot draws differ


def test_baselines_on_separable_data(tmp_path, capsys):
    words = {0: ["最高", "満足", "素晴らしい"], 1: ["最悪", "不満", "残念"]}
    rows = [(f"この商品は{words[i % 2][i % 3]}でした。{i}番目", i % 2) for i in range(80)]
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["positive", "negative"])})
    split = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": [t for t, _ in rows[:50]], "label": [l for _, l in rows[:50]]}, features=features),
        "dev": datasets.Dataset.from_dict({"text": [t for t, _ in rows[50:60]], "label": [l for _, l in rows[50:60]]}, features=features),
        "valid": datasets.Dataset.from_dict({"text": [t for t, _ in rows[60:]], "label": [l for _, l in rows[60:]]}, features=features),
    })
    rng = np.random.default_rng(0)
    for name, part in split.items():
        labels = np.asarray(part["label"])
        np.save(tmp_path / f"{name}.npy", (rng.normal(size=(len(labels), 8)) + 3 * labels[:, None]).astype(np.float32))
    scores, tfidf_predicted, tfidf_probabilities = run_baselines(split, tmp_path, BaselinesParams.from_project())
    assert set(scores) == {"probe", "mteb", "knn", "tfidf"}
    for name in ("probe", "knn", "tfidf"):
        assert scores[name]["valid"]["macro_f1"] > 0.9, name
    assert scores["tfidf"]["valid"]["macro_f1"] == 1.0  # the class words never overlap
    assert tfidf_predicted["valid"].tolist() == split["valid"]["label"]
    # probabilities for the scored splits and for dev (the blend's selection split), rows summing to 1
    assert set(tfidf_probabilities) == {"valid", "dev"}
    for name, rows in tfidf_probabilities.items():
        assert rows.shape == (len(split[name]), 2) and np.allclose(rows.sum(axis=1), 1)
    assert tfidf_probabilities["valid"].argmax(axis=1).tolist() == split["valid"]["label"]
    assert scores["tfidf"]["valid"]["macro_f1_ci95_low"] == scores["tfidf"]["valid"]["macro_f1_ci95_high"] == 1.0
    assert scores["mteb"]["valid"]["macro_f1_mean"] > 0.8
    if not os.environ.get("TQDM_DISABLE"):  # progress: one bar over the four fits, run to its end
        progress = capsys.readouterr().err
        assert re.search(r"baselines: 100%.*4/4", progress), progress[-2000:]


def test_balanced_class_weight_makes_the_regressions_predict_the_rare_class_more_often():
    # 1 row in 10 is of class 1 and the classes overlap: unweighted, the regression leans to the majority.
    rng = np.random.default_rng(0)
    labels = (rng.random(1000) < 0.1).astype(int)
    vectors = rng.normal(size=(1000, 4)) + labels[:, None] * 0.7
    plain = logistic_regression(1000, 42).fit(vectors, labels).predict(vectors)
    balanced = logistic_regression(1000, 42, class_weight="balanced").fit(vectors, labels).predict(vectors)
    assert balanced.sum() > 3 * max(plain.sum(), 1)
    eval_sets = {"valid": (vectors[800:], labels[800:])}
    # The probe passes the choice through: its scores change with it.
    assert (linear_probe(vectors[:800], labels[:800], eval_sets, 2, 1000, 42)
            != linear_probe(vectors[:800], labels[:800], eval_sets, 2, 1000, 42, class_weight="balanced"))


def test_baselines_need_the_embeddings(tmp_path):
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["a", "b"])})
    part = datasets.Dataset.from_dict({"text": ["x", "y"], "label": [0, 1]}, features=features)
    with pytest.raises(UserError, match="embeddings missing"):
        run_baselines(datasets.DatasetDict({"train": part, "valid": part}), tmp_path, BaselinesParams.from_project())


def test_training_selects_on_the_same_positive_class_the_evaluate_stage_reports():
    """metric_for_best_model: f1 must mean the F1 of evaluate.positive_label, not always of class 1."""
    from transformers import EvalPrediction

    from stages.evaluation.metrics import make_compute_metrics

    gold = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    logits = np.eye(2)[[0, 1, 1, 1, 1, 1, 0, 0]]
    names = ["negative", "positive"]
    for label in ("negative", "positive"):
        positive = positive_index(names, label)
        scores = make_compute_metrics(2, positive)(EvalPrediction(predictions=logits, label_ids=gold))
        assert scores["f1"] == pytest.approx(f1_score(gold, logits.argmax(1), pos_label=positive)), label
    assert make_compute_metrics(2, 0)(EvalPrediction(logits, gold))["f1"] != \
        make_compute_metrics(2, 1)(EvalPrediction(logits, gold))["f1"]


def test_curve_tables_keep_every_class_and_are_spreadsheet_safe(tmp_path):
    names = ["=SUM(A1)", "+cmd", "通常"]
    out, _ = run_write_outputs(tmp_path, names, synthetic_sets(3))
    for kind in ("roc", "pr"):
        table = pd.read_csv(out / f"{kind}.csv", keep_default_na=False)
        assert table["class"].unique().tolist() == ["'=SUM(A1)", "'+cmd", "通常"], kind


def plot_definitions() -> list[dict]:
    """Every plot of dvc.yaml: each stage's `plots:` entries and the top-level `plots:` list."""
    import yaml

    from tests.conftest import REPO

    dvc_yaml = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))
    entries = [entry for stage in dvc_yaml["stages"].values() for entry in stage.get("plots", [])]
    entries += dvc_yaml.get("plots", [])
    return [next(iter(entry.values())) or {} for entry in entries if isinstance(entry, dict)]


def test_plot_templates_named_in_dvc_yaml_exist_and_fit_their_charts():
    from dvc_render.vega_templates import TEMPLATES

    from tests.conftest import REPO

    builtin = {template.DEFAULT_NAME for template in TEMPLATES}
    custom_dir = REPO / ".dvc/plots"
    used = set()
    for plot in plot_definitions():
        name = plot.get("template")
        if name is None or name in builtin:
            continue
        used.add(name)
        template = (custom_dir / f"{name}.json").read_text(encoding="utf-8")
        assert "<DVC_METRIC_DATA>" in template and "<DVC_METRIC_TITLE>" in template, name
        json.loads(template)
    assert used == {path.stem for path in custom_dir.glob("*.json")}  # no unused template left behind
    # Curves are not smoothed: the linear/smooth templates' slider would redraw ROC and PR as loess fits.
    assert all(plot.get("template") not in ("linear", "smooth", None) for plot in plot_definitions()
               if plot.get("x") is not None)


def test_tfidf_probabilities_file_is_byte_identical_for_identical_probabilities(tmp_path):
    import time

    from stages.evaluation.baselines import load_tfidf_probabilities, save_tfidf_probabilities

    rows = {"dev": np.array([[0.25, 0.75]]), "valid": np.array([[0.5, 0.5], [0.9, 0.1]])}
    save_tfidf_probabilities(rows, tmp_path / "a.npz")
    time.sleep(2.1)  # zip timestamps have a 2-second resolution
    save_tfidf_probabilities(rows, tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    (tmp_path / "tfidf_probabilities.npz").write_bytes((tmp_path / "a.npz").read_bytes())
    assert np.array_equal(load_tfidf_probabilities(tmp_path, "valid", 2), rows["valid"])
    assert np.array_equal(load_tfidf_probabilities(tmp_path, "dev", 1), rows["dev"])
    assert load_tfidf_probabilities(tmp_path, "valid", 3) is None and load_tfidf_probabilities(tmp_path, "test", 1) is None
