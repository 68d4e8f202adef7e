"""predict command: labels and class probabilities for new texts from a fine-tuned model directory.

    python -m stages.predict data/release "この商品は最高です" "二度と買いません"
    python -m stages.predict data/release --input new.csv --text-column text -o predictions.csv
    cat texts.txt | python -m stages.predict data/release --format jsonl --top-k 2

Installed as the console script `ja-textclf-predict`. Texts are tokenized exactly like the tokenize stage
(truncated to the tokenizer's `model_max_length`, which the package stage sets to `tokenize.max_length`)
and scored with `stages.inference.predict_proba`, the function the evaluate stage uses, so the same text
gets the same probabilities here as in `data/eval/predictions.csv`.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, TextIO

import numpy as np
import pandas as pd

from stages.common.errors import UserError, stage_entry
from stages.dataset.tables import decode_bytes, read_table, require_column
from stages.modeling.inference import PROBABILITY_DIGITS, probability_columns

# Below this many texts the progress bars are noise; above it, MeCab + the model take seconds or more.
PROGRESS_MIN_TEXTS = 500
TOKENIZE_CHUNK = 1000
FORMATS = ("csv", "jsonl")


@dataclass
class Inputs:
    texts: list[str]
    ids: Optional[list[str]] = None  # from the input file's id column, when it has one
    notes: list[str] = field(default_factory=list)


def drop_blank(texts: list[str], ids: Optional[list[str]], source: str) -> Inputs:
    """Blank texts carry nothing to classify (the split stage drops them too); say how many went."""
    keep = [i for i, text in enumerate(texts) if text.strip()]
    notes = []
    if len(keep) < len(texts):
        notes.append(f"{source}: skipped {len(texts) - len(keep)} empty texts")
    if not keep:
        raise UserError(f"{source}: no texts to classify (all {len(texts)} are empty)")
    return Inputs([texts[i] for i in keep], [ids[i] for i in keep] if ids is not None else None, notes)


def texts_from_args(texts: Sequence[str]) -> Inputs:
    return drop_blank(list(texts), None, "arguments")


def texts_from_stream(raw: bytes, source: str = "<stdin>", encoding: str = "auto") -> Inputs:
    """One text per line; UTF-8 (with or without BOM) or CP932 as the tables module detects."""
    if not raw.strip():
        raise UserError(f"{source}: no input; pipe one text per line, pass texts as arguments, or use --input FILE")
    text, _ = decode_bytes(raw, source, encoding)
    return drop_blank(text.splitlines(), None, source)


def texts_from_file(path: str, text_column: str, id_column: str, encoding: str = "auto", sep: str = "auto") -> Inputs:
    """A CSV/TSV with a text column; its id column (if present) is copied to the output."""
    file = Path(path)
    if not file.is_file():
        what = "is a directory" if file.is_dir() else "not found"
        raise UserError(f"{path}: input file {what}; give an existing CSV/TSV file to --input")
    table = read_table(file, encoding, sep, param="--input")
    require_column(table, text_column, "--text-column")
    ids = table.frame[id_column].tolist() if id_column in table.frame.columns else None
    inputs = drop_blank(table.frame[text_column].tolist(), ids, table.source)
    inputs.notes = table.notes + inputs.notes
    return inputs


def load_classifier(model_dir: str):
    """(model, tokenizer) from a directory written by the train or package stage, checked first so that a
    wrong directory gives a one-line error instead of a transformers traceback."""
    from transformers import (
        AutoConfig,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )
    from transformers.utils import logging as transformers_logging

    # The "Loading weights" bar of a small local model is noise in a command's output.
    transformers_logging.disable_progress_bar()

    directory = Path(model_dir)
    hint = "give the directory of a trained model, e.g. data/release or data/model after `dvc repro`"
    if not directory.is_dir():
        raise UserError(f"{model_dir}: model directory {'is a file' if directory.exists() else 'not found'}; {hint}")
    if not (directory / "config.json").is_file():
        raise UserError(f"{model_dir}: no config.json, so not a transformers model directory; {hint}")
    if not any(directory.glob("*.safetensors")):
        raise UserError(f"{model_dir}: no *.safetensors weights (only safetensors are loaded); {hint}")
    try:
        config = AutoConfig.from_pretrained(str(directory))
    except (OSError, ValueError) as err:
        raise UserError(f"{model_dir}: config.json is unreadable ({str(err).strip().splitlines()[0][:160]})") from None
    architectures = config.architectures or []
    if not any(name.endswith("ForSequenceClassification") for name in architectures):
        found = ", ".join(architectures) or config.model_type
        raise UserError(f"{model_dir}: a {found} model, not a text classifier (no *ForSequenceClassification "
                        f"head); {hint} (data/base_model is the encoder before fine-tuning)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory))
    except (OSError, ValueError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{model_dir}: tokenizer files missing or unreadable ({first[:160]}); {hint}") from None
    model = AutoModelForSequenceClassification.from_pretrained(str(directory), use_safetensors=True)
    return model, tokenizer


def label_names(model) -> list[str]:
    return [model.config.id2label[i] for i in range(model.config.num_labels)]


def default_max_length(model, tokenizer) -> int:
    """The tokenizer's model_max_length (the training truncation in a packaged model), never more than the
    model's position embeddings (tokenizers without a limit report a huge sentinel)."""
    positions = getattr(model.config, "max_position_embeddings", None) or 512
    limit = tokenizer.model_max_length
    return int(min(limit, positions)) if limit and limit < 1_000_000 else int(positions)


def quiet_unless(show: bool):
    """Progress bars go to stderr; for a handful of texts they are only clutter, so swallow them."""
    return contextlib.nullcontext() if show else contextlib.redirect_stderr(io.StringIO())


def encode(tokenizer, texts: list[str], max_length: int, progress: bool) -> list[list[int]]:
    """Token ids exactly as the tokenize stage makes them: truncation at max_length, no padding."""
    from tqdm.auto import tqdm

    sequences: list[list[int]] = []
    with tqdm(total=len(texts), desc="tokenize", unit="text", mininterval=2, disable=not progress) as bar:
        for start in range(0, len(texts), TOKENIZE_CHUNK):
            chunk = texts[start:start + TOKENIZE_CHUNK]
            sequences += tokenizer(chunk, truncation=True, max_length=max_length)["input_ids"]
            bar.update(len(chunk))
    return sequences


def predict_texts(model, tokenizer, texts: list[str], batch_size: int = 64, device: str = "auto",
                  precision: str = "fp32", max_length: Optional[int] = None,
                  progress: Optional[bool] = None) -> np.ndarray:
    """Probabilities (len(texts), num_labels) in input order, batched with dynamic padding."""
    from stages.common.hardware import resolve_device, resolve_precision
    from stages.modeling.inference import predict_proba

    if progress is None:
        progress = len(texts) >= PROGRESS_MIN_TEXTS
    torch_device = resolve_device(device)
    dtype = resolve_precision(precision, torch_device, "--precision")
    sequences = encode(tokenizer, texts, max_length or default_max_length(model, tokenizer), progress)
    with quiet_unless(progress):
        return predict_proba(model, sequences, batch_size, torch_device, dtype)


def top_k_indices(probabilities: np.ndarray, k: int) -> np.ndarray:
    # Stable sort on the negated probabilities: ties keep class-index order, so output is deterministic.
    return np.argsort(-probabilities, axis=1, kind="stable")[:, :k]


def result_frame(texts: list[str], probabilities: np.ndarray, names: list[str], ids: Optional[list[str]] = None,
                 top_k: int = 0, id_column: str = "id") -> pd.DataFrame:
    """One row per text: [id], text, label, p_<class> for every class, then label_i/score_i for the top k."""
    rounded = np.asarray(probabilities, dtype=np.float64).round(PROBABILITY_DIGITS)
    columns: dict = {}
    if ids is not None:
        columns[id_column] = ids
    columns["text"] = texts
    columns["label"] = [names[i] for i in probabilities.argmax(axis=1)]
    columns.update(probability_columns(probabilities, names))
    if top_k:
        ranked = top_k_indices(probabilities, top_k)
        for rank in range(top_k):
            columns[f"label_{rank + 1}"] = [names[i] for i in ranked[:, rank]]
            columns[f"score_{rank + 1}"] = rounded[np.arange(len(texts)), ranked[:, rank]]
    return pd.DataFrame(columns)


def jsonl_records(frame: pd.DataFrame, names: list[str], top_k: int, id_column: str = "id") -> list[dict]:
    """JSON Lines rows: probabilities as one {class: p} object and the top k as a ranked list."""
    records = []
    for row in frame.to_dict(orient="records"):
        record = {key: row[key] for key in (id_column, "text", "label") if key in row}
        record["probabilities"] = {name: float(row[f"p_{name}"]) for name in names}
        if top_k:
            record["top_k"] = [{"label": row[f"label_{r}"], "score": float(row[f"score_{r}"])}
                               for r in range(1, top_k + 1)]
        records.append(record)
    return records


def render(frame: pd.DataFrame, names: list[str], fmt: str, top_k: int, id_column: str = "id") -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(record, ensure_ascii=False) + "\n"
                       for record in jsonl_records(frame, names, top_k, id_column))
    return frame.to_csv(index=False, lineterminator="\n")


def output_format(fmt: Optional[str], output: str) -> str:
    if fmt:
        return fmt
    return "jsonl" if Path(output).suffix.lower() in {".jsonl", ".json", ".ndjson"} else "csv"


def write_output(content: str, output: str, stdout: TextIO) -> None:
    if output == "-":
        stdout.write(content)
        stdout.flush()
        return
    from stages.common.outputs import atomic_file

    target = Path(output)
    if target.is_dir():
        raise UserError(f"{output}: is a directory; give a file name to --output")
    with atomic_file(target) as tmp:
        tmp.write_text(content, encoding="utf-8")


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="ja-textclf-predict",
        description="Classify texts with a fine-tuned model directory (data/release or data/model). Texts come "
                    "from the arguments, from --input FILE (CSV/TSV), or from standard input, one per line.")
    cli.add_argument("model_dir", help="model directory: data/release (packaged, with model card) or data/model")
    cli.add_argument("texts", nargs="*", help="texts to classify (default: read --input or standard input)")
    cli.add_argument("-i", "--input", help="CSV/TSV file of texts ('-' = standard input, one text per line)")
    cli.add_argument("--text-column", default="text", help="text column of --input (default: text)")
    cli.add_argument("--id-column", default="id", help="column of --input copied to the output when present (default: id)")
    cli.add_argument("--encoding", default="auto", help="encoding of the input: auto (UTF-8, UTF-8 BOM, CP932) or a codec")
    cli.add_argument("--sep", default="auto", help="separator of --input: auto (tab for .tsv, else comma)")
    cli.add_argument("-o", "--output", default="-", help="output file (default: standard output)")
    cli.add_argument("--format", choices=FORMATS, help="csv or jsonl (default: from the --output suffix, else csv)")
    cli.add_argument("-k", "--top-k", type=int, default=0, help="also list the k most likely labels with their scores")
    cli.add_argument("--batch-size", type=int, default=64, help="texts per forward pass (default: 64)")
    cli.add_argument("--max-length", type=int, help="truncate texts to this many tokens (default: the tokenizer's "
                                                    "model_max_length, i.e. tokenize.max_length in data/release)")
    cli.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: auto (CUDA if present)")
    cli.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="fp32",
                     help="default fp32, as the evaluate stage; auto/bf16 is faster on GPUs and recent CPUs")
    progress = cli.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help=f"always show progress bars (default: only for {PROGRESS_MIN_TEXTS}+ texts)")
    progress.add_argument("--no-progress", dest="progress", action="store_false", help="never show progress bars")
    return cli


def read_inputs(args: argparse.Namespace, stdin) -> Inputs:
    if args.texts and args.input:
        raise UserError("give texts either as arguments or with --input, not both")
    if args.texts:
        return texts_from_args(args.texts)
    if args.input and args.input != "-":
        return texts_from_file(args.input, args.text_column, args.id_column, args.encoding, args.sep)
    if stdin.isatty():
        raise UserError("no input: pass texts as arguments, --input FILE, or pipe one text per line on standard input")
    return texts_from_stream(stdin.buffer.read(), "<stdin>", args.encoding)


def run(argv: Sequence[str], stdin=None, stdout: Optional[TextIO] = None, stderr: Optional[TextIO] = None) -> pd.DataFrame:
    """The whole command; returns the result frame (tests call this in-process)."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    args = parser().parse_args(list(argv))
    for name in ("batch_size", "max_length"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')}: must be at least 1, got {value}")
    if args.top_k < 0:
        raise UserError(f"--top-k: must be 0 (off) or more, got {args.top_k}")
    fmt = output_format(args.format, args.output)
    inputs = read_inputs(args, stdin)
    model, tokenizer = load_classifier(args.model_dir)
    names = label_names(model)
    top_k = min(args.top_k, len(names))
    if args.top_k > len(names):
        inputs.notes.append(f"--top-k {args.top_k} is more than the {len(names)} classes; listing all {len(names)}")
    for note in inputs.notes:
        print(f"note: {note}", file=stderr)
    probabilities = predict_texts(model, tokenizer, inputs.texts, args.batch_size, args.device, args.precision,
                                  args.max_length, args.progress)
    frame = result_frame(inputs.texts, probabilities, names, inputs.ids, top_k, args.id_column)
    write_output(render(frame, names, fmt, top_k, args.id_column), args.output, stdout)
    if args.output != "-":
        print(f"predict: {len(frame)} texts -> {args.output} ({fmt})", file=stderr)
    return frame


@stage_entry
def main() -> None:
    run(sys.argv[1:])


if __name__ == "__main__":
    main()
