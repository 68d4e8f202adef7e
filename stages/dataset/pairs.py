"""Sentence pairs (data.text_pair_column): the second text of each row, tokenized with the first.

The model reads `[CLS] text [SEP] text_pair [SEP]` with token_type_ids 0 for the first part and 1 for the
second, the BERT pair layout. Tokenizers whose saved `model_input_names` omit token_type_ids (the builtin
BertJapaneseTokenizer among them) still build that layout, but must be asked for the ids explicitly.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the predict command imports this module: no datasets / transformers import at its start
    import datasets
    from transformers import PreTrainedTokenizerBase

PAIR = "text_pair"  # the second text's column in the split's DatasetDict


def has_pairs(split: datasets.Dataset) -> bool:
    return PAIR in split.column_names


def encode_pairs(tokenizer: PreTrainedTokenizerBase, texts: list[str], pairs: list[str], max_length: int,
                 truncation: bool = True) -> dict:
    """Token ids, attention mask and token_type_ids of each (text, text_pair); truncation takes tokens from the
    longer text first (the tokenizer's `longest_first`)."""
    kwargs = {"truncation": True, "max_length": max_length} if truncation else {"truncation": False}
    return tokenizer(texts, pairs, return_token_type_ids=True, **kwargs)


def tokenize_pair_split(split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int,
                        texts: list[str], pairs: list[str]) -> datasets.Dataset:
    """As tokenizing.tokenize_split, for pairs: input_ids, attention_mask, token_type_ids, length, full_length."""
    def encode(batch: dict, rows: list[int]) -> dict:
        first, second = [texts[i] for i in rows], [pairs[i] for i in rows]
        full = encode_pairs(tokenizer, first, second, max_length, truncation=False)["input_ids"]
        encoded = dict(encode_pairs(tokenizer, first, second, max_length))
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        encoded["full_length"] = [len(ids) for ids in full]
        return encoded

    fingerprint = f"{split._fingerprint}-tokenize-pairs-{max_length}"
    return split.map(encode, batched=True, batch_size=1000, with_indices=True, keep_in_memory=True,
                     desc="tokenize pairs", new_fingerprint=fingerprint)


def pair_texts(split: datasets.Dataset) -> list[str] | None:
    return list(split[PAIR]) if has_pairs(split) else None
