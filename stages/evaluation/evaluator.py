"""Metrics, plots, predictions and a readable report for the fine-tuned model, with the baselines.

Every file declared in dvc.yaml is written on every run, for binary and multi-class tasks alike:
  metrics.json      headline keys per scored split, each with its 95% interval: valid.macro_f1,
                    valid.macro_f1_ci95_low/_high, valid.accuracy, ..., valid.ece (declared as DVC metrics)
  per_class.json    precision, recall, F1 and support per class and split
  predictions.csv   split, text, gold, predicted, one probability column per class, and TF-IDF's label
                    (tfidf_predicted) for paired comparisons (spreadsheet-safe)
  confusion.csv     (actual, predicted) per valid text, for DVC's confusion template (spreadsheet-safe)
  roc.csv, pr.csv   every curve in one long table (class, x, y): the positive class (2 classes) or every
                    class one-vs-rest, so one chart draws a line per class (spreadsheet-safe)
  reliability.csv   per confidence bin: mean confidence, accuracy, count
  embedding_map.png 2-D map of the embed stage's vectors coloured by label
  report.md + figures/  the human-readable report
"""
from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix
from transformers import AutoModelForSequenceClassification

from stages.common.errors import UserError
from stages.common.hardware import resolve_device
from stages.common.outputs import (
    atomic_dir,
    write_csv,
    write_json,
    write_text,
)
from stages.common.params import EvaluateParams, Params
from stages.common.spreadsheet import spreadsheet_safe
from stages.evaluation import plots, report
from stages.evaluation.baselines import METRICS_FILE as BASELINE_METRICS
from stages.evaluation.baselines import load_tfidf_predictions, load_tfidf_probabilities
from stages.evaluation.blend import blend_metrics, choose_model_weight
from stages.evaluation.metrics import (
    class_ranking,
    classification_scores,
    curve_classes,
    curve_frames,
    expected_calibration_error,
    per_class_scores,
    positive_index,
    ranking_scores,
    reliability_table,
    rounded,
)
from stages.evaluation.significance import (
    PairedDifference,
    metric_intervals,
    paired_difference,
)
from stages.dataset.pairs import PAIR, pair_texts
from stages.modeling.inference import probability_columns
from stages.modeling.window_pooling import document_probabilities

METRICS_FILE = "metrics.json"      # headline keys per split (declared as DVC metrics)
PREDICTIONS_FILE = "predictions.csv"
PER_CLASS_FILE = "per_class.json"  # precision / recall / F1 / support per class and split


def split_metrics(gold: np.ndarray, probabilities: np.ndarray, names: list[str], positive: int = 1,
                  calibration_bins: int = 10) -> tuple[dict, dict]:
    """(headline metrics of one labelled split, per-class scores).

    Headline keys come in reading order, each estimate followed by its 95% interval: macro-F1 and accuracy;
    for two classes the positive class's F1, precision, recall, ROC-AUC and AP; for more, the one-vs-rest
    macro ROC-AUC; then ECE. Multi-class precision/recall/F1 would repeat the macro keys and are left out.
    """
    predicted = probabilities.argmax(axis=1)
    scores = classification_scores(gold, predicted, len(names), positive)
    intervals = metric_intervals(gold, predicted, len(names), positive)
    ranking = ranking_scores(gold, probabilities, names, positive)
    headline: dict = {}
    for key in ("macro_f1", "accuracy") + (("f1",) if len(names) == 2 else ()):
        headline[key] = scores[key]
        headline[f"{key}_ci95_low"], headline[f"{key}_ci95_high"] = intervals[key]
    if len(names) == 2:
        headline.update(precision=scores["precision"], recall=scores["recall"], roc_auc=ranking["roc_auc"],
                        average_precision=ranking["average_precision"])
    else:
        headline["roc_auc"] = ranking["roc_auc"]
    headline["ece"] = expected_calibration_error(reliability_table(gold, probabilities, calibration_bins))
    return headline, per_class_scores(gold, predicted, names)


def tfidf_comparison(gold: np.ndarray, model_predicted: np.ndarray, tfidf_labels: list[str] | None,
                     names: list[str]) -> PairedDifference | None:
    """Fine-tuned model (B) against TF-IDF (A) on the same texts: paired bootstrap of the macro-F1 difference."""
    if tfidf_labels is None:
        return None
    index = {name: i for i, name in enumerate(names)}
    if any(label not in index for label in tfidf_labels):
        return None
    tfidf = np.array([index[label] for label in tfidf_labels])
    return paired_difference(gold, tfidf, model_predicted, len(names))


def confusion_records(gold: np.ndarray, predicted: np.ndarray, names: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"actual": [names[i] for i in gold], "predicted": [names[i] for i in predicted]})


def predictions_frame(texts: list[str], gold: np.ndarray | None, probabilities: np.ndarray, names: list[str]) -> pd.DataFrame:
    """One row per text; `gold` is empty for an unlabelled test set."""
    frame = pd.DataFrame({"text": texts,
                          "gold": [names[i] for i in gold] if gold is not None else [""] * len(texts),
                          "predicted": [names[i] for i in probabilities.argmax(axis=1)]})
    return frame.assign(**probability_columns(probabilities, names))


def map_subset(n_rows: int, max_points: int, seed: int) -> np.ndarray:
    """Row indices drawn on the embedding map: all of them, or a fixed random subset in row order."""
    if n_rows <= max_points:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=max_points, replace=False))


def project_2d(vectors: np.ndarray, method: str, seed: int) -> tuple[np.ndarray, str]:
    """(points, description) of a 2-D PCA or t-SNE projection."""
    from sklearn.decomposition import PCA

    vectors = vectors.astype(np.float64)
    if len(vectors) < 3:
        return np.zeros((len(vectors), 2)), "too few texts to project"
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (len(vectors) - 1) / 3)))
        points = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(vectors)
        return points, f"t-SNE (perplexity {perplexity:g})"
    pca = PCA(n_components=2, random_state=seed).fit(vectors)
    share = pca.explained_variance_ratio_.sum()
    return pca.transform(vectors), f"PCA ({share:.0%} of the variance)"


def embedding_map(vectors: np.ndarray, labels: np.ndarray, names: list[str], params: EvaluateParams, out: Path) -> str:
    rows = map_subset(len(vectors), params.map_max_points, params.seed)
    points, description = project_2d(vectors[rows], params.embedding_map, params.seed)
    shown = f"{len(rows)} of {len(vectors)}" if len(rows) < len(vectors) else f"{len(rows)}"
    title = f"Embed-stage vectors, {description}\n{shown} train+valid texts"
    plots.save_png(plots.embedding_map_figure(points, labels[rows], names, title), out)
    return description


def curve_table(frames: dict[int, pd.DataFrame], names: list[str]) -> pd.DataFrame:
    """Per-class curves as one long table: `class`, then the curve's columns; classes in index order, each
    curve's points in drawing order (DVC's chart colours the lines by `class`, see .dvc/plots/)."""
    return pd.concat([frame.assign(**{"class": names[index]})[["class", *frame.columns]]
                      for index, frame in frames.items()], ignore_index=True)


def write_curves(curves: dict[str, dict[int, pd.DataFrame]], names: list[str], out: Path) -> None:
    """out/roc.csv and out/pr.csv."""
    for kind, frames in curves.items():
        write_csv(spreadsheet_safe(curve_table(frames, names)), out / f"{kind}.csv")


def write_outputs(out: Path, names: list[str], positive: int, sets: dict[str, dict], vectors: np.ndarray,
                  vector_labels: np.ndarray, baselines: dict, params: EvaluateParams, context: dict,
                  blend: dict | None = None) -> dict:
    """Every evaluate-stage file from predictions already made; returns metrics.json's content.

    `sets` maps a split name to {"texts", "gold" (None if unlabelled), "probabilities"}; "valid" is required.
    `blend`: the blend's metrics (stages/evaluation/blend.py), stored as metrics.json's `blend`.
    """
    metrics: dict = {}   # headline keys per split: metrics.json
    per_class: dict = {}  # per_class.json
    for name, data in sets.items():
        if data["gold"] is not None:
            metrics[name], per_class[name] = split_metrics(data["gold"], data["probabilities"], names, positive,
                                                           params.calibration_bins)
    if blend is not None:
        metrics["blend"] = blend
    metrics, per_class = rounded(metrics), rounded(per_class)
    # What the report and card read: the headline and per-class scores of each split, beside the baselines.
    full = {name: {**scores, "per_class": per_class[name]} for name, scores in metrics.items() if name in per_class}
    full.update(baselines)
    if blend is not None:
        full["blend"] = metrics["blend"]

    valid = sets["valid"]
    gold, probabilities = valid["gold"], valid["probabilities"]
    predicted = probabilities.argmax(axis=1)
    frames = []
    for name, data in sets.items():
        frame = predictions_frame(data["texts"], data["gold"], data["probabilities"], names).assign(split=name)
        if data.get("pairs") is not None:
            frame.insert(1, PAIR, data["pairs"])
        if data.get("tfidf") is not None:
            frame["tfidf_predicted"] = data["tfidf"]
        frames.append(frame)
    predictions = pd.concat(frames, ignore_index=True)
    predictions = predictions[["split", *[c for c in predictions.columns if c != "split"]]]
    # Files people open in a spreadsheet: a text or class name cannot run as a formula there. The report below
    # gets the unchanged predictions and escapes them for Markdown itself.
    write_csv(spreadsheet_safe(predictions), out / PREDICTIONS_FILE)
    write_csv(spreadsheet_safe(confusion_records(gold, predicted, names)), out / "confusion.csv")
    curves = curve_frames(gold, probabilities, names, positive)
    write_curves(curves, names, out)
    reliability = reliability_table(gold, probabilities, params.calibration_bins)
    write_csv(reliability, out / "reliability.csv")
    map_description = embedding_map(vectors, vector_labels, names, params, out / "embedding_map.png")

    per_class_rank = class_ranking(gold, probabilities, curve_classes(names, positive))
    lengths = {name: np.array([len(t) for t in texts]) for name, texts in context["all_texts"].items()}
    with atomic_dir(out / "figures") as figures:
        matrix = confusion_matrix(gold, predicted, labels=list(range(len(names))))
        plots.save_png(plots.confusion_figure(matrix, names, "Confusion matrix (valid, counts)"), figures / "confusion.png")
        auc = {i: s["roc_auc"] for i, s in per_class_rank.items()}
        ap = {i: s["average_precision"] for i, s in per_class_rank.items()}
        vs = "" if len(names) == 2 else " (one-vs-rest)"
        plots.save_png(plots.curves_figure(curves["roc"], names, "fpr", "tpr", f"ROC curve{vs}, valid", auc, "AUC", True),
                       figures / "roc.png")
        plots.save_png(plots.curves_figure(curves["pr"], names, "recall", "precision", f"Precision-recall{vs}, valid",
                                           ap, "AP", False, drawstyle="steps-pre"), figures / "pr.png")
        plots.save_png(plots.reliability_figure(reliability, params.calibration_bins, metrics["valid"]["ece"]),
                       figures / "reliability.png")
        plots.save_png(plots.lengths_figure(lengths), figures / "lengths.png")
    vs_tfidf = tfidf_comparison(gold, predicted, valid.get("tfidf"), names)
    markdown = report.build_report(
        names=names, positive=positive, metrics=full, vs_tfidf=vs_tfidf, class_counts=context["class_counts"], lengths=lengths,
        token_report=context.get("token_report"), predictions=predictions, n_errors=params.report_errors,
        map_description=map_description, title=context.get("title", "Evaluation report"),
        baseline_labels=context.get("baseline_labels"))
    write_text(out / "report.md", markdown)
    write_json(out / PER_CLASS_FILE, per_class)
    write_json(out / METRICS_FILE, metrics, sort_keys=False)
    return full


def class_counts(split: datasets.DatasetDict, names: list[str]) -> dict[str, dict[str, int]]:
    counts = {}
    for name, part in split.items():
        if "label" in part.column_names:
            labels = np.bincount(np.asarray(part["label"], dtype=int), minlength=len(names))
            counts[name] = {label: int(labels[i]) for i, label in enumerate(names)}
        else:
            counts[name] = {"(unlabelled)": len(part)}
    return counts


def load_baselines(directory: str) -> dict:
    path = Path(directory) / BASELINE_METRICS
    if not path.is_file():
        raise UserError(f"{path}: baseline scores missing; run `dvc repro baselines` first")
    return json.loads(path.read_text(encoding="utf-8"))


def baseline_labels(params: Params) -> dict[str, str]:
    """How the report names each baseline, with its settings."""
    b = params.baselines
    words = f"MeCab word 1-{b.tfidf.word_ngram_max}-grams" + (
        f" + character 1-{b.tfidf.char_ngram_max}-grams" if b.tfidf.char_ngram_max else "")
    return {
        "blend": "blend: fine-tuned model and TF-IDF probabilities, weight chosen on dev",
        "tfidf": f"TF-IDF ({words}) + logistic regression",
        "probe": "linear probe: logistic regression on frozen embed-stage vectors",
        "mteb": f"MTEB protocol: {b.mteb.samples_per_label} per class × {b.mteb.n_experiments} runs, mean ± std",
        "knn": f"kNN (cosine, k={b.knn.k}) on frozen embed-stage vectors",
    }


def evaluate(params: Params) -> dict:
    paths = params.paths
    split = datasets.load_from_disk(paths.split)
    tokenized = datasets.load_from_disk(paths.tokenized)
    model = AutoModelForSequenceClassification.from_pretrained(paths.model)
    device = resolve_device("auto")
    if params.data.task == "regression":  # stages/evaluation/regression_report.py
        from stages.evaluation.regression_report import evaluate_regression

        summary = json.loads((Path(paths.split) / "summary.json").read_text(encoding="utf-8"))
        return evaluate_regression(params, split, tokenized, model, device, load_baselines(paths.baselines), {
            "label_statistics": summary.get("label_statistics", {}), "baseline_labels": baseline_labels(params),
            "title": f"Evaluation report: {Path(params.data.train_csv).name}, model {params.model.name}",
            "token_report": json.loads(Path(paths.tokenize_report).read_text())
            if Path(paths.tokenize_report).is_file() else None})
    if params.data.task == "multi_label":  # stages/evaluation/multi_label_report.py
        from stages.evaluation.multi_label_report import evaluate_multi_label

        names = split["train"].features["label"].feature.names
        return evaluate_multi_label(params, split, tokenized, model, device, load_baselines(paths.baselines), {
            "class_counts": json.loads((Path(paths.split) / "summary.json").read_text(encoding="utf-8"))
            .get("class_counts", {}), "baseline_labels": baseline_labels(params),
            "title": f"Evaluation report: {Path(params.data.train_csv).name}, model {params.model.name}",
            "token_report": json.loads(Path(paths.tokenize_report).read_text())
            if Path(paths.tokenize_report).is_file() else None})
    names = split["train"].features["label"].names
    positive = positive_index(names, params.evaluate.positive_label)
    sets = {}
    for name in ("valid", "test"):
        if name not in split:
            continue
        labelled = "label" in split[name].column_names
        pairs = pair_texts(split[name])  # sentence pairs: the second texts (and token_type_ids for the model)
        probabilities = document_probabilities(model, tokenized[name], params.train.eval_batch_size, device,
                                               desc=f"predict {name}", pairs=pairs is not None)
        sets[name] = {"texts": split[name]["text"], "probabilities": probabilities, "pairs": pairs,
                      "gold": np.asarray(split[name]["label"]) if labelled else None,
                      "tfidf": load_tfidf_predictions(paths.baselines, name, len(split[name])) if labelled else None}
    blend = (blend_with_tfidf(model, split, tokenized, sets, paths.baselines, params.train.eval_batch_size, device,
                              len(names), positive) if params.evaluate.blend_tfidf else None)
    vectors = np.concatenate([np.load(Path(paths.embeddings) / f"{name}.npy") for name in ("train", "valid")])
    vector_labels = np.concatenate([np.asarray(split[name]["label"]) for name in ("train", "valid")])
    token_report_path = Path(paths.tokenize_report)
    context = {
        "class_counts": class_counts(split, names),
        "all_texts": {name: split[name]["text"] for name in split},
        "token_report": json.loads(token_report_path.read_text()) if token_report_path.is_file() else None,
        "title": f"Evaluation report: {Path(params.data.train_csv).name}, model {params.model.name}",
        "baseline_labels": baseline_labels(params),
    }
    return write_outputs(Path(paths.eval), names, positive, sets, vectors, vector_labels,
                         load_baselines(paths.baselines), params.evaluate, context, blend)


def blend_with_tfidf(model, split: datasets.DatasetDict, tokenized: datasets.DatasetDict, sets: dict[str, dict],
                     baselines_dir: str, batch_size: int, device, n_classes: int, positive: int) -> dict | None:
    """The blend's metrics (stages/evaluation/blend.py), its weight chosen on dev; None without a dev split or
    TF-IDF probabilities (a baselines output from before the blend existed)."""
    if "dev" not in split or len(split["dev"]) == 0:
        return None
    tfidf_dev = load_tfidf_probabilities(baselines_dir, "dev", len(split["dev"]))
    scored = {name: data for name, data in sets.items() if data["gold"] is not None}
    tfidf = {name: load_tfidf_probabilities(baselines_dir, name, len(data["gold"])) for name, data in scored.items()}
    if tfidf_dev is None or any(rows is None for rows in tfidf.values()):
        return None
    model_dev = document_probabilities(model, tokenized["dev"], batch_size, device, desc="predict dev (blend)",
                                       pairs=pair_texts(split["dev"]) is not None)
    weight = choose_model_weight(np.asarray(split["dev"]["label"]), model_dev, tfidf_dev, n_classes)
    return blend_metrics(weight, {name: (data["gold"], data["probabilities"], tfidf[name])
                                  for name, data in scored.items()}, n_classes, positive)
