"""embed stage: sentence vectors of every split from the base model's encoder, one float32 .npy per split.

How (packing, bf16, the per-text cache): stages/modeling/encoder.py.
"""
from __future__ import annotations

import argparse
import sys

import datasets

from stages.common.errors import stage_entry
from stages.common.outputs import atomic_dir
from stages.common.params import load_params
from stages.common.paths import check_outputs
from stages.common.threads import shares_cores
from stages.dataset.windows import first_windows
from stages.modeling.encoder import embed_splits


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.embed", description="Sentence vectors of every split.")
    parser.add_argument("--no-cache", action="store_true",
                        help="neither read nor write the per-text vector cache (same as embed.cache: false)")
    return parser.parse_args(argv)


@stage_entry
@shares_cores
def main() -> None:
    args = parse_args(sys.argv[1:])
    params = load_params()
    check_outputs(params, "embed")
    # sliding_window: the first window of each document, so there is one vector per document.
    tokenized = first_windows(datasets.load_from_disk(params.paths.tokenized))
    with atomic_dir(params.paths.embeddings) as tmp:
        counts = embed_splits(tokenized, params.paths.base_model, params.embed, tmp, params.tokenize.max_length,
                              use_cache=not args.no_cache)
    for name, facts in counts.items():
        rows, dim = facts["shape"]
        print(f"embed: {name}: {rows} x {dim} ({params.embed.pooling} pooling) -> {params.paths.embeddings}/{name}.npy; "
              f"{facts['embedded']} texts embedded, {facts['from_cache']} from cache, {facts['duplicates']} duplicates")

if __name__ == "__main__":
    main()
