"""ONNX export of the release (package.onnx): <release>/onnx/model.onnx, checked against PyTorch before it is kept.

Exporter: `torch.onnx.export(..., dynamo=True)`, torch's default and supported exporter since 2.9 (it needs
onnxscript). Measured on the sample's builtin model (4 layers, 256 wide, torch 2.13, 1 thread): 10 s, max abs
diff of the probabilities 1.2e-7. The legacy TorchScript exporter (`dynamo=False`) took 0.7 s with the same
diff, but it is deprecated and traces transformers' attention-mask code with Python booleans that it warns
"will be treated as a constant": a graph that can be right for the traced shapes only. The check below runs
other batch sizes and sequence lengths than the export saw, so either way a wrong graph is caught.

The graph's inputs are what the release's tokenizer returns (`tokenizer.model_input_names`: input_ids and
attention_mask for the builtin model, plus token_type_ids for most hub BERTs), so
`session.run(None, dict(tokenizer(texts, return_tensors="np")))` serves it; its outputs are `logits` and
`probabilities`: what the evaluate and predict stages apply to the logits, by the config's problem_type
(softmax for one label per text, sigmoid for multi-label, the value itself for regression).
"""
from __future__ import annotations

import importlib
import inspect
import json
import time
from pathlib import Path

import numpy as np
import torch

from stages.common.errors import UserError

ONNX_DIR = "onnx"
ONNX_FILE = "model.onnx"
CHECK_FILE = "check.json"
OUTPUT_NAMES = ("logits", "probabilities")
# float32 on both sides; the measured differences are ~1e-7, so 1e-4 flags a wrong graph, not rounding.
TOLERANCE = 1e-4
# Every module the export and the check import (onnxscript: the dynamo exporter's ONNX builder).
REQUIRED_MODULES = ("onnx", "onnxscript", "onnxruntime")
# Texts of different lengths (one longer than any max_length the tokenize stage allows, so truncation at
# model_max_length is in the check) and empty text (the shortest sequence, [CLS] [SEP]).
CHECK_TEXTS = (
    "この商品はとても使いやすいです。",
    "二度と買いません。",
    "",
    "良い",
    "届いた商品は箱が潰れていて、説明書も入っていませんでした。問い合わせても返事がなく、とても残念です。" * 3,
    "発送が早く、梱包も丁寧でした。" * 200,
)


def check_available() -> None:
    """Refuse package.onnx: true before anything is written when the optional dependencies are missing."""
    missing = []
    for name in REQUIRED_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise UserError(f"package.onnx: true needs {', '.join(missing)} (not installed): run "
                        "`pip install '.[onnx]'` in the project's environment, or set package.onnx: false")


def head_output(logits: torch.Tensor, problem_type: str | None) -> torch.Tensor:
    """The scores the pipeline reports from the logits, as transformers' own heads define problem_type."""
    if problem_type == "regression":
        return logits
    if problem_type == "multi_label_classification":
        return torch.sigmoid(logits)
    return torch.softmax(logits, dim=-1)


class ProbabilityModel(torch.nn.Module):
    """The classifier with positional tensor inputs (the exporter's calling convention) and its scores added."""

    def __init__(self, model: torch.nn.Module, input_names: list[str]):
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(**dict(zip(self.input_names, tensors))).logits
        return logits, head_output(logits, self.model.config.problem_type)


COMPARED = {None: "softmax of the logits", "single_label_classification": "softmax of the logits",
            "multi_label_classification": "sigmoid of the logits", "regression": "the predicted value"}


def graph_input_names(tokenizer, model: torch.nn.Module) -> list[str]:
    accepted = inspect.signature(model.forward).parameters
    return [name for name in tokenizer.model_input_names if name in accepted]


def export(model: torch.nn.Module, tokenizer, onnx_file: Path) -> list[str]:
    """Write the ONNX graph of `model` (in eval mode) to onnx_file; returns its input names."""
    input_names = graph_input_names(tokenizer, model)
    # Two texts of different lengths: batch and sequence sizes above 1 and unequal, so the exporter keeps both
    # axes symbolic instead of specialising them to the example's sizes.
    example = tokenizer(list(CHECK_TEXTS[:2]), padding=True, truncation=True, return_tensors="pt")
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    onnx_file.parent.mkdir(parents=True, exist_ok=True)
    # external_data=False: one self-contained file (ONNX's protobuf limit: models under 2 GB, as BERT-large is).
    torch.onnx.export(
        ProbabilityModel(model, input_names).eval(), tuple(example[name] for name in input_names), str(onnx_file),
        input_names=input_names, output_names=list(OUTPUT_NAMES), dynamo=True, external_data=False,
        dynamic_shapes=(tuple({0: batch, 1: sequence} for _ in input_names),), verbose=False)
    return input_names


def check_batches() -> list[list[str]]:
    """All texts padded into one batch, then each text alone: several batch sizes and sequence lengths."""
    return [list(CHECK_TEXTS)] + [[text] for text in CHECK_TEXTS]


def max_abs_diff(model: torch.nn.Module, tokenizer, onnx_file: Path, threads: int) -> tuple[float, list[list[int]]]:
    """Largest |ONNX Runtime probability - PyTorch probability| over the check batches, and their shapes."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
    graph_inputs = [node.name for node in session.get_inputs()]
    worst, shapes = 0.0, []
    for texts in check_batches():
        encoded = tokenizer(texts, padding=True, truncation=True, return_tensors="np")
        (served,) = session.run(["probabilities"], {name: encoded[name] for name in graph_inputs})
        with torch.no_grad():
            tensors = {name: torch.from_numpy(encoded[name]) for name in graph_inputs}
            expected = head_output(model(**tensors).logits, model.config.problem_type).numpy()
        worst = max(worst, float(np.abs(served - expected).max()))
        shapes.append(list(encoded["input_ids"].shape))
    return worst, shapes


def export_checked(model_dir: Path, out_dir: Path) -> dict:
    """Export the model in model_dir to out_dir/model.onnx, compare ONNX Runtime with PyTorch on CHECK_TEXTS,
    and write out_dir/check.json (returned, with the export's seconds added). A difference above TOLERANCE raises RuntimeError (the caller's release is then
    not written): the exporter produced a wrong graph for this architecture, which no param of the user's fixes."""
    import onnxruntime
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
    onnx_file = out_dir / ONNX_FILE
    started = time.perf_counter()
    input_names = export(model, tokenizer, onnx_file)
    export_seconds = time.perf_counter() - started
    worst, shapes = max_abs_diff(model, tokenizer, onnx_file, torch.get_num_threads())
    if not worst <= TOLERANCE:
        raise RuntimeError(
            f"package.onnx: ONNX Runtime's probabilities differ from PyTorch's by up to {worst:.3g} (> {TOLERANCE:g}) "
            f"on the check texts; the ONNX graph of this {model.config.model_type} model is wrong, so the release was "
            f"not written. Set package.onnx: false to package without ONNX, and report this with the versions: "
            f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}")
    check = {
        "max_abs_diff": worst,
        "tolerance": TOLERANCE,
        "compared": f"probabilities ({COMPARED.get(model.config.problem_type, COMPARED[None])}), ONNX Runtime "
                    f"CPU vs PyTorch, float32",
        "batch_shapes": shapes,
        "inputs": input_names,
        "outputs": list(OUTPUT_NAMES),
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
    }
    (out_dir / CHECK_FILE).write_text(json.dumps(check, indent=2) + "\n", encoding="utf-8")
    # The export's duration is for the stage's summary line only: a release file should not vary with load.
    return {**check, "export_seconds": round(export_seconds, 1)}
