"""predict command: labels and class probabilities for new texts from a fine-tuned model directory.

    python -m stages.predict data/release "この商品は最高です" "二度と買いません"
    python -m stages.predict data/release --input new.csv --text-column text -o predictions.csv
    cat texts.txt | python -m stages.predict data/release --format jsonl --top-k 2

Installed as the console script `ja-textclf-predict`. Texts are tokenized exactly like the tokenize stage
(truncated to the tokenizer's `model_max_length`, which the package stage sets to `tokenize.max_length`, or
cut as the model's config.json `long_text` says: head_tail, or windows pooled per text; stages/dataset/windows.py)
and scored with `stages.modeling.inference.predict_proba`, the function the evaluate stage uses, so the same
text gets the same probabilities here as in `data/eval/predictions.csv`.

The input is read, scored and written `--chunk-size` texts at a time: memory stays flat however long the
input is, and rows appear on standard output as each chunk is done. An `-o` file is written under a temporary
name and renamed when complete, so a failed run leaves no half-written file. The output never replaces the
input, a file in a model directory, or (without --force) any existing file.
"""
from __future__ import annotations

import argparse
import codecs
import contextlib
import csv
import io
import itertools
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, TextIO

import numpy as np
import pandas as pd

from stages.common.errors import UserError, stage_entry
from stages.common.spreadsheet import spreadsheet_safe
from stages.common.threads import shares_cores
from stages.dataset.japanese import COUNT_KEYS, preparation_notes, prepare_texts
from stages.dataset.tables import decode_bytes, guess_sep
from stages.modeling.model_dir import check_model_dir, first_line, is_model_dir
from stages.modeling.task_outputs import (
    encode_rows,
    is_multi_label_model,
    is_regression_model,
    multi_label_strings,
    recorded_pair_column,
    regression_frame,
    regression_jsonl,
    with_pairs,
)

# Below this many texts the progress bar is noise; above it, MeCab + the model take seconds or more.
PROGRESS_MIN_TEXTS = 500
# Texts per chunk: large enough that batching stays efficient (an input up to this size is scored exactly as
# one call would score it), small enough that memory stays flat and the first rows come out quickly.
# (fugashi's MeCab tagger itself keeps ~180 bytes per distinct word it has parsed: memory still grows with the
# vocabulary of the input, ~70 MB for 460,000 distinct numbers, but no longer with its length. A fresh tokenizer
# now and then is no cure: fugashi never frees a tagger's dictionary, so each reload leaked ~40 MB.)
CHUNK_TEXTS = 1000
# The encoding of a file is guessed from its first MiB (whole lines), not from the whole file.
ENCODING_SAMPLE_BYTES = 1 << 20
# Above this share of [UNK] tokens the model is reading characters it never saw: say so.
UNK_WARNING_RATE = 0.05
FORMATS = ("csv", "jsonl")
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
MODEL_HINT = "give the directory of a trained model, e.g. data/release or data/model after `dvc repro`"


@dataclass
class Chunk:
    texts: list[str]
    ids: Optional[list[str]] = None  # from the input file's id column, when it has one
    pairs: Optional[list[str]] = None  # second texts of sentence pairs (a model trained with data.text_pair_column)


@dataclass
class TextSource:
    """Where texts come from: a name for messages, notes known before reading, and the chunks themselves."""
    name: str
    chunks: Iterator[Chunk]
    notes: list[str] = field(default_factory=list)
    saw_bytes: bool = True  # standard input: whether anything but ASCII whitespace arrived (see finish_blank)


def chunked(items: Sequence, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


# --- input ------------------------------------------------------------------------------------------


def stream_codec(sample: bytes, complete: bool, source: str, encoding: str) -> tuple[str, str]:
    """(codec to decode the whole stream with, name for notes), from its first bytes.

    'auto' decides as the tables module does for a whole file (UTF-8 with or without BOM, CP932, a Japanese
    guess), from the first lines only; an explicit codec is only looked up here and checked as it is read.
    """
    if encoding != "auto":
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise UserError(f"--encoding: unknown codec {encoding!r}; use 'auto', 'utf-8', 'utf-8-sig' or 'cp932'") from None
        return encoding, encoding
    if sample.startswith(UTF16_BOMS):
        return "utf-16", "utf-16"
    if not complete and b"\n" in sample:
        sample = sample[:sample.rindex(b"\n") + 1]  # whole lines: never a character cut in two
    _, used = decode_bytes(sample, source, "auto")
    return {"utf-8 with BOM": "utf-8-sig"}.get(used, used), used


def decode_error(source: str, codec: str, err: UnicodeDecodeError, where: str) -> UserError:
    return UserError(f"{source}: cannot decode {where} as {codec} ({err.reason}); the encoding was guessed from the "
                     f"start of the input: pass --encoding with the input's real encoding (e.g. cp932 or utf-8)")


def split_lines(blocks: Iterable[bytes], codec: str, source: str) -> Iterator[str]:
    """Lines of a byte stream split on '\\n' only (a trailing '\\r' of CRLF removed): Unicode line separators,
    form feeds or lone carriage returns inside a text stay in that text (str.splitlines would cut there).
    All bytes go through one incremental decoder, so multi-byte and UTF-16 text decode whatever the blocks."""
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    pending, number = "", 0
    for block in itertools.chain(blocks, [None]):
        try:
            pending += decoder.decode(block or b"", final=block is None)
        except UnicodeDecodeError as err:
            raise decode_error(source, codec, err, f"line {number + 1}") from None
        *complete, pending = pending.split("\n")
        if block is None and pending:
            complete.append(pending)
        for line in complete:
            number += 1
            yield line[:-1] if line.endswith("\r") else line


def texts_from_stdin(stdin, encoding: str, chunk_size: int) -> TextSource:
    """One text per line, `chunk_size` lines at a time; the encoding is decided from the first chunk."""
    source = "<stdin>"
    blocks = iter(stdin.buffer.readline, b"")  # a line as soon as it arrives: output can follow input
    first = list(itertools.islice(blocks, chunk_size))
    sample = b"".join(first)
    if len(first) < chunk_size and not sample.strip():
        raise UserError(f"{source}: no input; pipe one text per line, pass texts as arguments, or use --input FILE")
    codec, _ = stream_codec(sample, len(first) < chunk_size, source, encoding)
    lines = split_lines(itertools.chain(first, blocks), codec, source)
    text_source = TextSource(source, iter(()), saw_bytes=bool(sample.strip()))

    def chunks() -> Iterator[Chunk]:
        for texts in iter(lambda: list(itertools.islice(lines, chunk_size)), []):
            text_source.saw_bytes = text_source.saw_bytes or any(t.strip(" \t\r\n\v\f") for t in texts)
            yield Chunk(texts)

    text_source.chunks = chunks()
    return text_source


def texts_from_file(path: str, text_column: str, id_column: str, encoding: str, sep: str, chunk_size: int,
                    pair_column: Optional[str] = None) -> TextSource:
    """A CSV/TSV with a text column, read `chunk_size` rows at a time; its id column (if any) is copied over.

    Parsed as the tables module parses the training file (strings only, no NaN, blank lines skipped)."""
    file = Path(path)
    if not file.is_file():
        what = "is a directory" if file.is_dir() else "not found"
        raise UserError(f"{path}: input file {what}; give an existing CSV/TSV file to --input")
    try:
        with file.open("rb") as handle:
            sample = handle.read(ENCODING_SAMPLE_BYTES + 1)
    except OSError as err:
        raise UserError(f"{path}: cannot read the input file ({err.strerror}); check its permissions") from None
    if not sample.strip():
        raise UserError(f"{path}: file is empty; it needs a header line and at least one row")
    complete = len(sample) <= ENCODING_SAMPLE_BYTES
    codec, used = stream_codec(sample[:ENCODING_SAMPLE_BYTES], complete, path, encoding)
    notes = []
    if used not in ("utf-8", encoding):
        notes.append(f"{path}: decoded as {used}")
    if any(newline in sample for newline in (b"\r\n", b"\r\x00\n\x00", b"\x00\r\x00\n")):
        notes.append(f"{path}: CRLF line endings")
    delimiter = guess_sep(file, sep)
    kind = "TSV" if delimiter == "\t" else "CSV"

    def parse_errors(where: str):
        @contextlib.contextmanager
        def guard():
            try:
                yield
            except pd.errors.EmptyDataError:
                raise UserError(f"{path}: no columns found; the file needs a header line") from None
            except pd.errors.ParserError as err:
                raise UserError(f"{path}: not a valid {kind} file ({first_line(err)}); check quoting or set --sep") from None
            except UnicodeDecodeError as err:
                raise decode_error(path, codec, err, where) from None
        return guard()

    with parse_errors("the header"):
        reader = pd.read_csv(file, sep=delimiter, dtype=str, keep_default_na=False, na_filter=False,
                             skip_blank_lines=True, engine="c", encoding=codec, chunksize=chunk_size)
    frames = iter(reader)

    def next_frame() -> Optional[pd.DataFrame]:
        with parse_errors("a row"):
            frame = next(frames, None)
        if frame is not None:
            frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
        return frame

    first = next_frame()
    if first is None or first.empty:
        reader.close()
        raise UserError(f"{path}: has a header but no data rows")
    if text_column not in first.columns:
        reader.close()
        existing = ", ".join(repr(c) for c in first.columns)
        raise UserError(f"{path}: column {text_column!r} not found (set --text-column); columns are: {existing}")
    if pair_column is not None and pair_column not in first.columns:
        reader.close()
        existing = ", ".join(repr(c) for c in first.columns)
        raise UserError(f"{path}: column {pair_column!r} of the second texts not found (this model reads sentence "
                        f"pairs; set --text-pair-column); columns are: {existing}")

    def chunks() -> Iterator[Chunk]:
        with reader:
            frame = first
            while frame is not None:
                ids = frame[id_column].tolist() if id_column in frame.columns else None
                yield Chunk(frame[text_column].tolist(), ids,
                            frame[pair_column].tolist() if pair_column is not None else None)
                frame = next_frame()

    return TextSource(path, chunks(), notes)


def texts_from_args(texts: Sequence[str], chunk_size: int) -> TextSource:
    return TextSource("arguments", (Chunk(part) for part in chunked(texts, chunk_size)))


def read_inputs(args: argparse.Namespace, stdin, pair_column: Optional[str] = None) -> TextSource:
    if args.texts and args.input:
        raise UserError("give texts either as arguments or with --input, not both")
    if pair_column is not None and not (args.input and args.input != "-"):
        raise UserError(f"{args.model_dir}: this model reads sentence pairs (text and {pair_column}); give them in a "
                        f"CSV/TSV with --input FILE (columns {args.text_column} and {pair_column})")
    if pair_column is not None:
        return texts_from_file(args.input, args.text_column, args.id_column, args.encoding, args.sep, args.chunk_size,
                               pair_column)
    if args.texts:
        return texts_from_args(args.texts, args.chunk_size)
    if args.input and args.input != "-":
        return texts_from_file(args.input, args.text_column, args.id_column, args.encoding, args.sep, args.chunk_size)
    if stdin.isatty():
        raise UserError("no input: pass texts as arguments, --input FILE, or pipe one text per line on standard input")
    return texts_from_stdin(stdin, args.encoding, args.chunk_size)


@dataclass
class BlankFilter:
    """Blank texts carry nothing to classify (the split stage drops them too); count them for one note."""
    seen: int = 0
    skipped: int = 0

    def __call__(self, chunk: Chunk) -> Chunk:
        self.seen += len(chunk.texts)
        keep = [i for i, text in enumerate(chunk.texts)
                if text.strip() and (chunk.pairs is None or chunk.pairs[i].strip())]
        self.skipped += len(chunk.texts) - len(keep)
        return Chunk([chunk.texts[i] for i in keep], [chunk.ids[i] for i in keep] if chunk.ids is not None else None,
                     [chunk.pairs[i] for i in keep] if chunk.pairs is not None else None)

    def finish(self, source: TextSource) -> Optional[str]:
        """The note on skipped texts, or an error when nothing was left to classify."""
        if self.seen == self.skipped:
            if not source.saw_bytes:
                raise UserError(f"{source.name}: no input; pipe one text per line, pass texts as arguments, "
                                f"or use --input FILE")
            raise UserError(f"{source.name}: no texts to classify (all {self.seen} are empty)")
        return f"{source.name}: skipped {self.skipped} empty texts" if self.skipped else None


# --- output -----------------------------------------------------------------------------------------


def output_format(fmt: Optional[str], output: str) -> str:
    if fmt:
        return fmt
    return "jsonl" if Path(output).suffix.lower() in {".jsonl", ".json", ".ndjson"} else "csv"


def model_dir_holding(path: Path, model_dir: Path) -> Optional[Path]:
    """The model directory that `path` is or lies in (the one being used, or any config.json + safetensors one)."""
    for directory in (path, *path.parents):
        if directory == model_dir or (directory != path and is_model_dir(directory)):
            return directory
    return None


def check_output(output: str, input_path: Optional[str], model_dir: str, force: bool) -> Optional[Path]:
    """The resolved file to write, after refusing anything that would destroy what this command did not create:
    the input, a model directory's files, an existing file (without --force), a directory or a device."""
    if output == "-":
        return None
    label = f"-o {output}"
    given = Path(output)
    if not output.strip() or output.endswith(("/", os.sep)) or given.is_dir():
        raise UserError(f"{label}: is a directory (or no file name); give a file name such as predictions.csv")
    # Both the entry the name points at (symlinks and `..` resolved) and the entry itself are checked.
    resolved = given.resolve()
    entry = given.parent.resolve() / given.name
    if resolved.is_dir():
        raise UserError(f"{label}: is a directory; give a file name such as predictions.csv")
    for existing in resolved.parents:
        if existing.exists():
            if not existing.is_dir():
                raise UserError(f"{label}: {existing} is a file, not a directory; give a path in an existing folder")
            break
    if input_path and input_path != "-":
        source = Path(input_path)
        if resolved == source.resolve() or entry == source.resolve() or (
                resolved.exists() and source.exists() and os.path.samefile(resolved, source)):
            raise UserError(f"{label}: is the input file (--input {input_path}); write the predictions to a new file")
    model = Path(model_dir).resolve()
    for candidate in (resolved, entry):
        holder = model_dir_holding(candidate, model)
        if holder is not None:
            raise UserError(f"{label}: is inside the model directory {holder}; files of a model are never "
                            f"overwritten: write the predictions outside it")
    if resolved.exists() or entry.is_symlink():
        if resolved.exists() and not resolved.is_file():
            raise UserError(f"{label}: exists and is not a regular file; give a file path, or leave -o out to "
                            f"write to standard output")
        if not force:
            raise UserError(f"{label}: already exists; pass --force to replace it, or give a new file name")
    return resolved


class StdoutSink:
    def __init__(self, stdout: TextIO):
        self.stdout = stdout

    def __enter__(self) -> "StdoutSink":
        return self

    def write(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()  # rows appear as each chunk is done, not at the end

    def __exit__(self, *exc) -> None:
        return None


class FileSink:
    """Write under a temporary name next to the target and rename it into place only when complete; on any
    failure the temporary file and the folders created for it are removed, so nothing is left behind."""

    def __init__(self, target: Path, label: str):
        self.target, self.label = target, label
        self.created: list[Path] = []

    def __enter__(self) -> "FileSink":
        missing = [d for d in (self.target.parent, *self.target.parent.parents) if not d.exists()]
        try:
            for directory in reversed(missing):
                directory.mkdir()
                self.created.append(directory)
            fd, name = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".partial", dir=self.target.parent)
        except OSError as err:
            self.remove_created()
            raise UserError(f"{self.label}: cannot write there ({err.strerror}); give a writable path") from None
        self.tmp = Path(name)
        self.handle = os.fdopen(fd, "w", encoding="utf-8", newline="")
        return self

    def write(self, text: str) -> None:
        self.handle.write(text)

    def remove_created(self) -> None:
        for directory in reversed(self.created):
            with contextlib.suppress(OSError):
                directory.rmdir()

    def __exit__(self, kind, value, traceback) -> None:
        self.handle.close()
        if kind is not None:
            self.tmp.unlink(missing_ok=True)
            self.remove_created()
            return None
        os.chmod(self.tmp, 0o644)  # mkstemp makes 0600 files; predictions are ordinary files
        os.replace(self.tmp, self.target)
        return None


# --- the model --------------------------------------------------------------------------------------


def load_classifier(model_dir: str):
    """(model, tokenizer) from a directory written by the train or package stage, checked first so that a
    wrong directory gives a one-line error instead of a transformers traceback."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as transformers_logging

    # The "Loading weights" bar and load report of a small local model are noise in a command's output;
    # what matters in them (missing weights) becomes an error below.
    # Only for this load: predict.run is also called in-process (notebooks, tests).
    verbosity, bars = transformers_logging.get_verbosity(), transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    try:
        return _load_checked_classifier(model_dir)
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bars:
            transformers_logging.enable_progress_bar()


def _load_checked_classifier(model_dir: str):
    from transformers import AutoModelForSequenceClassification

    files = check_model_dir(model_dir, model_dir, MODEL_HINT)
    architectures = files.config.architectures or []
    if not any(name.endswith("ForSequenceClassification") for name in architectures):
        found = ", ".join(architectures) or files.config.model_type
        raise UserError(f"{model_dir}: a {found} model, not a text classifier (no *ForSequenceClassification "
                        f"head); {MODEL_HINT} (data/base_model is the encoder before fine-tuning)")
    try:
        model, loading = AutoModelForSequenceClassification.from_pretrained(
            str(model_dir), use_safetensors=True, output_loading_info=True)
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise UserError(f"{model_dir}: the weights do not fit config.json ({first_line(err)}); {MODEL_HINT}") from None
    missing = sorted(loading.get("missing_keys") or [])
    if missing:
        raise UserError(f"{model_dir}: the weights lack {len(missing)} tensors of the classifier (e.g. {missing[0]}), "
                        f"which would be random; {MODEL_HINT}")
    return model, files.tokenizer


def label_names(model) -> list[str]:
    return [model.config.id2label[i] for i in range(model.config.num_labels)]


def position_limit(model) -> Optional[int]:
    return getattr(model.config, "max_position_embeddings", None)


def default_max_length(model, tokenizer) -> int:
    """The tokenizer's model_max_length (the training truncation in a packaged model), never more than the
    model's position embeddings (tokenizers without a limit report a huge sentinel)."""
    positions = position_limit(model) or 512
    limit = tokenizer.model_max_length
    return int(min(limit, positions)) if limit and limit < 1_000_000 else int(positions)


def resolve_max_length(requested: Optional[int], model, tokenizer) -> int:
    positions = position_limit(model)
    if requested is not None and positions and requested > positions:
        raise UserError(f"--max-length {requested}: more than this model's {positions} token positions "
                        f"(max_position_embeddings in config.json); give {positions} or less, or leave it out")
    return requested or default_max_length(model, tokenizer)


@dataclass
class UnknownTokens:
    """How many of the input's tokens the vocabulary did not know ([UNK]), special tokens not counted."""
    unk_id: Optional[int]
    special_ids: frozenset
    unknown: int = 0
    total: int = 0

    @classmethod
    def of(cls, tokenizer) -> "UnknownTokens":
        unk_id = tokenizer.unk_token_id
        return cls(unk_id, frozenset(tokenizer.all_special_ids) - {unk_id})

    def count(self, sequences: Iterable[list[int]]) -> None:
        ids = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int64)
        words = ids[~np.isin(ids, list(self.special_ids))]
        self.total += int(words.size)
        self.unknown += int(np.count_nonzero(words == self.unk_id)) if self.unk_id is not None else 0

    def warning(self, token: str) -> Optional[str]:
        if self.unk_id is None or not self.total or self.unknown / self.total <= UNK_WARNING_RATE:
            return None
        return (f"{self.unknown / self.total:.1%} of the input's tokens ({self.unknown} of {self.total}) are {token}: "
                f"characters or words the model's vocabulary never saw, so predictions for those texts are "
                f"unreliable (above {UNK_WARNING_RATE:.0%})")


def encode(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids exactly as the tokenize stage makes them: truncation at max_length, no padding."""
    return tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]


def top_k_indices(probabilities: np.ndarray, k: int) -> np.ndarray:
    # Stable sort on the negated probabilities: ties keep class-index order, so output is deterministic.
    return np.argsort(-probabilities, axis=1, kind="stable")[:, :k]


def result_frame(texts: list[str], probabilities: np.ndarray, names: list[str], ids: Optional[list[str]] = None,
                 top_k: int = 0, id_column: str = "id") -> pd.DataFrame:
    """One row per text: [id], text, label, p_<class> for every class, then label_i/score_i for the top k."""
    from stages.modeling.inference import PROBABILITY_DIGITS, probability_columns

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
        record = {key: row[key] for key in (id_column, "text", "text_pair", "label") if key in row}
        record["probabilities"] = {name: float(row[f"p_{name}"]) for name in names}
        if top_k:
            record["top_k"] = [{"label": row[f"label_{r}"], "score": float(row[f"score_{r}"])}
                               for r in range(1, top_k + 1)]
        records.append(record)
    return records


def render(frame: pd.DataFrame, names: list[str], fmt: str, top_k: int, id_column: str = "id",
           header: bool = True) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(record, ensure_ascii=False) + "\n"
                       for record in jsonl_records(frame, names, top_k, id_column))
    # CSV is what people open in a spreadsheet: a text such as "=1+1" must not run as a formula there.
    return csv_text(spreadsheet_safe(frame), header)


def csv_text(frame: pd.DataFrame, header: bool) -> str:
    """frame.to_csv(index=False, lineterminator="\\n") with one difference: a cell holding a lone carriage
    return is quoted too. Python's csv writer quotes only the characters of its line terminator, and a bare
    '\\r' ends the row for every CSV reader; a '\\r\\n' terminator, rewritten to '\\n' after each row, fixes that."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    rows = itertools.chain([list(frame.columns)] if header else [], frame.itertuples(index=False, name=None))
    for row in rows:
        writer.writerow(row)
        buffer.seek(buffer.tell() - 2)
        buffer.write("\n")
        buffer.truncate()
    return buffer.getvalue()


# --- the command ------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="ja-textclf-predict",
        description="Classify texts with a fine-tuned model directory (data/release or data/model). Texts come "
                    "from the arguments, from --input FILE (CSV/TSV), or from standard input, one per line "
                    "(split on line feeds only). Rows are written as each chunk of texts is scored.")
    cli.add_argument("model_dir", help="model directory: data/release (packaged, with model card) or data/model")
    cli.add_argument("texts", nargs="*", help="texts to classify (default: read --input or standard input)")
    cli.add_argument("-i", "--input", help="CSV/TSV file of texts ('-' = standard input, one text per line)")
    cli.add_argument("--text-column", default="text", help="text column of --input (default: text)")
    cli.add_argument("--text-pair-column", help="column of --input with the second text of each sentence pair "
                                                "(default: the column recorded by training, for a pair model)")
    cli.add_argument("--id-column", default="id", help="column of --input copied to the output when present (default: id)")
    cli.add_argument("--encoding", default="auto", help="encoding of the input: auto (UTF-8, UTF-8 BOM, CP932, "
                                                        "guessed from the first lines) or a codec")
    cli.add_argument("--sep", default="auto", help="separator of --input: auto (tab for .tsv, else comma)")
    cli.add_argument("-o", "--output", default="-",
                     help="output file (default: standard output); never the input file or a file in a model "
                          "directory, and not an existing file unless --force is given")
    cli.add_argument("--force", action="store_true", help="replace the -o file if it already exists")
    cli.add_argument("--format", choices=FORMATS, help="csv or jsonl (default: from the --output suffix, else csv); "
                                                       "csv cells starting with = + - @ get a leading ' for spreadsheets")
    cli.add_argument("-k", "--top-k", type=int, default=0, help="also list the k most likely labels with their scores")
    cli.add_argument("--batch-size", type=int, default=64, help="texts per forward pass (default: 64)")
    cli.add_argument("--chunk-size", type=int, default=CHUNK_TEXTS,
                     help=f"texts read, scored and written at a time (default: {CHUNK_TEXTS}); memory grows with it")
    cli.add_argument("--max-length", type=int, help="truncate texts to this many tokens (default: the tokenizer's "
                                                    "model_max_length, i.e. tokenize.max_length in data/release)")
    cli.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: auto (CUDA if present)")
    cli.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="fp32",
                     help="default fp32, as the evaluate stage; auto/bf16 is faster on GPUs and recent CPUs")
    progress = cli.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help=f"always show a progress bar (default: from {PROGRESS_MIN_TEXTS} texts on)")
    progress.add_argument("--no-progress", dest="progress", action="store_false", help="never show a progress bar")
    return cli


def check_numbers(args: argparse.Namespace) -> None:
    for name in ("batch_size", "max_length", "chunk_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')}: must be at least 1, got {value}")
    if args.top_k < 0:
        raise UserError(f"--top-k: must be 0 (off) or more, got {args.top_k}")


class Progress:
    """One bar for the whole run on stderr; the total is unknown while streaming. By default it appears only
    once PROGRESS_MIN_TEXTS texts have been read: for a handful of texts it is clutter."""

    def __init__(self, stderr: TextIO, mode: Optional[bool]):
        self.stderr, self.mode, self.bar = stderr, mode, None

    def advance(self, seen: int, written: int) -> None:
        from tqdm.auto import tqdm

        if self.bar is None and (self.mode is True or (self.mode is None and seen >= PROGRESS_MIN_TEXTS)):
            self.bar = tqdm(desc="predict", unit="text", file=self.stderr, mininterval=2)
        if self.bar is not None:
            self.bar.update(written - self.bar.n)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass
class Summary:
    texts: int
    output: str
    format: str


def run(argv: Sequence[str], stdin=None, stdout: Optional[TextIO] = None, stderr: Optional[TextIO] = None) -> Summary:
    """The whole command (tests call this in-process with their own streams)."""
    from stages.common.hardware import resolve_device, resolve_precision
    from stages.dataset.windows import TRUNCATE, LongText, encode_texts
    from stages.modeling.inference import predict_proba
    from stages.modeling.window_pooling import pool_windows

    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    args = parser().parse_args(list(argv))
    check_numbers(args)
    fmt = output_format(args.format, args.output)
    target = check_output(args.output, args.input, args.model_dir, args.force)
    pair_column = args.text_pair_column or recorded_pair_column(args.model_dir)
    source = read_inputs(args, stdin, pair_column)
    model, tokenizer = load_classifier(args.model_dir)
    regression = is_regression_model(model)
    long_text = LongText.from_config(model.config, args.model_dir)  # head_tail / sliding_window as trained
    trained_length = long_text.max_length if long_text.strategy != TRUNCATE else None
    max_length = resolve_max_length(args.max_length or trained_length, model, tokenizer)
    device = resolve_device(args.device)
    dtype = resolve_precision(args.precision, device, "--precision")
    names = label_names(model)
    top_k = min(args.top_k, len(names))
    notes = list(source.notes)
    if args.top_k > len(names):
        notes.append(f"--top-k {args.top_k} is more than the {len(names)} classes; listing all {len(names)}")
    for note in notes:
        print(f"note: {note}", file=stderr)

    blanks, unknown, progress = BlankFilter(), UnknownTokens.of(tokenizer), Progress(stderr, args.progress)
    written, changed = 0, dict.fromkeys(COUNT_KEYS, 0)
    sink = StdoutSink(stdout) if target is None else FileSink(target, f"-o {args.output}")
    with progress, sink:
        for chunk in map(blanks, source.chunks):
            if not chunk.texts:
                continue
            # Prepared as the tokenize stage prepares texts (NUL, lone surrogates, MeCab-crashing lengths); the
            # output keeps the text as given.
            prepared, counts = prepare_texts(chunk.texts)
            changed = {key: changed[key] + counts[key] for key in COUNT_KEYS}
            prepared_pairs = prepare_texts(chunk.pairs)[0] if chunk.pairs is not None else None
            if long_text.strategy == TRUNCATE:  # pairs (params.py refuses them with head_tail / sliding_window)
                (sequences, segments), documents = encode_rows(tokenizer, prepared, prepared_pairs, max_length), None
            else:
                (sequences, documents), segments = encode_texts(tokenizer, prepared, long_text, max_length), None
            unknown.count(sequences)
            with contextlib.redirect_stderr(io.StringIO()):  # predict_proba's per-chunk bar; ours counts the whole run
                probabilities = predict_proba(model, sequences, args.batch_size, device, dtype, token_type_ids=segments)
            if documents is not None:  # sliding_window: one row per text, pooled as the evaluate stage pools
                probabilities = pool_windows(probabilities, documents, len(prepared), long_text.window_pooling)
            if regression:  # the predicted value per row (stages/modeling/task_outputs.py)
                frame = regression_frame(chunk.texts, chunk.pairs, probabilities, chunk.ids, args.id_column)
                sink.write(regression_jsonl(frame) if fmt == "jsonl" else csv_text(spreadsheet_safe(frame), written == 0))
            else:
                frame = with_pairs(result_frame(chunk.texts, probabilities, names, chunk.ids, top_k, args.id_column),
                                   chunk.pairs)
                if is_multi_label_model(model):  # every label over the stored threshold, joined (may be '')
                    frame["label"] = multi_label_strings(model.config, probabilities, names)
                sink.write(render(frame, names, fmt, top_k, args.id_column, header=written == 0))
            written += len(chunk.texts)
            progress.advance(blanks.seen, written)
        skipped = blanks.finish(source)  # an error here (nothing to classify) discards the -o file
    for note in preparation_notes(changed, source.name) + ([skipped] if skipped else []):
        print(f"note: {note}", file=stderr)
    warning = unknown.warning(tokenizer.unk_token)
    if warning:
        print(f"warning: {warning}", file=stderr)
    if target is not None:
        print(f"predict: {written} texts -> {args.output} ({fmt})", file=stderr)
    return Summary(written, args.output, fmt)


@stage_entry
@shares_cores
def main() -> None:
    try:
        run(sys.argv[1:])
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, and keep Python's exit flush from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


if __name__ == "__main__":
    main()
