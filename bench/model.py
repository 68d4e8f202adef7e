"""A BERT-base-shaped Japanese model with random weights, for speed benchmarks.

12 layers, hidden 768, 12 heads, vocab 32,000 (BertJapaneseTokenizer: MeCab + WordPiece trained on the
benchmark texts, padded with [unused] tokens to exactly 32,000), saved as safetensors.
Random weights are enough to measure speed and numerical agreement between precisions.
"""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import BertConfig, BertModel

from stages.modeling.builtin import save_tokenizer, segment, train_wordpiece_vocab

VOCAB_SIZE = 32000


def build_bert_base(texts: list[str], out_dir: Path, seed: int = 0) -> Path:
    """Create the model directory once; reuse it when it already exists."""
    out_dir = Path(out_dir)
    if (out_dir / "model.safetensors").is_file():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = train_wordpiece_vocab(segment(texts), VOCAB_SIZE)[:VOCAB_SIZE]
    vocab += [f"[unused{i}]" for i in range(VOCAB_SIZE - len(vocab))]
    tokenizer = save_tokenizer(vocab, out_dir, 512)
    config = BertConfig(vocab_size=VOCAB_SIZE, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                        intermediate_size=3072, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(str(out_dir), safe_serialization=True)
    return out_dir
