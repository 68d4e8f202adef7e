"""Sentence vectors from the headless encoder (AutoModel), one float32 .npy per split.

- BERT-shaped encoders run packed (packed_encoder.py): texts sorted by length and laid end to
  end, no padding, fixed-shape matrix multiplies, so a text's vector is the same whatever batch it
  lands in. Other architectures run in length-sorted, dynamically padded batches.
- bf16 on CPUs with AMX/AVX-512-BF16 (`embed.precision: auto`; fp32 on GPUs, where bf16 measured slower):
  the model is cast to bf16 (cheaper than autocast, which re-casts every weight on every call); fp16 (GPU)
  uses autocast.
- Vectors are written straight into a preallocated .npy (open_memmap) in the split's row order, and
  written pages are handed back to the OS as we go, so memory does not grow with the number of texts.
- Incremental: vectors are cached per text (embed_cache.py); a rerun after appending rows only
  embeds the new texts. Duplicate texts are embedded once.
"""
from __future__ import annotations

import logging
import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import datasets
import numpy as np
import torch
from numpy.lib.format import open_memmap
from tqdm.auto import tqdm
from transformers import AutoModel, PreTrainedModel
from transformers.utils import logging as hf_logging

from stages.common import threads
from stages.common.errors import UserError
from stages.common.hardware import resolve_device, resolve_precision
from stages.common.hashing import hash_directory
from stages.common.params import EmbedParams
from stages.modeling.batching import packed_batches, pad_batch, sorted_batches
from stages.modeling.embed_cache import VectorCache, namespace, text_key
from stages.modeling.packed_encoder import PackedBert, supports_packing

CACHE_FILE = "vectors.sqlite"
RELEASE_BYTES = 64 << 20  # hand written output pages back to the OS after this many bytes


@dataclass
class TokenTable:
    """Token-id sequences without one Python list per text: the ids of each Arrow chunk end to end.

    From a saved dataset the arrays are zero-copy views of the memory-mapped Arrow file.
    """
    chunks: list[np.ndarray]   # token ids of each chunk, end to end
    chunk_of_row: np.ndarray   # int32, which chunk holds row i
    starts: np.ndarray         # int64, where row i starts in its chunk
    lengths: np.ndarray        # int64, tokens of row i

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, row: int) -> np.ndarray:
        start = self.starts[row]
        return self.chunks[self.chunk_of_row[row]][start:start + self.lengths[row]]

    @classmethod
    def from_lists(cls, sequences: list[list[int]]) -> "TokenTable":
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        values = np.fromiter((t for s in sequences for t in s), dtype=np.int64, count=int(lengths.sum()))
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(lengths) else lengths
        return cls([values], np.zeros(len(lengths), dtype=np.int32), starts, lengths)

    @classmethod
    def from_dataset(cls, split: datasets.Dataset, column: str = "input_ids") -> "TokenTable":
        if split._indices is not None:  # a selected/shuffled view: materialise the row order first
            split = split.flatten_indices()
        chunks, chunk_ids, starts, lengths = [], [], [], []
        for number, array in enumerate(split.data.column(column).chunks):
            offsets = array.offsets.to_numpy().astype(np.int64)
            chunks.append(array.values.to_numpy(zero_copy_only=False))
            starts.append(offsets[:-1])
            lengths.append(np.diff(offsets))
            chunk_ids.append(np.full(len(array), number, dtype=np.int32))
        if not chunks:
            return cls.from_lists([])
        return cls(chunks, np.concatenate(chunk_ids), np.concatenate(starts), np.concatenate(lengths))


def load_encoder(model_dir: str, pooling: str, device: torch.device) -> PreTrainedModel:
    """The headless encoder. transformers prints a LOAD REPORT of the pretraining heads it drops (e.g. `cls.*`) and
    of a pooler the checkpoint lacks: expected for an encoder, so it is silenced for this call only, and encoder
    weights that are missing or of another size are shown as one warning."""
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = AutoModel.from_pretrained(model_dir, output_loading_info=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    surprising = [f"missing: {k}" for k in sorted(info.get("missing_keys", ())) if not k.startswith("pooler.")] + [
        f"size mismatch: {k[0] if isinstance(k, tuple) else k}" for k in info.get("mismatched_keys", ())]
    if surprising:
        logging.getLogger(__name__).warning(
            "%s: weights that did not load as expected (%d): %s", model_dir, len(surprising),
            "; ".join(surprising[:20]) + (" ..." if len(surprising) > 20 else ""))
    if pooling == "pooler":
        fresh = [key for key in info["missing_keys"] if "pooler" in key]
        if fresh or getattr(model, "pooler", None) is None:
            raise UserError(f"embed.pooling: 'pooler' but {model_dir} has no trained pooler weights "
                            f"({', '.join(fresh) or 'no pooler layer'}), so its vectors would be random; use cls or mean")
    return model.to(device).eval()


def pool(output, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    hidden = output.last_hidden_state
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "pooler":
        return output.pooler_output
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


class Encoder:
    """A loaded model plus the way to batch and run it: packed for BERT, padded batches otherwise."""

    def __init__(self, model: PreTrainedModel, embed: EmbedParams, device: torch.device, dtype: Optional[torch.dtype]):
        self.embed = embed
        self.device = device
        self.dim = model.config.hidden_size
        # Casting the weights once beats autocast, which converts every weight again on every call.
        # fp16 keeps fp32 weights under autocast: fp16 residual streams can overflow.
        self.autocast = dtype if dtype == torch.float16 else None
        self.model = model.to(dtype) if dtype == torch.bfloat16 else model
        self.packed = PackedBert(self.model, embed.max_tokens) if supports_packing(model) else None
        self.precision = str(dtype).removeprefix("torch.") if dtype else "float32"
        self.threads = self.cpu_threads()  # part of the cache key: the last bits of a vector may depend on it

    def cpu_threads(self) -> int:
        return torch.get_num_threads() if self.device.type == "cpu" else 0

    def describe(self) -> dict:
        """What decides the vectors besides the text and the model files (part of the cache key)."""
        facts = {"pooling": self.embed.pooling, "normalize": self.embed.normalize, "precision": self.precision,
                 "autocast": bool(self.autocast), "device": self.device.type, "torch": torch.__version__,
                 "threads": self.threads,
                 "packed": self.packed is not None, "max_tokens": self.embed.max_tokens}
        if self.packed is None:  # padded batches: composition changes the last bits, so key on it too
            facts["batch_size"] = self.embed.batch_size
        return facts

    def batches(self, lengths: np.ndarray) -> Iterator[np.ndarray]:
        if self.packed is not None:
            return packed_batches(lengths, self.embed.max_tokens, self.embed.batch_size)
        return sorted_batches(lengths, self.embed.batch_size, self.embed.max_tokens)

    def encode(self, sequences: list[np.ndarray]) -> np.ndarray:
        """float32 vectors for one batch (from `batches`), normalised if asked."""
        autocast = (torch.autocast(self.device.type, dtype=self.autocast) if self.autocast
                    else torch.autocast(self.device.type, enabled=False))
        with torch.inference_mode(), autocast:
            if self.packed is not None:
                vectors = self.packed.encode(sequences, self.embed.pooling)
            else:
                ids, mask = pad_batch(sequences, self.model.config.pad_token_id or 0)
                ids, mask = ids.to(self.device), mask.to(self.device)
                vectors = pool(self.model(input_ids=ids, attention_mask=mask), mask, self.embed.pooling).float()
            if self.embed.normalize:
                vectors = torch.nn.functional.normalize(vectors, dim=-1)
        return vectors.cpu().numpy()


def release_pages(out: np.ndarray) -> None:
    """Write dirty pages of a memmap to disk and drop them from this process (they stay in the page cache)."""
    if isinstance(out, np.memmap):
        out.flush()
        handle = getattr(out, "_mmap", None)
        if handle is not None and hasattr(mmap, "MADV_DONTNEED"):
            handle.madvise(mmap.MADV_DONTNEED)


def embed_table(encoder: Encoder, table: TokenTable, out: np.ndarray, space: bytes,
                cache: Optional[VectorCache] = None, desc: str = "embed") -> dict:
    """Fill `out[i]` with the vector of `table[i]`; returns counts (embedded = texts run through the model)."""
    keys = [text_key(space, table[row]) for row in range(len(table))]
    first_row: dict[bytes, int] = {}
    duplicates: list[tuple[int, int]] = []
    for row, key in enumerate(keys):
        if key in first_row:
            duplicates.append((row, first_row[key]))
        else:
            first_row[key] = row
    done = np.zeros(len(table), dtype=bool)
    from_cache = 0
    if cache is not None:
        for key, vector in cache.lookup(first_row):
            out[first_row[key]] = vector
            done[first_row[key]] = True
            from_cache += 1
    todo = np.array([row for row in first_row.values() if not done[row]], dtype=np.int64)
    written = 0
    with tqdm(total=len(todo), desc=desc, unit=" texts", mininterval=2, smoothing=0.1) as bar:
        for batch in encoder.batches(table.lengths[todo]):
            threads.refresh()  # concurrent pipeline runs share the cores (stages/common/threads.py)
            rows = todo[batch]
            vectors = encoder.encode([table[row] for row in rows])
            out[rows] = vectors
            # Cached under the thread count of the key only: another run may have changed this stage's share.
            if cache is not None and encoder.cpu_threads() == encoder.threads:
                cache.store([keys[row] for row in rows], vectors)
            written += vectors.nbytes
            if written >= RELEASE_BYTES:
                release_pages(out)
                written = 0
            bar.update(len(rows))
    for row, source in duplicates:
        out[row] = out[source]
    release_pages(out)
    return {"texts": len(table), "embedded": len(todo), "from_cache": from_cache, "duplicates": len(duplicates)}


def cache_namespace(model_dir: str, encoder: Encoder, max_length: int) -> bytes:
    return namespace({"model_files": hash_directory(model_dir), "max_length": max_length, **encoder.describe()})


def embed_dtype(precision: str, device: torch.device):
    """As the train stage's choice, except `auto` on CUDA is fp32: measured on an H200, bf16 inference was
    slower than fp32 at these batch sizes (launch-bound; the casts add kernels), for sentence-transformers too."""
    if precision == "auto" and device.type == "cuda":
        return None
    return resolve_precision(precision, device, "embed.precision")


def embed_splits(tokenized: datasets.DatasetDict, model_dir: str, embed: EmbedParams, out_dir: Path,
                 max_length: int, use_cache: bool = True) -> dict:
    device = resolve_device(embed.device)
    dtype = embed_dtype(embed.precision, device)
    encoder = Encoder(load_encoder(model_dir, embed.pooling, device), embed, device, dtype)
    space = cache_namespace(model_dir, encoder, max_length)
    cache = None
    if use_cache and embed.cache:
        cache = VectorCache(Path(embed.cache_dir) / CACHE_FILE, encoder.dim, embed.cache_max_mb << 20)
    counts = {}
    try:
        for name, split in tokenized.items():
            table = TokenTable.from_dataset(split)
            out = open_memmap(out_dir / f"{name}.npy", mode="w+", dtype=np.float32, shape=(len(table), encoder.dim))
            counts[name] = embed_table(encoder, table, out, space, cache, desc=f"embed {name}")
            counts[name]["shape"] = out.shape
            del out
        if cache is not None:
            evicted = cache.evict()
            if evicted:
                print(f"embed: cache over embed.cache_max_mb ({embed.cache_max_mb}); dropped {evicted} least recently used vectors")
    finally:
        if cache is not None:
            cache.close()
    return counts
