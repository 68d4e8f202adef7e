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


def pair_texts(split: datasets.Dataset) -> list[str] | None:
    return list(split[PAIR]) if has_pairs(split) else None
