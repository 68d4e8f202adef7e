"""The predict command never destroys what it did not create, reads lines as lines, streams, and refuses a
broken model directory; the base_model stage refuses a broken model. Each case runs the command's own main()
against a copy of the tiny model of the shared sample run (in-process with conftest's call_main: a subprocess
spends seconds importing torch per case), and hashes the whole working folder before and after: a refused run
changes no byte of it. Each rule also has a case run as a real `python -m stages.predict` subprocess, for the
exit code and the streams; streaming and memory are measured on real subprocesses only.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
import yaml
from transformers.utils import logging as transformers_logging

from stages import predict
from stages.modeling.model_dir import copy_model_dir
from tests.conftest import REPO, call_main, deep_update, env_with_venv

NAMES = ["negative", "neutral", "positive"]
TEXTS = ["この商品はとても使いやすいです。", "届いた商品が壊れていて最悪でした。", "色は写真のとおりでした。",
         "毎日使っていますが、特に不満はありません。", "二度と買いません。"]
# Line breaks that str.splitlines honours but a "one text per line" input does not: each stays inside its text.
NOT_LINE_BREAKS = ["\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\r"]


def environment() -> dict:
    # This checkout's code whatever the working folder; one torch thread, so timings do not swing with the
    # load of a shared machine (and results do not depend on the thread count).
    return dict(env_with_venv(), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", TQDM_DISABLE="1")


def predict_cli(workdir: Path, *args: str, stdin: bytes | str = b"") -> subprocess.CompletedProcess:
    return call_main("stages.predict", *args, cwd=workdir, stdin=stdin)


def predict_process(workdir: Path, *args: str, stdin: bytes | str = b"") -> subprocess.CompletedProcess:
    data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
    result = subprocess.run([sys.executable, "-m", "stages.predict", *args], cwd=workdir, env=environment(),
                            input=data, capture_output=True, timeout=600)
    result.stdout, result.stderr = result.stdout.decode("utf-8"), result.stderr.decode("utf-8")
    return result


def tree_state(root: Path) -> dict[str, tuple]:
    """Every entry under root: file contents (sha256), symlink targets, directories; links are not followed."""
    state: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                state[key] = ("link", os.readlink(path))
            elif path.is_dir():
                state[key] = ("dir",)
            else:
                state[key] = ("file", hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mode)
    return state


def assert_one_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout == ""
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def csv_rows(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def release(sample_run, tmp_path_factory) -> Path:
    assert "Running stage 'package'" in sample_run.stdout
    return Path(shutil.copytree(sample_run.repo / "data/release", tmp_path_factory.mktemp("models") / "release"))


@pytest.fixture
def workdir(release, tmp_path) -> Path:
    """A user's folder: the model, an input file and other files the command must leave alone."""
    work = tmp_path / "work"
    shutil.copytree(release, work / "model")
    frame = pd.DataFrame({"id": [f"doc-{i}" for i in range(len(TEXTS))], "text": TEXTS})
    frame.to_csv(work / "texts.csv", index=False)
    (work / "existing.csv").write_text("somebody's results\n", encoding="utf-8")
    (work / "sub").mkdir()
    (work / "afile").write_text("not a folder\n", encoding="utf-8")
    (work / "other_model").mkdir()  # any folder with config.json + safetensors is a model: never written into
    (work / "other_model/config.json").write_text("{}\n", encoding="utf-8")
    (work / "other_model/weights.safetensors").write_bytes(b"placeholder")
    (work / "link_to_input.csv").symlink_to("texts.csv")
    (work / "link_to_existing.csv").symlink_to(work / "existing.csv")
    (work / "model_link").symlink_to("model", target_is_directory=True)
    os.link(work / "texts.csv", work / "hard_input.csv")
    (work / "in\nput =x.csv").write_bytes((work / "texts.csv").read_bytes())  # a hostile but legal file name
    return work


def test_help_documents_force(workdir):
    result = predict_cli(workdir, "--help")
    assert result.returncode == 0
    assert "--force" in result.stdout and "replace the -o file if it already exists" in " ".join(result.stdout.split())


# --- rule: -o never replaces the input, a model's files, or (without --force) an existing file ---------

INPUT = ["--input", "texts.csv"]


@pytest.mark.parametrize("args, fragment", [
    (INPUT + ["-o", "texts.csv"], "is the input file"),
    (INPUT + ["-o", "sub/../texts.csv", "--force"], "is the input file"),
    (INPUT + ["-o", "{work}/texts.csv", "--force"], "is the input file"),
    (["--input", "./sub/../texts.csv", "-o", "link_to_input.csv", "--force"], "is the input file"),
    (INPUT + ["-o", "hard_input.csv", "--force"], "is the input file"),
    (["--input", "in\nput =x.csv", "-o", "in\nput =x.csv", "--force"], "is the input file"),
    (INPUT + ["-o", "model/config.json", "--force"], "inside the model directory"),
    (INPUT + ["-o", "model/model.safetensors", "--force"], "inside the model directory"),
    (INPUT + ["-o", "model/predictions.csv"], "inside the model directory"),
    (INPUT + ["-o", "model/new/deeper/predictions.csv"], "inside the model directory"),
    (INPUT + ["-o", "model_link/config.json", "--force"], "inside the model directory"),
    (INPUT + ["-o", "sub/../model/tokenizer_config.json", "--force"], "inside the model directory"),
    (INPUT + ["-o", "{work}/model/vocab.txt", "--force"], "inside the model directory"),
    (INPUT + ["-o", "other_model/config.json", "--force"], "inside the model directory"),
    (INPUT + ["-o", "other_model/nested/new.csv"], "inside the model directory"),
    (INPUT + ["-o", "existing.csv"], "already exists; pass --force"),
    (INPUT + ["-o", "link_to_existing.csv"], "already exists; pass --force"),
    (INPUT + ["-o", "sub"], "is a directory"),
    (INPUT + ["-o", "sub/"], "is a directory"),
    (INPUT + ["-o", "model", "--force"], "is a directory"),
    (INPUT + ["-o", "afile/out.csv"], "is a file, not a directory"),
    (INPUT + ["-o", "/dev/null", "--force"], "not a regular file"),
    (["-o", "model/config.json", "--force"], "inside the model directory"),  # texts on standard input
    (["--input", "-", "-o", "existing.csv"], "already exists"),
    (["よい", "-o", "existing.csv"], "already exists"),
])
def test_output_that_would_destroy_a_file_is_refused(workdir, args, fragment):
    args = [a.format(work=workdir) for a in args]
    before = tree_state(workdir)
    result = predict_cli(workdir, "model", *args, stdin="よい\n")
    line = assert_one_error(result, fragment)
    assert line.startswith("error: -o "), line
    assert tree_state(workdir) == before


def test_a_real_process_refuses_with_exit_2_and_one_line(workdir):
    before = tree_state(workdir)
    for args, fragment in ((INPUT + ["-o", "texts.csv", "--force"], "is the input file"),
                           (INPUT + ["-o", "model/config.json", "--force"], "inside the model directory")):
        assert_one_error(predict_process(workdir, "model", *args), "error: -o ", fragment)
    (workdir / "model/vocab.txt").unlink()
    before.pop("model/vocab.txt")
    assert_one_error(predict_process(workdir, "model", *INPUT, "-o", "out.csv"), "error: model: ",
                     "tokenizer files missing")
    assert tree_state(workdir) == before


def test_output_checks_use_the_model_dir_argument_however_it_is_spelled(workdir):
    before = tree_state(workdir)
    for model, target in (("./sub/../model", "model/config.json"), (str(workdir / "model_link"), "model/README.md")):
        assert_one_error(predict_cli(workdir, model, "よい", "-o", target, "--force"), "-o ", "inside the model directory")
    assert tree_state(workdir) == before


def test_force_replaces_only_the_named_file(workdir):
    before = tree_state(workdir)
    verbosity = transformers_logging.get_verbosity()
    result = predict_cli(workdir, "model", *INPUT, "-o", "existing.csv", "--force")
    assert result.returncode == 0, result.stderr
    assert transformers_logging.get_verbosity() == verbosity  # quiet for its load only: callers keep their level
    written = csv_rows((workdir / "existing.csv").read_text(encoding="utf-8"))
    assert written["id"].tolist() == [f"doc-{i}" for i in range(len(TEXTS))] and written["text"].tolist() == TEXTS
    after = tree_state(workdir)
    assert after.pop("existing.csv") != before.pop("existing.csv")
    assert after == before  # no temporary file left, nothing else touched


def test_new_output_in_new_folders_is_written(workdir):
    result = predict_cli(workdir, "model", *INPUT, "-o", "results/2024/predictions.jsonl")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (workdir / "results/2024/predictions.jsonl").read_text().splitlines()]
    assert [r["text"] for r in records] == TEXTS
    assert sorted(os.listdir(workdir / "results/2024")) == ["predictions.jsonl"]


@pytest.mark.parametrize("stdin, model_change, fragment", [
    ("\n \n\u3000\n", None, "no texts to classify"),  # fails after the output file was opened
    ("よい\n", "vocab.txt", "tokenizer files missing"),  # fails before
])
def test_failed_run_leaves_no_output_and_no_new_folders(workdir, stdin, model_change, fragment):
    if model_change:
        (workdir / "model" / model_change).unlink()
    before = tree_state(workdir)
    result = predict_cli(workdir, "model", "-o", "new/deeper/out.csv", stdin=stdin)
    assert_one_error(result, fragment)
    assert tree_state(workdir) == before


# --- rule: standard input is split on line feeds only --------------------------------------------------


@pytest.mark.parametrize("separator", NOT_LINE_BREAKS)
def test_split_lines_keeps_unicode_line_separators_inside_a_text(separator):
    raw = f"前{separator}後\r\n次\n".encode("utf-8")
    blocks = [raw[i:i + 3] for i in range(0, len(raw), 3)]  # blocks that cut characters in two
    assert list(predict.split_lines(blocks, "utf-8", "<stdin>")) == [f"前{separator}後", "次"]


def test_stdin_texts_with_line_separators_stay_one_row_each(workdir):
    texts = [f"前{separator}後" for separator in NOT_LINE_BREAKS] + ["最後の行"]
    stdin = "\n".join(texts[:3]) + "\r\n" + "\n".join(texts[3:])  # one CRLF, no final line feed
    jsonl = predict_cli(workdir, "model", "--format", "jsonl", stdin=stdin)
    assert jsonl.returncode == 0, jsonl.stderr
    assert [json.loads(line)["text"] for line in jsonl.stdout.split("\n") if line] == texts
    # The same through `--input -` as CSV: the separators are quoted or kept in the cells, never new rows.
    csv = predict_process(workdir, "model", "--input", "-", stdin=stdin.encode("utf-8"))  # a real stdin
    assert csv.returncode == 0, csv.stderr
    assert csv_rows(csv.stdout)["text"].tolist() == texts


# --- rule: streaming -----------------------------------------------------------------------------------


def test_many_chunks_give_the_single_chunk_output(workdir, sample_run):
    valid = pd.read_csv(sample_run.repo / "data/eval/predictions.csv", dtype=str)
    texts = valid.loc[valid["split"] == "valid", "text"].tolist()[:40]
    rows = [(f"r{i}", text) for i, text in enumerate(texts)]
    rows[3:3] = [("blank-1", " ")]
    rows[17:17] = [("blank-2", "")]
    pd.DataFrame(rows, columns=["id", "text"]).to_csv(workdir / "many.csv", index=False)
    runs = {}
    for fmt in ("csv", "jsonl"):
        for chunk in ("1000", "3"):
            result = predict_cli(workdir, "model", "--input", "many.csv", "--top-k", "2", "--format", fmt,
                                 "--chunk-size", chunk)
            assert result.returncode == 0, result.stderr
            assert "skipped 2 empty texts" in result.stderr
            runs[fmt, chunk] = result.stdout
    single, chunked = csv_rows(runs["csv", "1000"]), csv_rows(runs["csv", "3"])
    assert runs["csv", "3"].count("id,text,label,") == 1  # one header, not one per chunk
    assert single["id"].tolist() == [i for i, t in rows if t.strip()] and single["text"].tolist() == texts
    numbers = [c for c in single.columns if c.startswith(("p_", "score_"))]
    assert single.drop(columns=numbers).equals(chunked.drop(columns=numbers))
    # Other chunks mean other length-sorted batches, hence float32 noise below the 6th decimal at most.
    assert (single[numbers].astype(float) - chunked[numbers].astype(float)).abs().max().max() <= 2e-6
    one, many = ([json.loads(line) for line in runs["jsonl", c].splitlines()] for c in ("1000", "3"))
    assert [(r["id"], r["text"], r["label"]) for r in one] == [(r["id"], r["text"], r["label"]) for r in many]
    assert [r["id"] for r in one] == single["id"].tolist()


def line_reader(stream) -> queue.Queue:
    """Lines of a child's output as they come (None at the end), read by a thread so a test can wait with a timeout."""
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in iter(stream.readline, b""):
            lines.put(line.decode("utf-8"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_rows_appear_before_the_input_ends(workdir):
    """The first chunk is written while standard input is still open: the command streams."""
    process = subprocess.Popen([sys.executable, "-m", "stages.predict", "model", "--chunk-size", "2"], cwd=workdir,
                               env=environment(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        output = line_reader(process.stdout)
        process.stdin.write(f"{TEXTS[0]}\n{TEXTS[1]}\n".encode("utf-8"))
        process.stdin.flush()
        first = [output.get(timeout=300) for _ in range(3)]  # header + the first chunk's two rows
        assert process.poll() is None  # still running: its input is not closed yet
        assert first[0].startswith("text,label,") and [row.split(",")[0] for row in first[1:]] == TEXTS[:2]
        process.stdin.write(("\n".join(TEXTS[2:]) + "\n").encode("utf-8"))
        process.stdin.close()
        rest = list(iter(lambda: output.get(timeout=300), None))
        assert process.wait(timeout=300) == 0, process.stderr.read()
    finally:
        process.kill()
        process.wait()
    assert [row.split(",")[0] for row in rest] == TEXTS[2:]


def peak_rss_mb(workdir: Path, stdin_file: Path) -> float:
    """Peak resident memory of one predict run over stdin_file (os.wait4: this child's own figure)."""
    with stdin_file.open("rb") as source:
        process = subprocess.Popen([sys.executable, "-m", "stages.predict", "model", "--chunk-size", "500"],
                                   cwd=workdir, env=environment(), stdin=source, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0
    return usage.ru_maxrss / 1024  # kilobytes on Linux


def test_memory_does_not_grow_with_the_input(workdir):
    """Ten times the input, about the same peak memory (the whole-input version grew ~15 bytes per byte)."""
    line = "ああ\n"  # short texts: many rows per byte, so per-row memory would show quickly
    small, large = workdir / "small.txt", workdir / "large.txt"
    small.write_text(line * 4_000, encoding="utf-8")
    large.write_text(line * 40_000, encoding="utf-8")
    growth = peak_rss_mb(workdir, large) - peak_rss_mb(workdir, small)
    assert growth < 15, f"peak memory grew by {growth:.0f} MB for 36,000 more texts"


# --- rule: a broken model directory is refused, not half-loaded -----------------------------------------


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def randomise(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


def foreign_vocabulary(path: Path) -> None:
    words = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(words + [f"語{i}" for i in range(5000)]) + "\n", encoding="utf-8")


@pytest.mark.parametrize("change, fragment", [
    (lambda m: [(m / n).unlink() for n in ("vocab.txt", "tokenizer_config.json")], "tokenizer files missing"),
    (lambda m: (m / "tokenizer_config.json").unlink(), "no tokenizer_config.json"),
    (lambda m: (m / "vocab.txt").unlink(), "tokenizer files missing"),
    (lambda m: truncate(m / "model.safetensors"), "model.safetensors is not a valid safetensors file"),
    (lambda m: randomise(m / "model.safetensors"), "model.safetensors is not a valid safetensors file"),
    (lambda m: (m / "model.safetensors").write_bytes(b""), "not a valid safetensors file"),
    (lambda m: (m / "config.json").write_text("{not json", encoding="utf-8"), "config.json is unreadable"),
    (lambda m: foreign_vocabulary(m / "vocab.txt"), "belong to another model"),
], ids=["no-tokenizer", "no-tokenizer-config", "no-vocab", "truncated-weights", "random-weights", "empty-weights",
        "bad-config", "foreign-tokenizer"])
def test_broken_model_directory_is_refused(workdir, change, fragment):
    change(workdir / "model")
    before = tree_state(workdir)
    assert_one_error(predict_cli(workdir, "model", *INPUT, "-o", "out.csv"), "error: model: ", fragment)
    assert tree_state(workdir) == before


def test_model_path_that_is_a_file_is_refused(workdir):
    assert_one_error(predict_cli(workdir, "model/model.safetensors", "よい"), "model/model.safetensors",
                     "is a file, not a directory")


def test_classifier_config_over_encoder_weights_is_refused(workdir, sample_run):
    """data/base_model with a config that claims a classification head: the head's weights would be random."""
    fake = shutil.copytree(sample_run.repo / "data/base_model", workdir / "fake")
    config = json.loads((fake / "config.json").read_text())
    config.update(architectures=["BertForSequenceClassification"], id2label={"0": "a", "1": "b"},
                  label2id={"a": 0, "b": 1})
    (fake / "config.json").write_text(json.dumps(config))
    before = tree_state(workdir)
    assert_one_error(predict_cli(workdir, "fake", "よい"), "fake: the weights lack", "classifier")
    assert tree_state(workdir) == before


def test_max_length_beyond_position_embeddings_is_refused(workdir):
    positions = json.loads((workdir / "model/config.json").read_text())["max_position_embeddings"]
    assert_one_error(predict_cli(workdir, "model", "よい", "--max-length", str(positions + 1)),
                     f"--max-length {positions + 1}", f"{positions} token positions")
    ok = predict_cli(workdir, "model", TEXTS[0] * 40, "--max-length", str(positions))
    assert ok.returncode == 0, ok.stderr


# --- rule: unknown characters are reported; CSV output is safe in a spreadsheet --------------------------


def test_unknown_characters_give_one_warning(workdir, sample_run):
    result = predict_cli(workdir, "model", "𠮷野家の☃️とΩ", "ꙮꙮꙮ")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "% of the input's tokens" in warnings[0] and "[UNK]" in warnings[0], result.stderr
    valid = pd.read_csv(sample_run.repo / "data/eval/predictions.csv", dtype=str)
    familiar = predict_cli(workdir, "model", *valid.loc[valid["split"] == "valid", "text"].head(20))  # known words
    assert familiar.returncode == 0 and "warning" not in familiar.stderr, familiar.stderr


HOSTILE = ["=1+1", "+SUM(A1:A2)", "-2+3", "@cmd", "=HYPERLINK(\"http://x\")", "普通の文"]


def test_csv_output_has_no_live_formulas_but_jsonl_keeps_texts(workdir):
    pd.DataFrame({"id": ["=id", "b", "c", "d", "e", "f"], "text": HOSTILE}).to_csv(workdir / "hostile.csv", index=False)
    csv = predict_cli(workdir, "model", "--input", "hostile.csv", "-o", "out.csv")
    assert csv.returncode == 0, csv.stderr
    cells = csv_rows((workdir / "out.csv").read_text(encoding="utf-8"))
    assert cells["text"].tolist() == [f"'{t}" for t in HOSTILE[:-1]] + [HOSTILE[-1]]
    assert cells["id"].tolist()[0] == "'=id"
    for column in cells.columns:
        assert not cells[column].str.startswith(("=", "+", "-", "@")).any(), column
    jsonl = predict_cli(workdir, "model", "--input", "hostile.csv", "--format", "jsonl")
    assert [json.loads(line)["text"] for line in jsonl.stdout.splitlines()] == HOSTILE


# --- base_model stage: the same checks before anything is copied ----------------------------------------


def base_model_stage(tmp_path: Path, name: str) -> subprocess.CompletedProcess:
    params = deep_update(yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8")), {"model": {"name": name}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    result = call_main("stages.base_model", cwd=tmp_path)
    assert not (tmp_path / "data" / "base_model").exists()
    return result


@pytest.mark.parametrize("change, fragment", [
    (lambda m: truncate(m / "model.safetensors"), "model.safetensors is not a valid safetensors file"),
    (lambda m: randomise(m / "model.safetensors"), "model.safetensors is not a valid safetensors file"),
    (lambda m: (m / "tokenizer_config.json").unlink(), "no tokenizer_config.json"),
], ids=["truncated", "random", "no-tokenizer-config"])
def test_base_model_refuses_a_broken_local_model(sample_run, tmp_path, change, fragment):
    model = Path(shutil.copytree(sample_run.repo / "data/base_model", tmp_path / "my-bert"))
    change(model)
    result = base_model_stage(tmp_path, str(model))
    assert_one_error(result, "model.name", "my-bert", fragment)


def test_base_model_name_that_is_a_file_is_refused(sample_run, tmp_path):
    weights = shutil.copy(sample_run.repo / "data/base_model/model.safetensors", tmp_path / "model.safetensors")
    for name in (str(weights), "model.safetensors"):
        assert_one_error(base_model_stage(tmp_path, name), "model.name", "is a file, not a model directory")


# --- one copy function ------------------------------------------------------------------------------


def test_copy_model_dir_copies_model_files_only(tmp_path):
    source, target = tmp_path / "source", tmp_path / "target"
    for name, content in {"config.json": "{}", "model.safetensors": "w", "vocab.txt": "v", "pytorch_model.bin": "p",
                          ".git/HEAD": "h", "checkpoint-5/model.safetensors": "c", "1_Pooling/config.json": "{}",
                          "1_Pooling/extra.pt": "x"}.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(content)
    (source / "tokenizer.json").symlink_to(source / "vocab.txt")  # hub cache snapshots are symlinks to blobs
    (source / "vocab.txt").chmod(0o400)
    target.mkdir()
    copy_model_dir(source, target)
    copied = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert copied == ["1_Pooling/config.json", "config.json", "model.safetensors", "tokenizer.json", "vocab.txt"]
    assert not (target / "tokenizer.json").is_symlink() and (target / "tokenizer.json").read_text() == "v"
    assert (target / "vocab.txt").stat().st_mode & 0o200  # an ordinary, writable output file



def test_texts_are_prepared_for_mecab_like_the_tokenize_stage(workdir):
    """A NUL would end the text for MeCab: the words after it must still count, and the text is kept as given."""
    texts = ["よい\0最悪でした。二度と買いません。", "よい"]
    result = predict_cli(workdir, "model", "--format", "jsonl", stdin="\n".join(texts) + "\n")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in records] == texts
    assert records[0]["probabilities"] != records[1]["probabilities"]
    assert "replaced NUL characters with spaces in 1 texts" in result.stderr
