"""embed stage: sentence vectors from the headless encoder (AutoModel), one float32 .npy per split.

Length-sorted batches with dynamic padding, inference_mode and bf16 autocast where the hardware has
it; vectors are streamed into a preallocated .npy (open_memmap) in the split's row order.
"""
from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import torch
from numpy.lib.format import open_memmap
from tqdm.auto import tqdm
from transformers import AutoModel, PreTrainedModel

from stages.batching import pad_batch, sorted_batches
from stages.errors import UserError, stage_entry
from stages.hardware import resolve_device, resolve_precision
from stages.outputs import atomic_dir
from stages.params import EmbedParams, load_params


def load_encoder(model_dir: str, pooling: str, device: torch.device) -> PreTrainedModel:
    model, info = AutoModel.from_pretrained(model_dir, output_loading_info=True)
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


def embed_sequences(model: PreTrainedModel, sequences: list[list[int]], embed: EmbedParams, out: np.ndarray,
                    device: torch.device, dtype: torch.dtype | None, desc: str = "embed") -> None:
    """Write one vector per sequence into `out` (rows in input order)."""
    pad_id = model.config.pad_token_id or 0
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else torch.autocast(device.type, enabled=False)
    with torch.inference_mode(), autocast, tqdm(total=len(sequences), desc=desc, unit="text", mininterval=2) as bar:
        for rows in sorted_batches([len(s) for s in sequences], embed.batch_size):
            ids, mask = pad_batch([sequences[i] for i in rows], pad_id)
            output = model(input_ids=ids.to(device), attention_mask=mask.to(device))
            vectors = pool(output, mask.to(device), embed.pooling).float()
            if embed.normalize:
                vectors = torch.nn.functional.normalize(vectors, dim=-1)
            out[rows] = vectors.cpu().numpy()
            bar.update(len(rows))


def embed_splits(tokenized: datasets.DatasetDict, model_dir: str, embed: EmbedParams, out_dir: Path) -> dict:
    device = resolve_device(embed.device)
    dtype = resolve_precision(embed.precision, device, "embed.precision")
    model = load_encoder(model_dir, embed.pooling, device)
    shapes = {}
    for name, split in tokenized.items():
        sequences = split["input_ids"]
        out = open_memmap(out_dir / f"{name}.npy", mode="w+", dtype=np.float32,
                          shape=(len(sequences), model.config.hidden_size))
        embed_sequences(model, sequences, embed, out, device, dtype, desc=f"embed {name}")
        out.flush()
        del out
        shapes[name] = (len(sequences), model.config.hidden_size)
    return shapes


@stage_entry
def main() -> None:
    params = load_params()
    tokenized = datasets.load_from_disk(params.paths.tokenized)
    with atomic_dir(params.paths.embeddings) as tmp:
        shapes = embed_splits(tokenized, params.paths.base_model, params.embed, tmp)
    for name, shape in shapes.items():
        print(f"embed: {name}: {shape[0]} x {shape[1]} ({params.embed.pooling} pooling) -> {params.paths.embeddings}/{name}.npy")


if __name__ == "__main__":
    main()
