"""Tokenize a DatasetDict with the base model's tokenizer (no padding on disk) and report truncation
and [UNK] rates.
"""
from __future__ import annotations

import datasets
from transformers import PreTrainedTokenizerBase


def tokenize_split(split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int) -> datasets.Dataset:
    def encode(batch: dict) -> dict:
        full = tokenizer(batch["text"], truncation=False)["input_ids"]
        encoded = tokenizer(batch["text"], truncation=True, max_length=max_length)
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        encoded["full_length"] = [len(ids) for ids in full]
        return encoded

    # keep_in_memory: never write cache files into the (DVC-tracked) split directory.
    # A fixed fingerprint: the closure cannot be hashed, and a random one would make reruns differ.
    fingerprint = f"{split._fingerprint}-tokenize-{max_length}"
    return split.map(encode, batched=True, batch_size=1000, keep_in_memory=True, desc="tokenize",
                     new_fingerprint=fingerprint)


def token_report(tokenized: datasets.Dataset, unk_id: int | None) -> dict:
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
    }


def tokenize_all(dataset_dict: datasets.DatasetDict, tokenizer: PreTrainedTokenizerBase, max_length: int) -> tuple[datasets.DatasetDict, dict]:
    tokenized, report = {}, {}
    for name, split in dataset_dict.items():
        encoded = tokenize_split(split, tokenizer, max_length)
        report[name] = token_report(encoded, tokenizer.unk_token_id)
        tokenized[name] = encoded.remove_columns(["text", "full_length"])
    return datasets.DatasetDict(tokenized), report
