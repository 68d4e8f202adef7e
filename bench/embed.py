"""Embedding throughput benchmark: the usual copied baseline vs the embed stage vs sentence-transformers.

    python -m bench.embed                  # JCoLA + chABSA from ../shared/data (else the sample data)
    python -m bench.embed --texts 2000 --rss-100k
    python -m bench.embed --device cuda    # on a GPU machine

Everything runs in one process on the same texts and the same BERT-base-shaped model (12 layers,
hidden 768, 12 heads, vocab 32,000, random weights; built once into .cache/bench/). Each timed path
goes from raw texts to vectors, tokenization included, as a user would run it. Printed per set:
texts/s, `ratio` lines, the peak memory each path adds (RSS, or CUDA allocations on a GPU), cosine of
each path's vectors against the project's fp32 vectors, and max |project fp32 - sentence-transformers fp32|.
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: bars would distort the timings
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SETS = {"JCoLA": "jcola_acceptability", "chABSA": "chabsa_sentiment"}
MODEL_DIR = REPO / ".cache" / "bench" / "bert-base-ja-random"


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak memory added while the block runs: RSS sampled every few ms, or CUDA's own peak counter."""

    def __init__(self, device: str):
        self.device = device
        self.peak = 0

    def __enter__(self) -> "PeakMemory":
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
            return self
        self.start = rss_bytes()
        self.peak = self.start
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.005)

    def __exit__(self, *exc) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self.running = False
            self.thread.join()
            self.peak = max(self.peak, rss_bytes())

    @property
    def added_mib(self) -> float:
        return (self.peak - self.start) / 2**20


def load_texts(name: str, count: int, seed: int) -> tuple[list[str], str]:
    path = SHARED_DATA / SETS[name] / "data.csv"
    source = str(path)
    if not path.is_file():
        path, source = REPO / "data" / "sample" / "train.csv", "sample data (shared data not found)"
    texts = pd.read_csv(path)["text"].dropna().astype(str)
    texts = texts.sample(min(count, len(texts)), random_state=seed) if count < len(texts) else texts
    return list(texts), source


def all_texts() -> list[str]:
    texts: list[str] = []
    for name in SETS:
        texts += load_texts(name, 10**9, 0)[0]
    return texts


def baseline(model, tokenizer, texts: list[str], device: str) -> np.ndarray:
    """The code users copy today (issue 4), unchanged apart from moving tensors to `device`."""
    import datasets

    ds = datasets.Dataset.from_dict(dict(tokenizer(texts, padding="max_length", max_length=77, truncation=True)))
    vectors = torch.empty((0, 768), device=device)
    with torch.no_grad():
        for i in range(0, len(ds), 100):
            out = model(torch.tensor(ds[i:i + 100]["input_ids"], device=device),
                        torch.tensor(ds[i:i + 100]["attention_mask"], device=device))
            vectors = torch.concat([vectors, out.pooler_output], axis=0)
    return vectors.cpu().numpy()


def project_encoder(precision: str, device: str, pooling: str = "cls"):
    """The embed stage's encoder, loaded as the stage loads it (outside the timed part, like the others)."""
    from stages.common.hardware import resolve_device, resolve_precision
    from stages.common.params import EmbedParams
    from stages.modeling.encoder import Encoder, load_encoder

    params = EmbedParams.from_project(pooling=pooling, precision=precision, device=device, cache=False)
    torch_device = resolve_device(params.device)
    return Encoder(load_encoder(str(MODEL_DIR), pooling, torch_device), params, torch_device,
                   resolve_precision(params.precision, torch_device))


def project(encoder, tokenizer, texts: list[str], workdir: Path) -> np.ndarray:
    """The embed stage's own path: tokenize (as the tokenize stage does), then embed_table into an .npy."""
    from numpy.lib.format import open_memmap

    from stages.modeling.encoder import TokenTable, embed_table

    table = TokenTable.from_lists(tokenizer(texts, truncation=True, max_length=512)["input_ids"])
    out = open_memmap(workdir / "vectors.npy", mode="w+", dtype=np.float32, shape=(len(table), encoder.dim))
    embed_table(encoder, table, out, b"bench", cache=None, desc="project")
    return np.array(out)


def sentence_transformer(bf16: bool, device: str):
    from sentence_transformers import SentenceTransformer, models

    transformer = models.Transformer(str(MODEL_DIR))
    pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode="cls")
    model = SentenceTransformer(modules=[transformer, pooling], device=device)
    return model.to(torch.bfloat16) if bf16 else model


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def timed(label: str, count: int, device: str, run: Callable[[], np.ndarray], results: dict) -> np.ndarray:
    if device == "cuda":
        torch.cuda.synchronize()
    with PeakMemory(device) as memory:
        start = time.perf_counter()
        vectors = run()
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    rate = count / seconds
    results[label] = rate
    where = "CUDA" if device == "cuda" else "RSS"
    print(f"  {label:<28} {rate:8.1f} texts/s  ({count} texts, {seconds:.1f} s, peak {where} +{memory.added_mib:.0f} MiB)",
          flush=True)
    return vectors


def bench_set(name: str, args: argparse.Namespace, tokenizer, device: str, workdir: Path) -> None:
    from transformers import AutoModel

    texts, source = load_texts(name, args.texts, args.seed)
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=512)["input_ids"]]
    print(f"\n== {name}: {len(texts)} texts from {source}; {np.mean(lengths):.1f} tokens on average "
          f"(max {max(lengths)}), device {device}, torch threads {torch.get_num_threads()}", flush=True)
    rates: dict[str, float] = {}
    encoders = {precision: project_encoder(precision, device) for precision in ("fp32", "auto")}
    for encoder in encoders.values():  # warm-up: first calls pay one-off kernel selection and allocation
        project(encoder, tokenizer, texts[:64], workdir)

    base_texts = texts[:args.baseline_texts]
    model = AutoModel.from_pretrained(str(MODEL_DIR)).to(device).eval()
    baseline(model, tokenizer, base_texts[:8], device)
    timed("baseline (fp32, pad 77)", len(base_texts), device, lambda: baseline(model, tokenizer, base_texts, device), rates)
    del model

    fp32 = timed("project fp32", len(texts), device, lambda: project(encoders["fp32"], tokenizer, texts, workdir), rates)
    auto = timed("project auto", len(texts), device, lambda: project(encoders["auto"], tokenizer, texts, workdir), rates)
    del encoders

    st32 = sentence_transformer(False, device)
    st32.encode(texts[:64])
    st_fp32 = timed("sentence-transformers fp32", len(texts), device, lambda: st32.encode(texts, convert_to_numpy=True), rates)
    del st32
    st16 = sentence_transformer(True, device)
    st16.encode(texts[:64])
    st_bf16 = timed("sentence-transformers bf16", len(texts), device,
                    lambda: st16.encode(texts, convert_to_numpy=True).astype(np.float32), rates)
    del st16

    print(f"  ratio project auto / baseline                  {rates['project auto'] / rates['baseline (fp32, pad 77)']:6.2f}x")
    print(f"  ratio project auto / sentence-transformers bf16 {rates['project auto'] / rates['sentence-transformers bf16']:6.2f}x  (target >= 1.2)")
    print(f"  ratio project fp32 / sentence-transformers fp32 {rates['project fp32'] / rates['sentence-transformers fp32']:6.2f}x  (target >= 1.0)")
    print(f"  ratio project fp32 / baseline                  {rates['project fp32'] / rates['baseline (fp32, pad 77)']:6.2f}x")
    print(f"  ratio sentence-transformers bf16 / baseline    {rates['sentence-transformers bf16'] / rates['baseline (fp32, pad 77)']:6.2f}x")
    for label, vectors in [("project auto", auto), ("sentence-transformers bf16", st_bf16), ("sentence-transformers fp32", st_fp32)]:
        cos = cosine_rows(vectors, fp32)
        print(f"  cosine vs project fp32: {label:<28} mean {cos.mean():.5f}  min {cos.min():.5f}")
    print(f"  max abs diff project fp32 vs sentence-transformers fp32: {np.abs(fp32 - st_fp32).max():.2e}  (target <= 1e-4)",
          flush=True)


def bench_rss_100k(args: argparse.Namespace, device: str, workdir: Path) -> None:
    """Peak RSS of the embed stage's path over 100,000 synthetic texts, above the loaded model's own footprint."""
    import datasets
    from numpy.lib.format import open_memmap

    from stages.common.hardware import resolve_device, resolve_precision
    from stages.common.params import EmbedParams
    from stages.modeling.embed_cache import VectorCache
    from stages.modeling.encoder import (
        CACHE_FILE,
        Encoder,
        TokenTable,
        cache_namespace,
        embed_table,
        load_encoder,
    )

    count = args.rss_texts
    rng = np.random.default_rng(args.seed)
    lengths = rng.integers(6, 17, size=count)
    ids = [[2, *rng.integers(5, 32000, size=n - 2).tolist(), 3] for n in lengths]
    # Saved and reloaded like the tokenize stage's output: memory-mapped Arrow, not Python lists.
    datasets.Dataset.from_dict({"input_ids": ids}).save_to_disk(str(workdir / "synthetic"))
    del ids
    split = datasets.load_from_disk(str(workdir / "synthetic"))
    params = EmbedParams.from_project(precision="auto", device=device, cache=True, cache_dir=str(workdir / "cache"))
    torch_device = resolve_device(device)
    before_model = rss_bytes()
    model = load_encoder(str(MODEL_DIR), params.pooling, torch_device)
    if args.rss_layers < model.config.num_hidden_layers:
        # Same width, so the same activation memory per token; fewer layers only make the run shorter.
        model.encoder.layer = model.encoder.layer[:args.rss_layers]
        model.config.num_hidden_layers = args.rss_layers
    encoder = Encoder(model, params, torch_device, resolve_precision(params.precision, torch_device))
    model_rss = rss_bytes()
    print(f"\n== RSS: {count} synthetic texts (6-16 tokens), {model.config.num_hidden_layers} layers, precision auto, "
          f"cache on, device {device}", flush=True)
    space = cache_namespace(str(MODEL_DIR), encoder, 512)
    cache = VectorCache(workdir / "cache" / CACHE_FILE, encoder.dim, params.cache_max_mb << 20)
    with PeakMemory("cpu") as memory:
        start = time.perf_counter()
        table = TokenTable.from_dataset(split)
        out = open_memmap(workdir / "synthetic.npy", mode="w+", dtype=np.float32, shape=(len(table), encoder.dim))
        counts = embed_table(encoder, table, out, space, cache, desc="embed 100k")
        del out
        seconds = time.perf_counter() - start
    cache.close()
    print(f"  {counts['embedded']} texts in {seconds:.0f} s ({counts['embedded'] / seconds:.0f} texts/s); "
          f"model footprint {(model_rss - before_model) / 2**20:.0f} MiB")
    print(f"  peak RSS above the model's footprint: {(memory.peak - model_rss) / 2**20:.0f} MiB (target < 1024 MiB)",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=1000, help="texts per set for the fast paths (default 1000)")
    parser.add_argument("--baseline-texts", type=int, default=200,
                        help="texts per set for the slow baseline (its texts/s does not depend on the count; default 200)")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--rss-100k", action="store_true", help="also measure peak RSS over 100,000 synthetic texts")
    parser.add_argument("--rss-texts", type=int, default=100_000, help="texts of the RSS measurement (default 100,000)")
    parser.add_argument("--rss-layers", type=int, default=12,
                        help="layers kept for the RSS measurement (same width and activation memory; fewer = faster)")
    parser.add_argument("--skip-sets", action="store_true", help="only the RSS measurement")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from bench.model import build_bert_base

    build_bert_base(all_texts(), MODEL_DIR)
    tokenizer = AutoTokenizer.from_pretrained(str(MODEL_DIR))
    print(f"model: {MODEL_DIR} (BERT-base shape, random weights); torch {torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in ([] if args.skip_sets else args.sets):
            bench_set(name, args, tokenizer, args.device, Path(tmp))
        if args.rss_100k:
            bench_rss_100k(args, args.device, Path(tmp))


if __name__ == "__main__":
    main()
