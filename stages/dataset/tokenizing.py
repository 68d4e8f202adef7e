"""Tokenize a DatasetDict with the base model's tokenizer (no padding on disk) and report truncation,
[UNK] rates and what `stages.dataset.japanese.prepare_texts` changed to keep MeCab safe.
"""
from __future__ import annotations

import json
from pathlib import Path

import datasets
from transformers import PreTrainedTokenizerBase

from stages.common.errors import UserError
from stages.dataset.japanese import prepare_texts
from stages.dataset.pairs import PAIR, encode_pairs, has_pairs
from stages.dataset.windows import TRUNCATE, LongText, document_report, tokenize_documents

# Models whose position ids start after the padding index (RoBERTa's scheme): max_position_embeddings 514
# holds 512 tokens.
PADDING_OFFSET_MODELS = {"roberta", "xlm-roberta", "camembert", "xmod", "roberta-prelayernorm", "data2vec-text",
                         "longformer", "luke", "mpnet"}
MIN_MAX_LENGTH = 8  # tokenize.max_length's lower bound in the params schema


def position_limit(config: dict) -> int | None:
    """The most tokens a model (its config.json) has position embeddings for; None without absolute positions."""
    positions = config.get("max_position_embeddings")
    if not isinstance(positions, int) or config.get("position_biased_input", True) is False:
        return None  # e.g. DeBERTa-v2/v3: relative positions only, no fixed table to run past
    if config.get("model_type") in PADDING_OFFSET_MODELS:
        positions -= (config.get("pad_token_id") or 0) + 1
    return positions


def check_max_length(max_length: int, model_dir: str | Path, builtin: bool) -> None:
    """Refuse a tokenize.max_length the base model cannot embed, before any work (embed and train would crash).
    config.json is read as data: no model code runs for this check."""
    config_file = Path(model_dir) / "config.json"
    limit = position_limit(json.loads(config_file.read_text(encoding="utf-8"))) if config_file.is_file() else None
    if limit is None or max_length <= limit:
        return
    hint = " or raise model.builtin.max_position_embeddings" if builtin else ""
    raise UserError(f"tokenize.max_length: {max_length} is more than the {limit} positions the base model has "
                    f"(max_position_embeddings in {config_file}); set tokenize.max_length between "
                    f"{MIN_MAX_LENGTH} and {limit}{hint}")


def tokenize_split(split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int,
                   texts: list[str] | None = None, pairs: list[str] | None = None) -> datasets.Dataset:
    """`texts` (default: the split's own) are what the tokenizer reads, row for row; `pairs`: the second text
    of each row (sentence pairs, stages/dataset/pairs.py), which adds token_type_ids."""
    texts = list(split["text"]) if texts is None else texts

    def encode(batch: dict, rows: list[int]) -> dict:
        batch_texts = [texts[i] for i in rows]
        if pairs is None:
            full = tokenizer(batch_texts, truncation=False)["input_ids"]
            encoded = tokenizer(batch_texts, truncation=True, max_length=max_length)
        else:
            batch_pairs = [pairs[i] for i in rows]
            full = encode_pairs(tokenizer, batch_texts, batch_pairs, max_length, truncation=False)["input_ids"]
            encoded = dict(encode_pairs(tokenizer, batch_texts, batch_pairs, max_length))
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        encoded["full_length"] = [len(ids) for ids in full]
        return encoded

    # keep_in_memory: never write cache files into the (DVC-tracked) split directory.
    # A fixed fingerprint: the closure cannot be hashed, and a random one would make reruns differ.
    kind = "tokenize" if pairs is None else "tokenize-pairs"
    return split.map(encode, batched=True, batch_size=1000, with_indices=True, keep_in_memory=True,
                     desc=kind.replace("-", " "), new_fingerprint=f"{split._fingerprint}-{kind}-{max_length}")


def token_report(tokenized: datasets.Dataset, unk_id: int | None, prepared: dict[str, int] | None = None) -> dict:
    lengths = tokenized["length"]
    full = tokenized["full_length"]
    truncated = sum(f > n for f, n in zip(full, lengths))
    tokens = sum(lengths)
    unknown = 0 if unk_id is None else sum(ids.count(unk_id) for ids in tokenized["input_ids"])
    return {
        "texts": len(lengths),
        "truncated": truncated,
        "truncated_rate": round(truncated / max(1, len(lengths)), 6),
        "unk_rate": round(unknown / max(1, tokens), 6),
        "mean_tokens": round(tokens / max(1, len(lengths)), 3),
        "max_tokens_before_truncation": max(full) if full else 0,
        **(prepared or {}),
    }


def tokenize_all(dataset_dict: datasets.DatasetDict, tokenizer: PreTrainedTokenizerBase, max_length: int,
                 long_text: LongText | None = None) -> tuple[datasets.DatasetDict, dict]:
    """`long_text`: head_tail or sliding_window for texts over max_length (stages/dataset/windows.py)."""
    tokenized, report = {}, {}
    for name, split in dataset_dict.items():
        texts, prepared = prepare_texts(split["text"])
        if has_pairs(split):  # sentence pairs (stages/dataset/pairs.py); params.py refuses them with long_text
            pairs, prepared_pairs = prepare_texts(split[PAIR])
            encoded = tokenize_split(split, tokenizer, max_length, texts, pairs)
            prepared = {key: prepared[key] + prepared_pairs[key] for key in prepared}
            report[name] = token_report(encoded, tokenizer.unk_token_id, prepared)
        elif long_text is None or long_text.strategy == TRUNCATE:
            encoded = tokenize_split(split, tokenizer, max_length, texts)
            report[name] = token_report(encoded, tokenizer.unk_token_id, prepared)
        else:
            encoded = tokenize_documents(split, tokenizer, long_text, texts)
            report[name] = {**token_report(encoded, tokenizer.unk_token_id, prepared),
                            **document_report(encoded, long_text, len(split))}
        tokenized[name] = encoded.remove_columns([c for c in ("text", PAIR, "full_length") if c in encoded.column_names])
    return datasets.DatasetDict(tokenized), report
