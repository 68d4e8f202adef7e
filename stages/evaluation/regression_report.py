"""The evaluate stage for data.task regression: the same files as for classification, with regression content.

  metrics.json      valid.pearson, valid.spearman, valid.mse, valid.mae, each with its 95% interval (and test.*)
  predictions.csv   split, text, [text_pair], gold, predicted (the model's value, 6 decimals), tfidf_predicted:
                    also the predicted-vs-gold scatter data (`dvc plots show <eval>/predictions.csv -x gold -y predicted`)
  per_class.json    {} (no classes)
  confusion.csv, roc.csv, pr.csv, reliability.csv
                    header only: classification plots that DVC declares for every run (dvc.yaml cannot make a
                    plot conditional), so `dvc plots show` still finds each file and draws it empty
  embedding_map.png the embed stage's vectors coloured by quantile bin of the gold score
  report.md + figures/  scatter.png (predicted vs gold), lengths.png
Class weights, calibration, ROC/PR and the TF-IDF blend do not apply to regression; the report says so.
"""
from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pandas as pd

from stages.common.outputs import atomic_dir, write_csv, write_json, write_text
from stages.common.params import Params
from stages.common.spreadsheet import spreadsheet_safe
from stages.dataset.pairs import PAIR, has_pairs
from stages.dataset.regression import QUANTILE_BINS, quantile_bins
from stages.evaluation import plots
from stages.evaluation.markdown import Markdown, escape, table
from stages.evaluation.metrics import rounded
from stages.evaluation.regression import METRICS, NOT_APPLICABLE, regression_headline
from stages.evaluation.report import interval, length_rows, shorten
from stages.modeling.inference import PROBABILITY_DIGITS, predict_proba

METRIC_NAMES = {"pearson": "Pearson r", "spearman": "Spearman ρ", "mse": "MSE", "mae": "MAE"}
# Classification plot files declared in dvc.yaml, written with their header only.
EMPTY_PLOTS = {"confusion.csv": ["actual", "predicted"], "roc.csv": ["class", "fpr", "tpr"],
               "pr.csv": ["class", "recall", "precision"],
               "reliability.csv": ["bin", "lower", "upper", "confidence", "accuracy", "count"]}


def predicted_values(model, tokenized: datasets.Dataset, split: datasets.Dataset, batch_size: int, device,
                     desc: str) -> np.ndarray:
    segments = tokenized["token_type_ids"] if has_pairs(split) else None
    return predict_proba(model, tokenized["input_ids"], batch_size, device, desc=desc, token_type_ids=segments)[:, 0]


def rounded_values(values: np.ndarray) -> np.ndarray:
    """Predicted values as every file writes them (evaluate, predict, submit): float64, PROBABILITY_DIGITS decimals."""
    return np.asarray(values, dtype=np.float64).round(PROBABILITY_DIGITS)


def predictions_frame(name: str, split: datasets.Dataset, values: np.ndarray, tfidf: np.ndarray | None) -> pd.DataFrame:
    columns = {"split": name, "text": split["text"]}
    if has_pairs(split):
        columns[PAIR] = split[PAIR]
    labelled = "label" in split.column_names
    columns["gold"] = rounded_values(np.asarray(split["label"])) if labelled else [""] * len(split)
    columns["predicted"] = rounded_values(values)
    if tfidf is not None:
        columns["tfidf_predicted"] = rounded_values(tfidf)
    return pd.DataFrame(columns)


def scatter_figure(gold: np.ndarray, predicted: np.ndarray, title: str):
    figure, axes = plots.plt.subplots(figsize=(5.5, 5))
    axes.scatter(gold, predicted, s=10, alpha=0.7, linewidths=0)
    low, high = float(min(gold.min(), predicted.min())), float(max(gold.max(), predicted.max()))
    axes.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=1)
    axes.set(xlabel="gold score", ylabel="predicted score", title=title)
    return figure


def comparison_rows(metrics: dict, split: str, labels: dict[str, str]) -> list[list]:
    rows = [[Markdown("**fine-tuned model**"), *[interval(metrics[split], key) for key in METRICS]]]
    for key, label in labels.items():
        scores = metrics.get(key, {}).get(split) if isinstance(metrics.get(key), dict) else None
        if scores and "skipped" not in metrics[key]:
            rows.append([label, *[interval(scores, m) if m in scores else "" for m in METRICS]])
    return rows


def build_report(metrics: dict, baselines: dict, labels: dict[str, str], statistics: dict, lengths: dict,
                 token_report: dict | None, predictions: pd.DataFrame, n_errors: int, map_description: str,
                 title: str, pairs: bool) -> str:
    scored = {**metrics, **{k: v for k, v in baselines.items() if k not in metrics}}
    what = "sentence pairs" if pairs else "texts"
    n_valid = int((predictions["split"] == "valid").sum())
    out = [f"# {escape(title)}", "",
           f"Regression (data.task: regression) on {what}: the model predicts a number per row. Scores are on the "
           f"valid split ({n_valid} rows) unless stated.", "", "## Model vs baselines", ""]
    header = ["system", *[f"{METRIC_NAMES[m]} (95% CI)" for m in METRICS]]
    for split in [s for s in ("valid", "test") if s in metrics]:
        out += [f"**{split}**", "", table(header, comparison_rows(scored, split, labels)), ""]
    skipped = [f"{labels.get(k, k)}: {v['skipped']}" for k, v in baselines.items()
               if isinstance(v, dict) and "skipped" in v]
    out += ["Intervals: 95% bootstrap over the scored rows (1,000 resamples, drawn within quantile bins of the gold "
            "score). Pearson and Spearman: higher is better; MSE and MAE: lower is better. "
            "Not applicable to regression, so not run: " + "; ".join(
                [*skipped, f"class weights, calibration (ECE), ROC / precision-recall and the TF-IDF blend "
                 f"({NOT_APPLICABLE})"]) + ".", ""]
    out += ["## Fine-tuned model (valid)", "", "![Predicted vs gold](figures/scatter.png)", "",
            "Each dot is a valid row; on the dashed diagonal the prediction equals the gold score. The same data is in "
            "`predictions.csv` (columns gold, predicted).", ""]
    out += ["## Data", "", "Gold score per split:", ""]
    rows = [[split, s.get("rows", s.get("unlabelled", "")), s.get("mean", ""), s.get("std", ""), s.get("min", ""),
             s.get("max", "")] for split, s in statistics.items()]
    out += [table(["split", "rows", "mean", "std", "min", "max"], rows), "",
            "Text length (characters of the first text; tokens after the tokenize stage):", "",
            table(["split", "texts", "mean", "median", "p95", "max", "mean tokens", "truncated"],
                  length_rows(lengths, token_report)), "", "![Text lengths](figures/lengths.png)", ""]
    out += ["## Embedding map", "", "![Embedding map](embedding_map.png)", "",
            f"The embed stage's sentence vectors, {map_description}, coloured by quantile bin of the gold score.", ""]
    labelled = predictions[predictions["gold"].astype(str) != ""].copy()
    labelled["error"] = (labelled["predicted"].astype(float) - labelled["gold"].astype(float)).abs()
    worst = labelled.sort_values("error", ascending=False, kind="stable").head(n_errors)
    out += [f"## Largest errors ({len(worst)})", ""]
    if not worst.empty:
        rows = [[r["split"], float(r["gold"]), float(r["predicted"]), shorten(r["text"])]
                + ([shorten(r[PAIR])] if pairs else []) for _, r in worst.iterrows()]
        out += [table(["split", "gold", "predicted", "text"] + (["text_pair"] if pairs else []), rows), ""]
    return "\n".join(out).rstrip() + "\n"


def evaluate_regression(params: Params, split: datasets.DatasetDict, tokenized: datasets.DatasetDict, model,
                        device, baselines: dict, context: dict) -> dict:
    """Every evaluate-stage file for a regression model; returns what the summary reads."""
    from stages.evaluation.evaluator import embedding_map  # the classification module's map, shared
    from stages.evaluation.regression_baselines import load_tfidf_values

    out = Path(params.paths.eval)
    metrics, frames, valid_values = {}, [], None
    for name in ("valid", "test"):
        if name not in split:
            continue
        values = predicted_values(model, tokenized[name], split[name], params.train.eval_batch_size, device,
                                  f"predict {name}")
        labelled = "label" in split[name].column_names
        if labelled:
            metrics[name] = regression_headline(np.asarray(split[name]["label"]), values)
        if name == "valid":
            valid_values = values
        tfidf = load_tfidf_values(params.paths.baselines, name, len(split[name])) if labelled else None
        frames.append(predictions_frame(name, split[name], values, tfidf))
    metrics = rounded(metrics)
    predictions = pd.concat(frames, ignore_index=True)
    write_csv(spreadsheet_safe(predictions), out / "predictions.csv")
    for file, columns in EMPTY_PLOTS.items():
        write_csv(pd.DataFrame(columns=columns), out / file)
    gold_valid = np.asarray(split["valid"]["label"], dtype=np.float64)
    vectors = np.concatenate([np.load(Path(params.paths.embeddings) / f"{n}.npy") for n in ("train", "valid")])
    gold = pd.Series(np.concatenate([np.asarray(split[n]["label"], dtype=np.float64) for n in ("train", "valid")]))
    bins = min(QUANTILE_BINS, len(gold))
    names = [f"score bin {i + 1} of {bins}" for i in range(bins)]
    map_description = embedding_map(vectors, quantile_bins(gold, bins).to_numpy(), names, params.evaluate,
                                    out / "embedding_map.png")
    lengths = {name: np.array([len(t) for t in split[name]["text"]]) for name in split}
    with atomic_dir(out / "figures") as figures:
        plots.save_png(scatter_figure(gold_valid, valid_values, "Predicted vs gold (valid)"), figures / "scatter.png")
        plots.save_png(plots.lengths_figure(lengths), figures / "lengths.png")
    statistics = context["label_statistics"]
    labels = {**context["baseline_labels"],  # the regression baselines fit ridge regressions
              "tfidf": context["baseline_labels"]["tfidf"].replace("logistic regression", "ridge regression"),
              "probe": "linear probe: ridge regression on frozen embed-stage vectors"}
    markdown = build_report(metrics, baselines, labels, statistics, lengths,
                            context.get("token_report"), predictions, params.evaluate.report_errors, map_description,
                            context["title"], has_pairs(split["train"]))
    write_text(out / "report.md", markdown)
    write_json(out / "per_class.json", {})
    write_json(out / "metrics.json", metrics, sort_keys=False)
    return {**metrics, **{k: v for k, v in baselines.items() if k not in metrics}}
