"""BERT encoder forward over packed token streams: no padding, and the same numbers for a text whatever batch it is in.

The embed stage feeds many texts of different lengths. Instead of padding them into a rectangle, all
tokens of a batch are laid end to end in one (tokens, hidden) stream:

- token-wise work (embeddings, every Linear, LayerNorm, GELU) runs on that stream, always in blocks
  of exactly `block_tokens` rows (the last block filled with pad rows). A matrix multiply of a fixed
  shape computes each row the same way wherever it sits in the block, so a text's vector does not
  depend on which other texts share its batch. That is what makes cached vectors byte-identical to a
  fresh run (the vendor GEMM picks different kernels for different row counts, so varying shapes would
  change the last bits);
- attention runs per group of equal-length texts with `scaled_dot_product_attention` and no mask: no
  padded keys, so the attention of a text is a function of that text alone.

It also does less work than padded batches (no pad tokens) and keeps the matrix multiplies large.
Works for `BertModel`-shaped encoders (BERT, the builtin model, tohoku-nlp/bert-base-japanese-*);
`supports_packing` says whether a model qualifies, the embed stage falls back to padded batches otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertModel

# Row block of the pooler's dense layer (one row per text), fixed for the same reason as block_tokens.
POOLER_BLOCK = 64
# Attention pads each text to its length rounded up to this multiple: a width that depends on the text
# alone (so its result does not depend on the batch), and few distinct widths (so few attention calls).
ATTENTION_WIDTH_STEP = 16


@dataclass
class AttentionGroup:
    """Texts of one pack sharing an attention width."""
    gather: torch.Tensor  # (texts * width,) stream row of each padded slot (pad slots repeat a real row)
    mask: torch.Tensor    # (texts, 1, 1, width) bool, True for real keys
    real: torch.Tensor    # (real tokens,) padded slots that hold real tokens
    rows: torch.Tensor    # (real tokens,) their rows in the stream


def attention_width(length: int) -> int:
    return -(-length // ATTENTION_WIDTH_STEP) * ATTENTION_WIDTH_STEP


def attention_groups(lengths: list[int], starts: np.ndarray, device: torch.device) -> list[AttentionGroup]:
    by_width: dict[int, list[int]] = {}
    for text, length in enumerate(lengths):
        by_width.setdefault(attention_width(length), []).append(text)
    groups = []
    for width, texts in by_width.items():
        slots = np.arange(width)
        real = slots[None, :] < np.array([lengths[t] for t in texts])[:, None]      # (texts, width)
        gather = np.where(real, starts[texts][:, None] + slots[None, :], starts[texts][:, None])
        flat_real = np.flatnonzero(real.reshape(-1))
        groups.append(AttentionGroup(
            gather=torch.from_numpy(gather.reshape(-1)).to(device),
            mask=torch.from_numpy(real[:, None, None, :]).to(device),
            real=torch.from_numpy(flat_real).to(device),
            rows=torch.from_numpy(gather.reshape(-1)[flat_real]).to(device)))
    return groups


def supports_packing(model: nn.Module) -> bool:
    config = model.config
    return (type(model) is BertModel and getattr(config, "position_embedding_type", "absolute") == "absolute"
            and not getattr(config, "is_decoder", False))


def blocked_linear(layer: nn.Linear, x: torch.Tensor, block: int) -> torch.Tensor:
    """`layer(x)` computed on row blocks of exactly `block` rows (x.shape[0] is a multiple of `block`)."""
    if x.shape[0] == block:
        return layer(x)
    return torch.cat([layer(x[start:start + block]) for start in range(0, x.shape[0], block)])


class PackedBert:
    """Sentence vectors from a `BertModel` over packed, unpadded token streams."""

    def __init__(self, model: BertModel, block_tokens: int):
        if not supports_packing(model):
            raise ValueError(f"{type(model).__name__} is not a plain BertModel")
        self.model = model
        self.block = block_tokens
        self.pad_id = model.config.pad_token_id or 0
        self.heads = model.config.num_attention_heads
        self.head_dim = model.config.hidden_size // self.heads
        # query, key and value as one Linear: one matrix multiply instead of three per layer.
        self.qkv = []
        for layer in model.encoder.layer:
            parts = [layer.attention.self.query, layer.attention.self.key, layer.attention.self.value]
            fused = nn.Linear(parts[0].in_features, 3 * parts[0].out_features, device=parts[0].weight.device,
                              dtype=parts[0].weight.dtype)
            with torch.no_grad():
                fused.weight.copy_(torch.cat([p.weight for p in parts]))
                fused.bias.copy_(torch.cat([p.bias for p in parts]))
            self.qkv.append(fused.eval())

    def _embeddings(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        emb = self.model.embeddings
        hidden = emb.word_embeddings(ids) + emb.token_type_embeddings(torch.zeros_like(ids))
        hidden = hidden + emb.position_embeddings(positions)
        return emb.LayerNorm(hidden)

    def _attention(self, qkv: torch.Tensor, groups: list[AttentionGroup]) -> torch.Tensor:
        """Per group: gather the texts into a padded (texts, heads, width, head_dim) block, masked SDPA, scatter back."""
        context = qkv.new_zeros(qkv.shape[0], qkv.shape[1] // 3)
        for group in groups:
            count, width = group.mask.shape[0], group.mask.shape[-1]
            block = qkv.index_select(0, group.gather).view(count, width, 3, self.heads, self.head_dim)
            q, k, v = block.permute(2, 0, 3, 1, 4).unbind(0)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=group.mask)
            out = out.transpose(1, 2).reshape(count * width, -1)
            context.index_copy_(0, group.rows, out.index_select(0, group.real))
        return context

    def _layer(self, number: int, layer: nn.Module, hidden: torch.Tensor, groups: list[AttentionGroup]) -> torch.Tensor:
        attn = layer.attention
        qkv = blocked_linear(self.qkv[number], hidden, self.block)
        context = self._attention(qkv, groups)
        hidden = attn.output.LayerNorm(blocked_linear(attn.output.dense, context, self.block) + hidden)
        inner = layer.intermediate.intermediate_act_fn(blocked_linear(layer.intermediate.dense, hidden, self.block))
        return layer.output.LayerNorm(blocked_linear(layer.output.dense, inner, self.block) + hidden)

    def encode(self, sequences: Sequence[np.ndarray], pooling: str) -> torch.Tensor:
        """float32 vectors (len(sequences), hidden), one per sequence, in order."""
        lengths = [len(s) for s in sequences]
        device = self.model.embeddings.word_embeddings.weight.device
        total = sum(lengths)
        padded = -(-total // self.block) * self.block
        ids = np.full(padded, self.pad_id, dtype=np.int64)
        positions = np.zeros(padded, dtype=np.int64)
        starts = np.zeros(len(sequences), dtype=np.int64)
        offset = 0
        for row, seq in enumerate(sequences):
            starts[row] = offset
            ids[offset:offset + len(seq)] = seq
            positions[offset:offset + len(seq)] = np.arange(len(seq))
            offset += len(seq)
        groups = attention_groups(lengths, starts, device)
        hidden = self._embeddings(torch.from_numpy(ids).to(device), torch.from_numpy(positions).to(device))
        for number, layer in enumerate(self.model.encoder.layer):
            hidden = self._layer(number, layer, hidden, groups)

        first = torch.from_numpy(starts).to(device)
        if pooling == "cls":
            return hidden[first].float()
        if pooling == "mean":
            # Per text, a sum over its own rows only: independent of the other texts in the batch.
            return torch.stack([hidden[start:start + length].float().mean(0) for start, length in zip(starts.tolist(), lengths)])
        if pooling == "pooler":
            cls = hidden[first]
            rows = cls.shape[0]
            cls = torch.cat([cls, cls.new_zeros(-(-rows // POOLER_BLOCK) * POOLER_BLOCK - rows, cls.shape[1])])
            pooler = self.model.pooler
            return pooler.activation(blocked_linear(pooler.dense, cls, POOLER_BLOCK))[:rows].float()
        raise ValueError(f"unknown pooling {pooling!r}")
