"""The model card (README.md of the packaged model): what the model is, what it was trained on, how well
it did, and how to use it, from the files the pipeline already wrote.

Pure text rendering, no I/O and no timestamps: the same inputs give a byte-identical card. Metric tables
are built from whatever numbers metrics.json holds, so new metrics appear without a change here. The YAML
front matter is huggingface_hub's ModelCardData (license, language, library, pipeline tag, datasets, base
model, and a model-index of the valid scores), so the Hub and `ModelCard.load` read it as a model card.
The usage example shows what the packaged model itself answered (the package stage runs `example_calls`).
"""
from __future__ import annotations

import pprint
from typing import Any, Optional

import yaml
from huggingface_hub import EvalResult, ModelCardData

from stages.evaluation.markdown import code, escape, fenced, table

DEFAULT_INTENDED_USE = (
    "Classifying short Japanese texts into the labels above, for texts like those in the training file "
    "(same domain, style and label definitions). Check the evaluation figures on your own data before relying "
    "on it, and keep a person in the loop for decisions that affect people.")
DEFAULT_LIMITATIONS = (
    "It only knows the labels above: every text gets one of them, including off-topic texts. Texts are "
    "truncated to {max_length} tokens. Quality outside the training domain is unknown, and any bias in the "
    "training labels is learned. Probabilities are softmax scores, not calibrated likelihoods. Validation "
    "figures come from a split of the training file; a small validation set makes them noisy.")
# data.task regression
REGRESSION_INTENDED_USE = (
    "Scoring short Japanese texts (or text pairs) on the scale of the training file's scores, for texts like those "
    "in it (same domain, style and scoring rules). Check the evaluation figures on your own data before relying "
    "on it, and keep a person in the loop for decisions that affect people.")
REGRESSION_LIMITATIONS = (
    "Every text gets a number, including off-topic texts, and nothing keeps it inside the training scores' range. "
    "Texts are truncated to {max_length} tokens. Quality outside the training domain is unknown, and any bias in "
    "the training scores is learned. Validation figures come from a split of the training file; a small "
    "validation set makes them noisy.")
TOKENIZER_NOTE = ("`BertJapaneseTokenizer` (MeCab word segmentation via `fugashi` with the `unidic-lite` "
                  "dictionary, then WordPiece)")


def _scalars(metrics: dict, prefix: str = "") -> dict[str, Any]:
    """Flatten nested metrics to dotted keys, leaving out per-class tables (rendered separately)."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        if key == "per_class":
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_scalars(value, f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = value
    return flat


def metrics_section(metrics: dict) -> str:
    if not metrics:
        return "No evaluation metrics were recorded."
    parts = []
    # Evaluation splits first in a fixed order, then anything else the evaluate stage adds (e.g. the probe).
    order = [s for s in ("valid", "test") if s in metrics] + sorted(s for s in metrics if s not in ("valid", "test"))
    for split in order:
        values = metrics[split]
        if not isinstance(values, dict):
            continue
        flat = _scalars(values)
        if flat:
            title = {"valid": "Validation split", "test": "Test file"}.get(split, code(split))
            parts.append(f"**{title}**\n\n" + table(["metric", "value"], [[k, v] for k, v in flat.items()]))
        per_class = values.get("per_class")
        if isinstance(per_class, dict) and per_class:
            columns = list(next(iter(per_class.values())))
            rows = [[name] + [scores.get(c, "") for c in columns] for name, scores in per_class.items()]
            parts.append(f"Per class ({escape(split)}):\n\n" + table(["label"] + columns, rows))
    parts.append("`probe` (when present) is a logistic regression on the frozen base-model embeddings: how much of "
                 "the task the encoder solves before fine-tuning.")
    return "\n\n".join(parts)


def base_model_lines(base: dict) -> list[str]:
    source = base.get("source", "unknown")
    if source == "builtin":
        origin = ("`builtin`: a small Japanese BERT that the pipeline built from the training texts (WordPiece "
                  f"vocabulary over MeCab words, then {base.get('pretrain_steps', 'a few hundred')} masked-LM "
                  "steps)")
        if base.get("word_vectors", "none") == "none":
            origin += "; no external weights"
        else:
            origin += ("; its word embeddings started from the chiVe word vectors (Works Applications, trained on "
                       "the NWJC web corpus; Apache License 2.0), read from the ja-ginza 5.3.0 wheel (MIT License)")
    else:
        revision = base.get("resolved_revision") or base.get("revision") or "main"
        origin = f"{code(source)} at revision {code(revision)}"
    lines = [f"- Base model: {origin}"]
    shape = ", ".join(f"{label} {base[key]}" for key, label in (
        ("num_hidden_layers", "layers"), ("hidden_size", "hidden size"), ("num_attention_heads", "heads"),
        ("vocab_size", "vocabulary")) if base.get(key) is not None)
    lines.append(f"- Architecture: {code(base.get('model_type', '?'))}" + (f" ({escape(shape)})" if shape else ""))
    tokenizer = base.get("tokenizer_class")
    lines.append("- Tokenizer: " + (TOKENIZER_NOTE if tokenizer == "BertJapaneseTokenizer" and
                                    base.get("word_tokenizer_type") == "mecab" else code(tokenizer)))
    return lines


def data_section(summary: dict, data_params: dict) -> str:
    counts: dict = summary.get("class_counts", {})
    names = summary.get("label_names", [])
    lines = [f"- Training file: {code(data_params.get('train_csv'))}",
             f"- SHA-256 of the training file: {code(summary.get('train_csv_sha256', 'unknown'))}"]
    if data_params.get("test_csv"):
        lines.append(f"- Test file: {code(data_params['test_csv'])}")
    # data.task multi_label: a row may carry several labels (or none), so the total is the split's rows
    totals = summary.get("rows", {})
    rows = [[split] + [per_class.get(name, "") for name in names] + [totals.get(split, sum(per_class.values()))]
            for split, per_class in counts.items() if "unlabelled" not in per_class]
    text = "\n".join(lines)
    statistics = {split: s for split, s in summary.get("label_statistics", {}).items() if "rows" in s}
    if statistics:  # data.task regression: the score per split instead of class counts
        text += "\n\nScore per split after cleaning and the split on its quantile bins:\n\n" + table(
            ["split", "rows", "mean", "std", "min", "max"],
            [[split, s["rows"], s["mean"], s["std"], s["min"], s["max"]] for split, s in statistics.items()])
    if rows:
        what = ("Rows carrying each label (total: rows) after cleaning and the iterative stratified split"
                if summary.get("task") == "multi_label" else "Rows per class after cleaning and the stratified split")
        text += f"\n\n{what}:\n\n" + table(["split"] + names + ["total"], rows)
    unlabelled = {split: c["unlabelled"] for split, c in counts.items() if "unlabelled" in c}
    for split, rows_count in unlabelled.items():
        text += f"\n\nUnlabelled {code(split)} rows (predicted into the submission file): {rows_count}"
    return text


EXAMPLE_TEXTS = ("この商品はとても使いやすいです。", "二度と買いません。")
SHOWN_LABELS = 5  # the example with every label's score shows at most this many
SCORE_DIGITS = 4


def example_calls(n_labels: int) -> list[tuple[Any, dict[str, Any]]]:
    """The usage section's `classifier(...)` calls as (texts, keyword arguments): the package stage runs them on
    the packaged model and the card shows their code with what they returned."""
    every_label = {"top_k": None if n_labels <= SHOWN_LABELS else SHOWN_LABELS}
    return [(list(EXAMPLE_TEXTS), {"truncation": True}), (EXAMPLE_TEXTS[0], {**every_label, "truncation": True})]


def rounded_output(output: Any) -> Any:
    """A pipeline answer with its scores rounded, as the card shows it (the digits beyond say nothing)."""
    if isinstance(output, list):
        return [rounded_output(item) for item in output]
    if isinstance(output, dict):
        return {key: round(float(value), SCORE_DIGITS) if key == "score" else value for key, value in output.items()}
    return output


def call_code(texts: Any, kwargs: dict[str, Any]) -> str:
    arguments = [repr(texts)] + [f"{key}={value!r}" for key, value in kwargs.items()]
    return f"classifier({', '.join(arguments)})"


def output_lines(output: Any) -> str:
    """`output` as Python comment lines (repr: a class name with a line break or quote stays one literal)."""
    return "\n".join(f"# {line}" for line in pprint.pformat(output, width=100, sort_dicts=False).splitlines())


def usage_section(n_labels: int, max_length: int, outputs: Optional[list] = None) -> str:
    """`outputs`: what each of `example_calls` returned on the packaged model (rounded_output); None leaves
    the answers out (for a card rendered without a model)."""
    calls = example_calls(n_labels)
    lines = ["from transformers import pipeline", "",
             'classifier = pipeline("text-classification", model="path/to/this/directory")']
    for index, (texts, kwargs) in enumerate(calls):
        lines.append(call_code(texts, kwargs))
        if outputs is not None:
            lines.append(output_lines(outputs[index]))
    example = fenced("\n".join(lines), "python")
    answered = ("The answers above are this model's own, computed when the card was written (scores rounded to "
                f"{SCORE_DIGITS} digits). " if outputs is not None else "")
    return f"""Needs `torch`, `transformers`, `fugashi` and `unidic-lite` (the tokenizer's MeCab dictionary); no
code from the training project.

{example}

{answered}`top_k=None` gives every label with its probability, best first. `truncation=True` cuts texts at
{max_length} tokens, as in training. With the training project installed, the command line does the same for
files and pipes (CSV or JSON Lines out, one probability column per label):

```bash
ja-textclf-predict path/to/this/directory "この商品はとても使いやすいです。"
ja-textclf-predict path/to/this/directory --input texts.csv --text-column text -o predictions.csv
cat texts.txt | ja-textclf-predict path/to/this/directory --format jsonl --top-k 2
```"""


class OneLineDumper(yaml.SafeDumper):
    """safe_dump, with every string that holds a line break written double-quoted on one line (`\\n`), so a
    hostile class name cannot put `---` or a code fence at the start of a line of the card."""


def _one_line_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    breaks = any(ch in value for ch in "\n\r\x85\u2028\u2029")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"' if breaks else None)


OneLineDumper.add_representer(str, _one_line_str)


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=OneLineDumper, allow_unicode=True, sort_keys=False, width=float("inf"))


MODEL_NAME = "ja-textclf"
# model-index entries: (metrics.json key, Hub metric type, display name, metric args)
CARD_METRICS = (("macro_f1", "f1", "Macro F1", {"average": "macro"}), ("accuracy", "accuracy", "Accuracy", None),
                # data.task regression (a split's metrics hold these keys instead of the two above)
                ("pearson", "pearsonr", "Pearson r", None), ("spearman", "spearmanr", "Spearman", None),
                ("mse", "mse", "MSE", None), ("mae", "mae", "MAE", None),
                # data.task multi_label (macro_f1 as above)
                ("micro_f1", "f1", "Micro F1", {"average": "micro"}),
                ("samples_f1", "f1", "Samples F1", {"average": "samples"}))
CARD_SPLITS = (("valid", "validation"), ("test", "test"))


def file_name(path: Optional[str]) -> Optional[str]:
    return None if not path else path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def eval_results(metrics: dict, datasets: dict[str, Optional[str]]) -> list[EvalResult]:
    """macro-F1 and accuracy of each scored split, as the Hub's model-index expects them."""
    results = []
    for split, hub_split in CARD_SPLITS:
        scores = metrics.get(split)
        if not isinstance(scores, dict) or not datasets.get(split):
            continue
        for key, metric_type, metric_name, metric_args in CARD_METRICS:
            if isinstance(scores.get(key), (int, float)):
                results.append(EvalResult(
                    task_type="text-classification", task_name="Text Classification",
                    dataset_type=datasets[split], dataset_name=datasets[split], dataset_split=hub_split,
                    metric_type=metric_type, metric_name=metric_name, metric_value=scores[key], metric_args=metric_args))
    return results


def card_data(base: dict, metrics: dict, license: str, dataset_name: str, test_dataset_name: Optional[str]) -> ModelCardData:
    """The card's metadata. `base_model` only for a Hub model (a local directory or the builtin model is no Hub id)."""
    results = eval_results(metrics, {"valid": dataset_name, "test": test_dataset_name})
    return ModelCardData(
        language="ja", license=license, library_name="transformers", pipeline_tag="text-classification",
        tags=["text-classification", "japanese", "dvc"], datasets=[dataset_name],
        base_model=base["source"] if base.get("resolved_revision") else None,
        model_name=MODEL_NAME if results else None, eval_results=results or None)


def front_matter(data: ModelCardData) -> str:
    # Our own dumper, not huggingface_hub's yaml_dump: every string stays on one line (hostile file names).
    return "---\n" + dump_yaml(data.to_dict()) + "---"


def render_card(names: list[str], base: dict, summary: dict, metrics: dict, params: dict, max_length: int,
                intended_use: Optional[str] = None, limitations: Optional[str] = None, license: str = "other",
                dataset_name: Optional[str] = None, usage_outputs: Optional[list] = None) -> str:
    """The card's markdown. `params` holds the param sections that shaped the model (data, split, ...);
    `metrics` is metrics.json with per_class.json's tables under each split's `per_class`; `dataset_name`
    None = the training file's name; `usage_outputs`: see usage_section."""
    data_params = params.get("data", {})
    dataset = dataset_name or file_name(data_params.get("train_csv")) or "training data"
    label_table = table(["id", "label"], [[i, name] for i, name in enumerate(names)])
    regression = data_params.get("task") == "regression"
    pair = data_params.get("text_pair_column")
    title = (f"# Japanese text regression model: {escape(data_params.get('label_column', 'score'))}" if regression
             else f"# Japanese text classifier: {', '.join(escape(name) for name in names)}")
    head = ("1 output, regression (`problem_type: regression`; the raw output is the predicted score)" if regression
            else f"{len(names)} labels, a sigmoid per label (`problem_type: multi_label_classification`; a label is "
            f"predicted at or above `multi_label_threshold` in config.json, chosen on the dev split)"
            if data_params.get("task") == "multi_label" else f"{len(names)} labels, softmax")
    inputs = (f"\n- Input: sentence pairs, `[CLS] {escape(data_params.get('text_column', 'text'))} [SEP] "
              f"{escape(pair)} [SEP]` with token types 0 and 1 (`text_pair_column` in config.json)" if pair else "")
    sections = [
        front_matter(card_data(base, metrics, license, dataset, file_name(data_params.get("test_csv")))),
        title,
        "Fine-tuned sequence classifier written by the ja-textclf DVC pipeline (`dvc repro`). This directory is "
        "self-contained: safetensors weights, `config.json` with the label names, and the tokenizer files.",
        ("## Output\n\nOne number per text: the predicted score (data.task: regression)." if regression
         else "## Labels\n\n" + label_table),
        "## Model\n\n" + "\n".join(base_model_lines(base)) +
        f"\n- Head: `AutoModelForSequenceClassification`, {head}{inputs}"
        f"\n- Maximum input length: {max_length} tokens (longer texts are truncated)",
        "## Training data\n\n" + data_section(summary, params.get("data", {})),
        "## Evaluation\n\n" + metrics_section(metrics),
        "## Intended use\n\n" + (intended_use or (REGRESSION_INTENDED_USE if regression else DEFAULT_INTENDED_USE)),
        "## Limitations\n\n" + (limitations or (REGRESSION_LIMITATIONS if regression else DEFAULT_LIMITATIONS).format(
            max_length=max_length)),
        "## Usage\n\n" + usage_section(len(names), max_length, usage_outputs),
        "## Params used\n\nFrom `params.yaml` of the run that produced this model:\n\n" + fenced(dump_yaml(params), "yaml"),
    ]
    return "\n\n".join(sections) + "\n"
