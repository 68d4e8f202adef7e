"""package stage: the release directory = the fine-tuned model + its model card (README.md).

The card needs the evaluation metrics, which exist only after the evaluate stage, and evaluate reads
data/model. Writing README.md into data/model afterwards would make one stage modify another stage's
output (DVC would then see train's output as changed on every run). So this last stage copies data/model
into data/release and adds the card there; `artifacts:` in dvc.yaml points at data/release. The copy costs
no cache space: DVC stores files by content hash, and the weights are byte-identical to data/model's.
"""
from __future__ import annotations

import json
from pathlib import Path

from stages.common.errors import UserError
from stages.common.outputs import atomic_dir
from stages.common.params import Params
from stages.evaluation.model_card import example_calls, render_card, rounded_output
from stages.modeling.model_dir import (
    check_model_dir,
    copy_model_dir,
    drop_load_time_keys,
)

CARD_FILE = "README.md"
TOKENIZER_CONFIG = "tokenizer_config.json"
# Params sections that shape the model (embed/evaluate only measure it; paths only place files).
CARD_PARAM_SECTIONS = ("data", "split", "model", "tokenize", "train")


def read_json(path: Path, stage: str) -> dict:
    if not path.is_file():
        raise UserError(f"{path}: not found; it is written by the {stage} stage: run `dvc repro`")
    return json.loads(path.read_text(encoding="utf-8"))


def set_max_length(model_dir: Path, max_length: int) -> None:
    """Record the training truncation in the tokenizer, so `pipeline(..., truncation=True)` and the predict
    command cut texts where the tokenize stage did (the saved value is the base model's limit)."""
    config_file = model_dir / TOKENIZER_CONFIG
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["model_max_length"] = max_length
    config_file.write_text(json.dumps(config, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    drop_load_time_keys(model_dir)


def usage_outputs(release_dir: Path, n_labels: int) -> list:
    """What the packaged model answers to the model card's example calls, through the same
    `pipeline("text-classification", ...)` a user runs; on the CPU, so the card does not depend on the machine."""
    from transformers import pipeline

    classifier = pipeline("text-classification", model=str(release_dir), device="cpu")
    return [rounded_output(classifier(texts, **kwargs)) for texts, kwargs in example_calls(n_labels)]


def label_names(model_dir: Path) -> list[str]:
    config = read_json(model_dir / "config.json", "train")
    id2label = config.get("id2label") or {}
    return [id2label[str(i)] for i in range(len(id2label))]


def package(params: Params) -> tuple[Path, list[str], dict | None]:
    """Write the release directory; returns it, the label names and the ONNX check (None when package.onnx is off)."""
    paths = params.paths
    model_dir = Path(paths.model)
    check_model_dir(model_dir, str(model_dir), "it is written by the train stage: run `dvc repro`")
    names = label_names(model_dir)
    base = read_json(Path(paths.model_summary), "base_model")
    base.setdefault("pretrain_steps", params.model.pretrain_steps)
    summary = read_json(Path(paths.split) / "summary.json", "split")
    metrics = read_json(Path(paths.eval) / "metrics.json", "evaluate")
    for split, per_class in read_json(Path(paths.eval) / "per_class.json", "evaluate").items():
        metrics.setdefault(split, {})["per_class"] = per_class
    max_length = min(params.tokenize.max_length, base.get("max_position_embeddings") or params.tokenize.max_length)
    dumped = params.model_dump(mode="json")
    package_params = params.package
    with atomic_dir(paths.release) as tmp:
        copy_model_dir(model_dir, tmp)
        set_max_length(tmp, max_length)
        card = render_card(names, base, summary, metrics, {s: dumped[s] for s in CARD_PARAM_SECTIONS}, max_length,
                           package_params.intended_use, package_params.limitations, license=package_params.license,
                           dataset_name=package_params.dataset_name, usage_outputs=usage_outputs(tmp, len(names)))
        (tmp / CARD_FILE).write_text(card, encoding="utf-8")
        onnx_check = None
        if package_params.onnx:  # inside the temporary directory: a failed check leaves the previous release
            from stages.evaluation.onnx_export import ONNX_DIR, export_checked

            onnx_check = export_checked(tmp, tmp / ONNX_DIR)
    return Path(paths.release), names, onnx_check
