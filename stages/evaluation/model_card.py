"""The model card (README.md of the packaged model): what the model is, what it was trained on, how well
it did, and how to use it, from the files the pipeline already wrote.

Pure text rendering, no I/O and no timestamps: the same inputs give a byte-identical card. Metric tables
are built from whatever numbers metrics.json holds, so new metrics appear without a change here.
"""
from __future__ import annotations

from typing import Any, Optional

import yaml

from stages.evaluation.markdown import code, escape, fenced, one_line, table

DEFAULT_INTENDED_USE = (
    "Classifying short Japanese texts into the labels above, for texts like those in the training file "
    "(same domain, style and label definitions). Check the evaluation figures on your own data before relying "
    "on it, and keep a person in the loop for decisions that affect people.")
DEFAULT_LIMITATIONS = (
    "It only knows the labels above: every text gets one of them, including off-topic texts. Texts are "
    "truncated to {max_length} tokens. Quality outside the training domain is unknown, and any bias in the "
    "training labels is learned. Probabilities are softmax scores, not calibrated likelihoods. Validation "
    "figures come from a split of the training file; a small validation set makes them noisy.")
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
                  "steps); no external weights")
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
    rows = [[split] + [per_class.get(name, "") for name in names] + [sum(per_class.values())]
            for split, per_class in counts.items() if "unlabelled" not in per_class]
    text = "\n".join(lines)
    if rows:
        text += "\n\nRows per class after cleaning and the stratified split:\n\n" + table(["split"] + names + ["total"], rows)
    unlabelled = {split: c["unlabelled"] for split, c in counts.items() if "unlabelled" in c}
    for split, rows_count in unlabelled.items():
        text += f"\n\nUnlabelled {code(split)} rows (predicted into the submission file): {rows_count}"
    return text


def usage_section(names: list[str], max_length: int) -> str:
    # A code block shows text literally: class names only need to stay on their line (repr and one_line).
    example = fenced(f"""from transformers import pipeline

classifier = pipeline("text-classification", model="path/to/this/directory")
classifier("この商品はとても使いやすいです。", truncation=True)
# [{{'label': {names[0]!r}, 'score': ...}}]   labels: {one_line(", ".join(names))}
classifier(["...", "..."], top_k=None, truncation=True)   # every label with its probability""", "python")
    return f"""Needs `torch`, `transformers`, `fugashi` and `unidic-lite` (the tokenizer's MeCab dictionary); no
code from the training project.

{example}

`truncation=True` cuts texts at {max_length} tokens, as in training. With the training project installed,
the command line does the same for files and pipes (CSV or JSON Lines out, one probability column per label):

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


def front_matter(base: dict, names: list[str]) -> str:
    meta: dict[str, Any] = {"language": ["ja"], "library_name": "transformers", "pipeline_tag": "text-classification",
                            "tags": ["text-classification", "japanese", "dvc"]}
    if base.get("source") not in (None, "builtin"):
        meta["base_model"] = base["source"]
    meta["labels"] = list(names)
    return "---\n" + dump_yaml(meta) + "---"


def render_card(names: list[str], base: dict, summary: dict, metrics: dict, params: dict, max_length: int,
                intended_use: Optional[str] = None, limitations: Optional[str] = None) -> str:
    """The card's markdown. `params` holds the param sections that shaped the model (data, split, ...)."""
    label_table = table(["id", "label"], [[i, name] for i, name in enumerate(names)])
    sections = [
        front_matter(base, names),
        f"# Japanese text classifier: {', '.join(escape(name) for name in names)}",
        "Fine-tuned sequence classifier written by the ja-textclf DVC pipeline (`dvc repro`). This directory is "
        "self-contained: safetensors weights, `config.json` with the label names, and the tokenizer files.",
        "## Labels\n\n" + label_table,
        "## Model\n\n" + "\n".join(base_model_lines(base)) +
        f"\n- Head: `AutoModelForSequenceClassification`, {len(names)} labels, softmax"
        f"\n- Maximum input length: {max_length} tokens (longer texts are truncated)",
        "## Training data\n\n" + data_section(summary, params.get("data", {})),
        "## Evaluation\n\n" + metrics_section(metrics),
        "## Intended use\n\n" + (intended_use or DEFAULT_INTENDED_USE),
        "## Limitations\n\n" + (limitations or DEFAULT_LIMITATIONS.format(max_length=max_length)),
        "## Usage\n\n" + usage_section(names, max_length),
        "## Params used\n\nFrom `params.yaml` of the run that produced this model:\n\n" + fenced(dump_yaml(params), "yaml"),
    ]
    return "\n\n".join(sections) + "\n"
