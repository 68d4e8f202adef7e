"""The unlabelled texts the builtin model is pretrained on.

The training split's texts, plus (model.pretrain_test_texts) the texts of data.test_csv, plus the lines of an
optional model.pretrain_corpus file. Never the valid split (scored once, at the end) nor the dev split (which picks
the checkpoint): a model pretrained on their texts would have seen the data it is judged or selected on, so corpus
lines equal to one of their texts are left out too, and counted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import datasets

from stages.common.errors import UserError

HELD_OUT_SPLITS = ("valid", "dev")


def read_corpus(path: str) -> list[str]:
    """Non-blank lines of a UTF-8 text file (a BOM is allowed), one text per line."""
    file = Path(path).expanduser()
    if not file.is_file():
        what = "a folder" if file.is_dir() else "not found"
        raise UserError(f"model.pretrain_corpus: {path} is {what}; give a UTF-8 text file with one text per line, "
                        f"or set model.pretrain_corpus: null")
    data = file.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise UserError(f"model.pretrain_corpus: {path} line {line} is not UTF-8; save the file as UTF-8 "
                        f"(one text per line)") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def pretraining_texts(split: datasets.DatasetDict, use_test: bool, corpus: Optional[str]) -> tuple[list[str], dict]:
    """(texts, counts per source) for masked-LM pretraining; duplicates kept once, in source order."""
    held_out = {text.strip() for name in HELD_OUT_SPLITS if name in split for text in split[name]["text"]}
    sources = {"train": list(split["train"]["text"])}
    if use_test and "test" in split:
        # Texts only: the model sees no label. A test text that is also a valid/dev text stays out.
        sources["test"] = [t for t in split["test"]["text"] if t.strip() not in held_out]
    dropped = 0
    if corpus:
        lines = read_corpus(corpus)
        sources["corpus"] = [line for line in lines if line not in held_out]
        dropped = len(lines) - len(sources["corpus"])
    texts = list(dict.fromkeys(text for part in sources.values() for text in part))
    counts = {f"pretrain_texts_{name}": len(part) for name, part in sources.items()}
    if corpus:
        counts["pretrain_corpus_lines_held_out"] = dropped
    return texts, counts
