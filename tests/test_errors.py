"""The catalogue of bad inputs: each runs a stage as a user would and asserts on the one-line message.

Every case must exit non-zero, print exactly one `error:` line naming the file/column/row/param, and
leave no output behind.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, call_main, deep_update

SAMPLE = (REPO / "data/sample/train.csv").read_text(encoding="utf-8")


def stage(workdir: Path, name: str) -> subprocess.CompletedProcess:
    """The stage's own main() in this process (conftest's call_main); stage_process starts a real interpreter."""
    return call_main(f"stages.{name}", cwd=workdir)


def stage_process(workdir: Path, name: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TQDM_DISABLE="1")
    return subprocess.run([sys.executable, "-m", f"stages.{name}"], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300)


def setup(tmp_path: Path, csv: str | bytes | None = SAMPLE, params: dict | None = None,
          test_csv: str | None = None) -> Path:
    base = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    merged = deep_update(base, {"data": {"train_csv": "train.csv"}})
    if test_csv is not None:
        (tmp_path / "test.csv").write_text(test_csv, encoding="utf-8")
        merged = deep_update(merged, {"data": {"test_csv": "test.csv"}})
    if params:
        merged = deep_update(merged, params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(merged, allow_unicode=True), encoding="utf-8")
    if isinstance(csv, bytes):
        (tmp_path / "train.csv").write_bytes(csv)
    elif csv is not None:
        (tmp_path / "train.csv").write_text(csv, encoding="utf-8")
    return tmp_path


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def assert_no_split_output(workdir: Path) -> None:
    leftovers = [p.name for p in (workdir / "data").glob("*")] if (workdir / "data").exists() else []
    assert leftovers == [], leftovers


def labelled(rows: list[tuple[str, str]], header: str = "text,label") -> str:
    return header + "\n" + "".join(f"{t},{l}\n" for t, l in rows)


BALANCED = [(f"文{i}です", "a" if i % 2 else "b") for i in range(20)]

SPLIT_CASES = {
    "missing_csv": (None, {}, ["train.csv", "not found", "data.train_csv"]),
    "empty_csv": ("", {}, ["train.csv", "empty"]),
    "missing_text_column": (labelled(BALANCED, "body,label"), {}, ["column 'text' not found", "'body', 'label'",
                                                                   "data.text_column"]),
    "missing_label_column": (labelled(BALANCED, "text,category"), {}, ["column 'label' not found", "'category'"]),
    "empty_label_row": (labelled(BALANCED[:5] + [("ラベルなし", "")] + BALANCED[5:]), {}, ["empty label", "row 6"]),
    "label_not_in_names": (labelled(BALANCED + [("謎", "c")]), {"data": {"label_names": ["a", "b"]}},
                           ["'c'", "row 21", "data.label_names"]),
    "one_class": (labelled([(f"文{i}", "a") for i in range(10)]), {}, ["only one class", "'a'"]),
    "rare_class": (labelled(BALANCED + [("ひとつだけ", "c")]), {}, ["class 'c' (1 row)", "data.on_rare_class"]),
    "valid_size_range": (labelled(BALANCED), {"split": {"valid_size": 1.5}}, ["split.valid_size", "between 0 and 1"]),
    "unknown_key": (labelled(BALANCED), {"train": {"learning_rat": 0.1}},
                    ["unknown key 'train.learning_rat'", "did you mean 'train.learning_rate'"]),
    "nested_unknown_key": (labelled(BALANCED), {"model": {"builtin": {"hiden_size": 8}}},
                           ["model.builtin.hiden_size", "model.builtin.hidden_size"]),
    "wrong_type": (labelled(BALANCED), {"train": {"learning_rate": "fast"}}, ["train.learning_rate", "'fast'"]),
    "unknown_scheduler": (labelled(BALANCED), {"train": {"lr_scheduler_type": "cosine_restarts"}},
                          ["train.lr_scheduler_type", "cosine_with_restarts", "linear"]),
    "bad_pooling": (labelled(BALANCED), {"embed": {"pooling": "max"}}, ["embed.pooling", "'cls'", "'mean'", "'pooler'"]),
    "width_variants": (labelled(BALANCED + [("全角", "ａ"), ("全角２", "ａ")]), {}, ["'a' vs 'ａ'"]),
    "conflicting_labels": (labelled(BALANCED + [("文1です", "b")]), {}, ["different labels", "rows", "data.on_conflict"]),
    "undecodable": (b"text,label\n" + "文".encode("utf-8") + b"\xff\xfe\xfa\n" * 3, {}, ["byte offset", "utf-8-sig",
                                                                                       "cp932"]),
}


@pytest.mark.parametrize("case", sorted(SPLIT_CASES))
def test_split_rejects_bad_input(tmp_path, case):
    csv, params, fragments = SPLIT_CASES[case]
    workdir = setup(tmp_path, csv, params)
    assert_user_error(stage(workdir, "split"), *fragments)
    assert_no_split_output(workdir)


@pytest.mark.slow  # a real interpreter: seconds of imports
def test_a_real_split_process_exits_2_with_one_line(tmp_path):
    workdir = setup(tmp_path, labelled(BALANCED + [("謎", "c")]), {"data": {"label_names": ["a", "b"]}})
    result = stage_process(workdir, "split")
    assert_user_error(result, "'c'", "row 21", "data.label_names")
    assert result.stderr.startswith("error: ") and result.stdout == ""
    assert_no_split_output(workdir)


def test_test_csv_with_unseen_label(tmp_path):
    workdir = setup(tmp_path, labelled(BALANCED), test_csv=labelled([("新しい", "z"), ("古い", "a")]))
    assert_user_error(stage(workdir, "split"), "test.csv", "'z'", "row 1", "never occurs in training")
    assert_no_split_output(workdir)


@pytest.mark.slow  # a real interpreter, so that HF_HUB_OFFLINE=1 is read when huggingface_hub is imported
def test_hub_model_unreachable_names_offline_default(tmp_path):
    workdir = setup(tmp_path, params={"model": {"name": "no-such-org/no-such-bert"}})
    assert_user_error(stage_process(workdir, "base_model"), "no-such-org/no-such-bert", "model.name: builtin")
    assert not (workdir / "data/base_model").exists()


def test_missing_local_model_dir(tmp_path):
    workdir = setup(tmp_path, params={"model": {"name": "./models/bert"}})
    assert_user_error(stage(workdir, "base_model"), "./models/bert", "not found", "builtin")


def test_local_model_dir_without_tokenizer(tmp_path):
    from transformers import BertConfig, BertModel

    model_dir = tmp_path / "my-bert"
    BertModel(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                         intermediate_size=8)).save_pretrained(model_dir)
    workdir = setup(tmp_path, params={"model": {"name": str(model_dir)}})
    assert_user_error(stage(workdir, "base_model"), "my-bert", "tokenizer files missing")
    assert not (workdir / "data/base_model").exists()


def test_pickle_only_model_dir_is_refused(tmp_path):
    model_dir = tmp_path / "old-bert"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"model_type": "bert"}')
    (model_dir / "pytorch_model.bin").write_bytes(b"not loaded")
    workdir = setup(tmp_path, params={"model": {"name": str(model_dir)}})
    assert_user_error(stage(workdir, "base_model"), "safetensors", "pytorch_model.bin")


def test_params_not_yaml(tmp_path):
    workdir = setup(tmp_path)
    (workdir / "params.yaml").write_text("data:\n  train_csv: [unclosed\n")
    assert_user_error(stage(workdir, "split"), "params.yaml", "line", "not valid YAML")
