"""The evaluate stage for data.task multi_label: the same files as for single-label classification.

  metrics.json      valid.micro_f1, valid.macro_f1, valid.samples_f1, each with its 95% interval, subset_accuracy,
                    the threshold used and threshold_source: dev (and test.*)
  per_class.json    precision, recall, F1 and support per label and split
  predictions.csv   split, text, [text_pair], gold, predicted (labels joined by data.label_separator), p_<label>
                    (sigmoid probabilities), tfidf_predicted (spreadsheet-safe)
  confusion.csv, roc.csv, pr.csv, reliability.csv
                    header only: single-label plots that DVC declares for every run, so `dvc plots show` still
                    finds each file and draws it empty
  embedding_map.png the embed stage's vectors coloured by each text's rarest gold label
  report.md + figures/lengths.png
Calibration (ECE), ROC/PR curves and the TF-IDF blend are single-label tools and are not run; the report says so.
"""
from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pandas as pd

from stages.common.outputs import atomic_dir, write_csv, write_json, write_text
from stages.common.params import Params
from stages.common.spreadsheet import spreadsheet_safe
from stages.dataset.multi_label import multi_hot, names_of
from stages.dataset.pairs import PAIR, has_pairs
from stages.evaluation import plots
from stages.evaluation.baselines import load_tfidf_predictions
from stages.evaluation.markdown import Markdown, escape, table
from stages.evaluation.metrics import rounded
from stages.evaluation.multi_label import (
    METRICS,
    NOT_APPLICABLE,
    label_strings,
    multi_label_headline,
    per_label,
    predicted_labels,
    rarest_label_strata,
    stored_threshold,
)
from stages.evaluation.regression_report import EMPTY_PLOTS
from stages.evaluation.report import interval, length_rows, shorten
from stages.modeling.inference import probability_columns
from stages.modeling.window_pooling import document_probabilities

METRIC_NAMES = {"micro_f1": "micro-F1", "macro_f1": "macro-F1", "samples_f1": "samples-F1"}


def predictions_frame(name: str, split: datasets.Dataset, probabilities: np.ndarray, names: list[str],
                      threshold: float, separator: str, tfidf: list[str] | None) -> pd.DataFrame:
    columns: dict = {"split": name, "text": split["text"]}
    if has_pairs(split):
        columns[PAIR] = split[PAIR]
    labelled = "label" in split.column_names
    columns["gold"] = (label_strings(multi_hot(split["label"][:], len(names)), names, separator) if labelled
                       else [""] * len(split))
    columns["predicted"] = label_strings(predicted_labels(probabilities, threshold), names, separator)
    frame = pd.DataFrame(columns).assign(**probability_columns(probabilities, names))
    if tfidf is not None:
        frame["tfidf_predicted"] = tfidf
    return frame


def build_report(metrics: dict, baselines: dict, labels: dict[str, str], per_class: dict, counts: dict,
                 lengths: dict, token_report: dict | None, predictions: pd.DataFrame, n_errors: int,
                 map_description: str, title: str, threshold: float) -> str:
    scored = {**metrics, **{k: v for k, v in baselines.items() if k not in metrics}}
    n_valid = int((predictions["split"] == "valid").sum())
    out = [f"# {escape(title)}", "",
           f"Multi-label classification (data.task: multi_label): each text gets every label whose sigmoid "
           f"probability reaches the threshold {threshold:.2f}, chosen on the dev split (never valid or test). "
           f"Scores are on the valid split ({n_valid} rows) unless stated.", "", "## Model vs baselines", ""]
    header = ["system", *[f"{METRIC_NAMES[m]} (95% CI)" for m in METRICS]]
    for split in [s for s in ("valid", "test") if s in metrics]:
        rows = [[Markdown("**fine-tuned model**"), *[interval(metrics[split], m) for m in METRICS]]]
        for key, label in labels.items():
            scores = scored.get(key, {}).get(split) if isinstance(scored.get(key), dict) else None
            if scores and "skipped" not in scored[key]:
                rows.append([label, *[interval(scores, m) if m in scores else "" for m in METRICS]])
        out += [f"**{split}**", "", table(header, rows), ""]
    skipped = [f"{labels.get(k, k)}: {v['skipped']}" for k, v in baselines.items()
               if isinstance(v, dict) and "skipped" in v]
    out += ["Intervals: 95% bootstrap over the scored rows (1,000 resamples, drawn within strata of each row's rarest "
            "gold label). micro-F1 pools every (text, label) decision; macro-F1 averages the labels; samples-F1 "
            "averages the texts. Not run: " + "; ".join(
                [*skipped, f"calibration (ECE), ROC / precision-recall curves and the TF-IDF blend ({NOT_APPLICABLE})"])
            + ".", ""]
    out += ["## Per label (valid)", "",
            table(["label", "precision", "recall", "F1", "support"],
                  [[name, s["precision"], s["recall"], s["f1"], s["support"]]
                   for name, s in per_class.get("valid", {}).items()]), ""]
    out += ["## Data", "", "Rows carrying each label, per split:", ""]
    names = sorted({label for c in counts.values() for label in c}, key=lambda n: (n == "unlabelled", n))
    out += [table(["split", *names], [[split, *[c.get(n, "") for n in names]] for split, c in counts.items()]), "",
            "Text length (characters of the first text; tokens after the tokenize stage):", "",
            table(["split", "texts", "mean", "median", "p95", "max", "mean tokens", "truncated"],
                  length_rows(lengths, token_report)), "", "![Text lengths](figures/lengths.png)", ""]
    out += ["## Embedding map", "", "![Embedding map](embedding_map.png)", "",
            f"The embed stage's sentence vectors, {map_description}, coloured by each text's rarest gold label.", ""]
    labelled = predictions[(predictions["split"] == "valid") & (predictions["gold"] != predictions["predicted"])]
    wrong = labelled.head(n_errors)
    out += [f"## Wrong label sets ({len(labelled)} valid texts; the first {len(wrong)})", ""]
    if not wrong.empty:
        out += [table(["gold", "predicted", "text"],
                      [[r["gold"] or "(none)", r["predicted"] or "(none)", shorten(r["text"])]
                       for _, r in wrong.iterrows()]), ""]
    return "\n".join(out).rstrip() + "\n"


def evaluate_multi_label(params: Params, split: datasets.DatasetDict, tokenized: datasets.DatasetDict, model,
                         device, baselines: dict, context: dict) -> dict:
    """Every evaluate-stage file for a multi-label model; returns what the summary reads."""
    from stages.evaluation.evaluator import embedding_map  # the classification module's map, shared

    out = Path(params.paths.eval)
    names = names_of(split["train"])
    separator = getattr(model.config, "label_separator", None) or params.data.label_separator
    threshold = stored_threshold(model.config)
    metrics, per_class, frames = {}, {}, []
    for name in ("valid", "test"):
        if name not in split:
            continue
        probabilities = document_probabilities(model, tokenized[name], params.train.eval_batch_size, device,
                                               desc=f"predict {name}", pairs=has_pairs(split[name]))
        labelled = "label" in split[name].column_names
        if labelled:
            gold = multi_hot(split[name]["label"][:], len(names))
            predicted = predicted_labels(probabilities, threshold)
            metrics[name] = multi_label_headline(gold, predicted, threshold)
            per_class[name] = per_label(gold, predicted, names)
        tfidf = load_tfidf_predictions(params.paths.baselines, name, len(split[name])) if labelled else None
        frames.append(predictions_frame(name, split[name], probabilities, names, threshold, separator, tfidf))
    metrics = rounded(metrics)
    predictions = pd.concat(frames, ignore_index=True)
    write_csv(spreadsheet_safe(predictions), out / "predictions.csv")
    for file, columns in EMPTY_PLOTS.items():
        write_csv(pd.DataFrame(columns=columns), out / file)
    vectors = np.concatenate([np.load(Path(params.paths.embeddings) / f"{n}.npy") for n in ("train", "valid")])
    gold = np.concatenate([multi_hot(split[n]["label"][:], len(names)) for n in ("train", "valid")])
    strata = rarest_label_strata(gold)
    map_description = embedding_map(vectors, np.where(strata < 0, len(names), strata), [*names, "(no label)"],
                                    params.evaluate, out / "embedding_map.png")
    lengths = {name: np.array([len(t) for t in split[name]["text"]]) for name in split}
    with atomic_dir(out / "figures") as figures:
        plots.save_png(plots.lengths_figure(lengths), figures / "lengths.png")
    markdown = build_report(metrics, baselines, context["baseline_labels"], per_class, context["class_counts"],
                            lengths, context.get("token_report"), predictions, params.evaluate.report_errors,
                            map_description, context["title"], threshold)
    write_text(out / "report.md", markdown)
    write_json(out / "per_class.json", per_class)
    write_json(out / "metrics.json", metrics, sort_keys=False)
    return {**metrics, **{k: v for k, v in baselines.items() if k not in metrics}}
