"""The evaluate stage's Markdown report: what a reader needs to judge a run without opening Python."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from stages.evaluation.markdown import Markdown, cell, escape, table
from stages.evaluation.significance import PairedDifference

# Images the report embeds, relative to the report's directory.
FIGURES = {
    "confusion": "figures/confusion.png",
    "roc": "figures/roc.png",
    "pr": "figures/pr.png",
    "reliability": "figures/reliability.png",
    "lengths": "figures/lengths.png",
    "embedding_map": "embedding_map.png",
}


def shorten(text: str, limit: int = 120) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def interval(scores: dict, key: str) -> str:
    """`0.8123 (0.7650–0.8590)` when the metrics hold a 95% interval for `key`, else the value alone."""
    low, high = scores.get(f"{key}_ci95_low"), scores.get(f"{key}_ci95_high")
    return f"{scores[key]:.4f}" if low is None else f"{scores[key]:.4f} ({low:.4f}–{high:.4f})"


def comparison_rows(metrics: dict, split: str, baseline_labels: dict[str, str]) -> list[list]:
    model = metrics[split]
    rows = [[Markdown("**fine-tuned model**"), interval(model, "macro_f1"), interval(model, "accuracy")]]
    for key, label in baseline_labels.items():
        scores = metrics.get(key, {}).get(split)
        if not scores:
            continue
        if "accuracy_mean" in scores:
            rows.append([label, f"{scores['macro_f1_mean']:.4f} ± {scores['macro_f1_std']:.4f}",
                         f"{scores['accuracy_mean']:.4f} ± {scores['accuracy_std']:.4f}"])
        else:
            rows.append([label, interval(scores, "macro_f1"), f"{scores['accuracy']:.4f}"])
    return rows


def verdict(metrics: dict, split: str, vs_tfidf: PairedDifference | None = None) -> str:
    """One sentence on the model against TF-IDF: a paired judgement on the same texts where one was made."""
    if vs_tfidf is not None and split == "valid":
        gap, low, high = vs_tfidf.difference, vs_tfidf.low, vs_tfidf.high
        ci = f"paired 95% CI of the difference {low:+.4f} to {high:+.4f}"
        if not vs_tfidf.detectable:
            return (f"No detectable difference between the fine-tuned model and TF-IDF on {split}: macro-F1 "
                    f"{gap:+.4f} ({ci}).")
        if gap > 0:
            return f"The fine-tuned model is better than TF-IDF on {split} by **{gap:.4f}** macro-F1 ({ci})."
        return (f"TF-IDF is better than the fine-tuned model on {split} by **{-gap:.4f}** macro-F1 ({ci}): the model "
                f"does not yet beat a classical one.")
    if "tfidf" not in metrics or split not in metrics["tfidf"]:
        return ""
    gap = metrics[split]["macro_f1"] - metrics["tfidf"][split]["macro_f1"]
    if abs(gap) < 5e-5:
        return f"The fine-tuned model ties with TF-IDF on {split} (macro-F1 {metrics[split]['macro_f1']:.4f})."
    better = "The fine-tuned model" if gap > 0 else "TF-IDF"
    other = "TF-IDF" if gap > 0 else "the fine-tuned model"
    return f"{better} scores {abs(gap):.4f} macro-F1 higher than {other} on {split} (not a paired test)."


def length_rows(lengths: dict[str, np.ndarray], token_report: dict | None) -> list[list]:
    rows = []
    for name, values in lengths.items():
        tokens = (token_report or {}).get(name, {})
        rows.append([name, len(values), f"{values.mean():.1f}" if len(values) else "–",
                     int(np.median(values)) if len(values) else "–",
                     int(np.percentile(values, 95)) if len(values) else "–", int(values.max()) if len(values) else "–",
                     f"{tokens['mean_tokens']:.1f}" if "mean_tokens" in tokens else "–",
                     f"{tokens['truncated_rate']:.1%}" if "truncated_rate" in tokens else "–"])
    return rows


def confident_errors(predictions: pd.DataFrame, names: list[str], n: int) -> pd.DataFrame:
    """The n wrong predictions on labelled texts with the highest probability for the predicted class."""
    labelled = predictions[predictions["gold"] != ""]
    wrong = labelled[labelled["gold"] != labelled["predicted"]].copy()
    if wrong.empty or n == 0:
        return wrong.head(0)
    wrong["confidence"] = [row[f"p_{row['predicted']}"] for _, row in wrong.iterrows()]
    wrong["p_gold"] = [row[f"p_{row['gold']}"] for _, row in wrong.iterrows()]
    # Stable sort: ties keep row order, so the report is identical across reruns.
    return wrong.sort_values("confidence", ascending=False, kind="mergesort").head(n)


def build_report(names: list[str], positive: int, metrics: dict, class_counts: dict, lengths: dict[str, np.ndarray],
                 token_report: dict | None, predictions: pd.DataFrame, n_errors: int, map_description: str,
                 title: str, baseline_labels: dict[str, str] | None = None,
                 vs_tfidf: PairedDifference | None = None) -> str:
    baseline_labels = baseline_labels or {
        "tfidf": "TF-IDF (MeCab words + character n-grams) + logistic regression",
        "probe": "linear probe (logistic regression on frozen embed-stage vectors)",
        "mteb": "MTEB protocol (few-shot logistic regression, mean ± std)",
        "knn": "kNN (cosine) on frozen embed-stage vectors",
    }
    valid = metrics["valid"]
    binary = len(names) == 2
    n_valid = sum(c["support"] for c in valid["per_class"].values())
    out = [f"# {escape(title)}", ""]
    kind = f"binary, positive class **{escape(names[positive])}**" if binary else f"{len(names)} classes"
    out += [f"Classes: {', '.join(escape(name) for name in names)} ({kind}). Scores are on the valid split "
            f"({n_valid} texts) unless stated.", ""]

    out += ["## Model vs baselines", ""]
    for split in [s for s in ("valid", "test") if s in metrics]:
        out += [f"**{split}**", "", table(["system", "macro-F1 (95% CI)", "accuracy"],
                                          comparison_rows(metrics, split, baseline_labels)), "",
                verdict(metrics, split, vs_tfidf), ""]
    out += ["Intervals: 95% stratified bootstrap over the scored texts (1,000 resamples); differences smaller than "
            "the interval's width are not evidence. "
            "Baselines see the same train split and are scored on the same texts. The linear probe, MTEB protocol and kNN "
            "measure the base model's frozen sentence vectors (no fine-tuning); TF-IDF is the classical bar to clear.", ""]

    out += ["## Fine-tuned model (valid)", ""]
    which = f"class {escape(names[positive])}" if binary else "macro over one-vs-rest classes"
    out += [f"ROC-AUC {cell(valid.get('roc_auc'))}, average precision {cell(valid.get('average_precision'))} ({which}); "
            f"expected calibration error {cell(valid['ece'])}.", ""]
    rows = [[name, s["precision"], s["recall"], s["f1"], s["support"]] for name, s in valid["per_class"].items()]
    out += [table(["class", "precision", "recall", "F1", "support"], rows), ""]
    answers = set(predictions.loc[predictions["split"] == "valid", "predicted"])
    if len(answers) == 1:
        out += [f"**Warning: the model gives every valid text the same class ({escape(str(answers.pop()))}).** It has "
                "not learned to tell the classes apart; its scores are those of a constant answer. Try more "
                "`train.epochs`, another `train.learning_rate`, or a pretrained `model.name`.", ""]
    out += [f"![Confusion matrix]({FIGURES['confusion']})", "",
            "Rows are gold classes, columns predictions; off-diagonal cells are the mistakes.", "",
            f"![ROC curve]({FIGURES['roc']}) ![Precision-recall curve]({FIGURES['pr']})", "",
            "ROC: true-positive rate against false-positive rate as the decision threshold moves (diagonal = chance). "
            "Precision-recall: more informative for rare classes; the area is the average precision.", "",
            f"![Reliability diagram]({FIGURES['reliability']})", "",
            "Reliability: texts binned by the predicted class's probability; a calibrated model's bars follow the diagonal. "
            "ECE is the count-weighted mean gap.", ""]

    out += ["## Data", "", "Class counts per split:", ""]
    columns = sorted({label for counts in class_counts.values() for label in counts},
                     key=lambda label: names.index(label) if label in names else len(names))
    rows = [[split, *[counts.get(label, 0) for label in columns], sum(counts.values())]
            for split, counts in class_counts.items()]
    out += [table(["split", *columns, "total"], rows), "", "Text length (characters; tokens after the tokenize stage):", ""]
    out += [table(["split", "texts", "mean", "median", "p95", "max", "mean tokens", "truncated"],
                  length_rows(lengths, token_report)), "", f"![Text lengths]({FIGURES['lengths']})", ""]

    out += ["## Embedding map", "", f"![Embedding map]({FIGURES['embedding_map']})", "",
            f"The embed stage's sentence vectors, {map_description}, coloured by gold label. Well-separated colours mean "
            "the frozen encoder already distinguishes the classes (compare the linear probe).", ""]

    errors = confident_errors(predictions, names, n_errors)
    out += [f"## Most confident wrong predictions ({len(errors)})", ""]
    if errors.empty:
        out += ["None: every labelled text was predicted correctly.", ""]
    else:
        rows = [[r["split"], r["gold"], r["predicted"], float(r["confidence"]), float(r["p_gold"]), shorten(r["text"])]
                for _, r in errors.iterrows()]
        out += [table(["split", "gold", "predicted", "p(predicted)", "p(gold)", "text"], rows), "",
                "Confident mistakes are where label noise or a systematic gap in the model shows first. "
                "All predictions are in `predictions.csv`.", ""]
    return "\n".join(out).rstrip() + "\n"


def referenced_files(markdown: str) -> list[str]:
    """Relative paths of the images and links a Markdown report points to (escaped brackets are text)."""
    return re.findall(r"(?<!\\)\[(?:\\.|[^\]\\])*\]\(([^)\s]+)\)", markdown)


def missing_references(report_path: str | Path) -> list[str]:
    report_path = Path(report_path)
    return [ref for ref in referenced_files(report_path.read_text(encoding="utf-8"))
            if not (report_path.parent / ref).is_file()]
