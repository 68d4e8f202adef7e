"""Length-sorted batches with dynamic padding, for inference over many texts.

Sorting by length means each batch pads only to its own longest text, not to max_length; the
caller scatters results back with the returned row indices, so output order equals input order.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch


def sorted_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None) -> Iterator[np.ndarray]:
    """Row indices per batch, longest first (so a memory problem shows at once, not at the end).

    A batch holds at most `batch_size` rows and, if given, at most `max_tokens` padded tokens.
    """
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    start = 0
    while start < len(order):
        stop = min(start + batch_size, len(order))
        if max_tokens is not None:
            longest = int(lengths[order[start]])
            stop = min(stop, start + max(1, max_tokens // max(1, longest)))
        yield order[start:stop]
        start = stop


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) padded on the right to the longest sequence of the batch."""
    width = max(len(s) for s in sequences)
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = seq
        mask[row, :len(seq)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


def packed_batches(lengths: Sequence[int], max_tokens: int, max_rows: int) -> Iterator[np.ndarray]:
    """Row indices per batch for packed (unpadded) encoding, longest first.

    A batch holds at most `max_rows` rows whose lengths sum to at most `max_tokens` (a single longer
    row gets a batch of its own). Rows of a batch are sorted by length, longest first.
    """
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    batch: list[int] = []
    tokens = 0
    for row in order:
        length = int(lengths[row])
        if batch and (tokens + length > max_tokens or len(batch) >= max_rows):
            yield np.asarray(batch)
            batch, tokens = [], 0
        batch.append(int(row))
        tokens += length
    if batch:
        yield np.asarray(batch)
