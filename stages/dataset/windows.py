"""Documents longer than tokenize.max_length: head + tail, or overlapping windows (tokenize.long_text).

  truncate        the first max_length tokens (the tokenizer's own truncation; tokenizing.py, unchanged)
  head_tail       one sequence per document: its first H tokens and its last (max_length - specials - H) tokens
                  (Sun et al. 2019, "How to fine-tune BERT for text classification": head 128 + tail 382 at 512)
  sliding_window  several rows per document, each a window of max_length - specials tokens starting
                  (window - stride) tokens after the previous one, so consecutive windows share `stride` tokens;
                  a `document` column holds the row index of the window's document in its split. Training
                  trains on every window with its document's label (and its dev scores, which pick the kept
                  checkpoint, count windows); evaluate, submit and predict pool the windows' probabilities per
                  document (stages/modeling/window_pooling.py), so their files have one row per document.

Windows are cut from the document's token ids (tokenized once, untruncated, without special tokens) and get the
tokenizer's special tokens around them: the same route for fast tokenizers and slow ones such as
BertJapaneseTokenizer (the builtin model's), which have no overflowing-tokens support.

The strategy is recorded in the fine-tuned model's config.json (key `long_text`, only when it is not truncate),
so the predict command cuts and pools texts as the model was trained and evaluated.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Optional

import datasets
from transformers import PreTrainedTokenizerBase

from stages.common.errors import UserError

TRUNCATE, HEAD_TAIL, SLIDING_WINDOW = "truncate", "head_tail", "sliding_window"
STRATEGIES = (TRUNCATE, HEAD_TAIL, SLIDING_WINDOW)
CONFIG_KEY = "long_text"  # in config.json of a model trained with head_tail or sliding_window
# Sun et al. 2019 kept the first 128 and last 382 of BERT's 510 content tokens: the head's share when
# tokenize.head_tokens is null.
HEAD_SHARE = 128 / 510
DOCUMENT_COLUMN = "document"


@dataclass(frozen=True)
class LongText:
    strategy: str = TRUNCATE
    max_length: int = 512
    stride: int = 0
    head_tokens: Optional[int] = None
    window_pooling: str = "mean"

    @classmethod
    def from_params(cls, tokenize: Any) -> "LongText":
        return cls(tokenize.long_text, tokenize.max_length, tokenize.stride, tokenize.head_tokens,
                   tokenize.window_pooling)

    @classmethod
    def from_config(cls, config: Any, where: str) -> "LongText":
        """What a model was trained with (truncate for a model without the key, e.g. one trained before it)."""
        record = getattr(config, CONFIG_KEY, None)
        if record is None:
            return cls()
        try:
            long_text = cls(**record)
        except TypeError:
            long_text = None
        if long_text is None or long_text.strategy not in STRATEGIES:
            raise UserError(f"{where}: config.json's {CONFIG_KEY!r} is {record!r}, which this version cannot read; "
                            f"use the version of the project that trained the model")
        return long_text

    def record(self, config: Any) -> None:
        """Write the strategy into a model config before it is saved; truncate leaves config.json as it was."""
        if self.strategy != TRUNCATE:
            setattr(config, CONFIG_KEY, asdict(self))


def special_tokens(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """(ids before, ids after) the text that the tokenizer adds to one sequence, e.g. ([CLS], [SEP])."""
    probe = tokenizer.unk_token or "a"
    bare = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if bare and full[start:start + len(bare)] == bare:
            return full[:start], full[start + len(bare):]
    raise UserError(f"the tokenizer's special tokens could not be found around a text ({full} for {bare}); "
                    f"use tokenize.long_text: truncate with this model")


def content_tokens(long_text: LongText, n_special: int) -> int:
    """Tokens of the document per sequence (max_length less the special tokens), checked against stride and
    head_tokens, which the params schema can check only without the tokenizer's special tokens."""
    content = long_text.max_length - n_special
    where = f"tokenize.max_length {long_text.max_length} minus {n_special} special tokens"
    if long_text.strategy == SLIDING_WINDOW and long_text.stride >= content:
        raise UserError(f"tokenize.stride: {long_text.stride} leaves no new tokens per window: a window holds {content} "
                        f"tokens ({where}); set tokenize.stride between 0 and {content - 1}")
    if long_text.strategy == HEAD_TAIL and (long_text.head_tokens or 0) > content:
        raise UserError(f"tokenize.head_tokens: {long_text.head_tokens} is more than the {content} tokens a sequence "
                        f"holds ({where}); set it between 0 and {content}, or null for {HEAD_SHARE:.0%} of them")
    return content


def head_size(long_text: LongText, content: int) -> int:
    return long_text.head_tokens if long_text.head_tokens is not None else round(content * HEAD_SHARE)


def cut(ids: list[int], long_text: LongText, content: int) -> list[list[int]]:
    """The token-id pieces (no special tokens) that stand for one document under its strategy."""
    if len(ids) <= content:
        return [ids]
    if long_text.strategy == HEAD_TAIL:
        head = head_size(long_text, content)
        return [ids[:head] + ids[len(ids) - (content - head):]]
    if long_text.strategy == SLIDING_WINDOW:
        step = content - long_text.stride
        windows = []
        for start in range(0, len(ids), step):  # the last window is the first that reaches the end
            windows.append(ids[start:start + content])
            if start + content >= len(ids):
                break
        return windows
    return [ids[:content]]


def encode_documents(tokenizer: PreTrainedTokenizerBase, texts: list[str], long_text: LongText,
                     specials: Optional[tuple[list[int], list[int]]] = None) -> tuple[dict[str, list], list[int]]:
    """(tokenizer-style columns of every sequence, the index in `texts` of each sequence's document)."""
    before, after = specials or special_tokens(tokenizer)
    content = content_tokens(long_text, len(before) + len(after))
    bare = tokenizer(texts, add_special_tokens=False, truncation=False)["input_ids"]
    columns: dict[str, list] = {"input_ids": [], "full_length": []}
    documents: list[int] = []
    for document, ids in enumerate(bare):
        for piece in cut(ids, long_text, content):
            columns["input_ids"].append(before + piece + after)
            columns["full_length"].append(len(ids) + len(before) + len(after))
            documents.append(document)
    # The columns a tokenizer call returns for one sequence: all tokens attended, one segment.
    keys = tokenizer("a").keys()
    if "token_type_ids" in keys:
        columns["token_type_ids"] = [[0] * len(ids) for ids in columns["input_ids"]]
    if "attention_mask" in keys:
        columns["attention_mask"] = [[1] * len(ids) for ids in columns["input_ids"]]
    return columns, documents


def tokenize_documents(split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, long_text: LongText,
                       texts: list[str]) -> datasets.Dataset:
    """The split tokenized under head_tail or sliding_window: its columns repeated on each of a document's rows,
    plus the token columns, `length`, `full_length` and (sliding_window) `document`."""
    specials = special_tokens(tokenizer)
    content_tokens(long_text, len(specials[0]) + len(specials[1]))  # refuse a bad stride before any work

    def encode(batch: dict, rows: list[int]) -> dict:
        columns, documents = encode_documents(tokenizer, [texts[i] for i in rows], long_text, specials)
        out = {name: [values[d] for d in documents] for name, values in batch.items()}
        out.update(columns)
        out["length"] = [len(ids) for ids in columns["input_ids"]]
        if long_text.strategy == SLIDING_WINDOW:
            out[DOCUMENT_COLUMN] = [rows[d] for d in documents]
        return out

    fingerprint = f"{split._fingerprint}-tokenize-{'-'.join(str(v) for v in asdict(long_text).values())}"
    return split.map(encode, batched=True, batch_size=1000, with_indices=True, keep_in_memory=True,
                     remove_columns=split.column_names, desc="tokenize", new_fingerprint=fingerprint)


def document_report(tokenized: datasets.Dataset, long_text: LongText, documents: int) -> dict:
    """The tokenize report's keys for head_tail and sliding_window, counted per document, not per row."""
    full = tokenized["full_length"]
    if DOCUMENT_COLUMN in tokenized.column_names:
        first = {}
        for row, document in enumerate(tokenized[DOCUMENT_COLUMN]):
            first.setdefault(document, row)
        full = [full[row] for row in first.values()]
    long_documents = sum(length > long_text.max_length for length in full)
    # sliding_window drops no token; head_tail drops the middle of every long document.
    cut_documents = long_documents if long_text.strategy == HEAD_TAIL else 0
    return {"texts": documents, "truncated": cut_documents, "truncated_rate": round(cut_documents / max(1, documents), 6),
            "strategy": long_text.strategy, "long_documents": long_documents, "windows": len(tokenized)}


def first_windows(tokenized: datasets.DatasetDict) -> datasets.DatasetDict:
    """One row per document: the first window of each (the embed stage's frozen vectors and the baselines that
    read them stay one per document; the rest of a long document is not embedded)."""
    out = {}
    for name, split in tokenized.items():
        if DOCUMENT_COLUMN not in split.column_names:
            out[name] = split
            continue
        documents = split[DOCUMENT_COLUMN]
        keep = [row for row, document in enumerate(documents) if row == 0 or documents[row - 1] != document]
        out[name] = split.select(keep)
    return datasets.DatasetDict(out)


def encode_texts(tokenizer: PreTrainedTokenizerBase, texts: list[str], long_text: LongText,
                 max_length: int) -> tuple[list[list[int]], Optional[list[int]]]:
    """head_tail or sliding_window: (token ids per sequence, each sequence's index in `texts`, or None for
    head_tail's one sequence per text), cut as the tokenize stage cuts them (the predict command's route)."""
    columns, documents = encode_documents(tokenizer, texts, replace(long_text, max_length=max_length))
    return columns["input_ids"], documents if long_text.strategy == SLIDING_WINDOW else None
