"""The embed stage: pooling, row order, precision, the per-text vector cache (on a tiny random BERT)."""
from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from numpy.lib.format import open_memmap
from transformers import BertConfig, BertForMaskedLM, BertModel

from stages.common.errors import UserError
from stages.common.hardware import resolve_precision
from stages.common.params import EmbedParams
from stages.embed import parse_args
from stages.modeling.embed_cache import VectorCache
from stages.modeling.encoder import (
    CACHE_FILE,
    Encoder,
    TokenTable,
    embed_splits,
    embed_table,
    load_encoder,
)

CPU = torch.device("cpu")
TINY_CONFIG = dict(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                   intermediate_size=64, max_position_embeddings=64, pad_token_id=0)


def save_model(directory, cls=BertModel, seed=0):
    torch.manual_seed(seed)
    cls(BertConfig(**TINY_CONFIG)).save_pretrained(str(directory), safe_serialization=True)
    return str(directory)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("tiny_bert"))


def random_sequences(count, seed=0, low=2, high=40):
    """`count` distinct token-id sequences ([CLS] ... [SEP]) of lengths in [low, high)."""
    rng = np.random.default_rng(seed)
    sequences, seen = [], set()
    while len(sequences) < count:
        seq = [2, *rng.integers(5, 120, size=int(rng.integers(low, high)) - 2).tolist(), 3]
        if tuple(seq) not in seen:
            seen.add(tuple(seq))
            sequences.append(seq)
    return sequences


def make_encoder(model_dir, **params) -> Encoder:
    embed = EmbedParams.from_project(device="cpu", **params)
    return Encoder(load_encoder(model_dir, embed.pooling, CPU), embed, CPU, resolve_precision(embed.precision, CPU))


def embed_all(encoder, sequences) -> np.ndarray:
    out = np.zeros((len(sequences), encoder.dim), dtype=np.float32)
    embed_table(encoder, TokenTable.from_lists(sequences), out, b"test")
    return out


def reference(model_dir, sequences, pooling):
    """Each text alone through the transformers model: no padding anywhere."""
    model = BertModel.from_pretrained(model_dir).eval()
    rows = []
    with torch.inference_mode():
        for seq in sequences:
            output = model(input_ids=torch.tensor([seq]))
            hidden = output.last_hidden_state[0]
            rows.append({"cls": hidden[0], "mean": hidden.mean(0), "pooler": output.pooler_output[0]}[pooling])
    return torch.stack(rows).numpy()


@pytest.mark.parametrize("pooling", ["cls", "mean", "pooler"])
@pytest.mark.parametrize("packed", [True, False])
def test_batched_vectors_equal_each_text_alone(model_dir, pooling, packed):
    """Padding (padded path) or packing never leaks into a text's vector; rows come back in input order."""
    sequences = random_sequences(50)
    encoder = make_encoder(model_dir, pooling=pooling, precision="fp32", batch_size=16, max_tokens=256)
    if not packed:
        encoder.packed = None  # the fallback path used for non-BERT architectures
    vectors = embed_all(encoder, sequences)
    np.testing.assert_allclose(vectors, reference(model_dir, sequences, pooling), atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_packed_vector_does_not_depend_on_the_batch(model_dir, precision):
    sequences = random_sequences(80, seed=1)
    encoder = make_encoder(model_dir, precision=precision, max_tokens=128)
    full = embed_all(encoder, sequences)
    subset = [3, 17, 40, 41, 79]
    alone = embed_all(encoder, [sequences[i] for i in subset])
    assert alone.tobytes() == full[subset].tobytes()


def test_bf16_close_to_fp32(model_dir):
    sequences = random_sequences(60, seed=2)
    fp32 = embed_all(make_encoder(model_dir, precision="fp32"), sequences)
    bf16 = embed_all(make_encoder(model_dir, precision="bf16"), sequences)
    cosine = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cosine.min() > 0.98 and cosine.mean() > 0.99


def test_normalize(model_dir):
    sequences = random_sequences(20, seed=3)
    plain = embed_all(make_encoder(model_dir, pooling="mean"), sequences)
    unit = embed_all(make_encoder(model_dir, pooling="mean", normalize=True), sequences)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(unit, plain / np.linalg.norm(plain, axis=1, keepdims=True), atol=1e-5)


def test_untrained_pooler_is_refused(tmp_path):
    masked_lm = save_model(tmp_path / "mlm", cls=BertForMaskedLM)  # no pooler weights in an MLM checkpoint
    with pytest.raises(UserError, match="pooler"):
        load_encoder(masked_lm, "pooler", CPU)
    load_encoder(masked_lm, "cls", CPU)


def test_token_table_from_saved_dataset(tmp_path):
    sequences = random_sequences(30, seed=4)
    datasets.Dataset.from_dict({"input_ids": sequences}).save_to_disk(str(tmp_path / "ds"))
    table = TokenTable.from_dataset(datasets.load_from_disk(str(tmp_path / "ds")))
    assert [table[i].tolist() for i in range(len(table))] == sequences


def as_splits(train, valid):
    return datasets.DatasetDict({"train": datasets.Dataset.from_dict({"input_ids": train}),
                                 "valid": datasets.Dataset.from_dict({"input_ids": valid})})


def run_embed(model_dir, splits, out_dir, cache_dir, use_cache=True, max_length=64, **params):
    embed = EmbedParams.from_project(device="cpu", cache_dir=str(cache_dir), **params)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = embed_splits(splits, model_dir, embed, out_dir, max_length, use_cache=use_cache)
    return counts, {name: np.load(out_dir / f"{name}.npy") for name in splits}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_appending_rows_embeds_only_new_texts(model_dir, tmp_path, precision):
    texts = random_sequences(500, seed=5)
    train, valid = texts[:400], texts[400:]
    cache = tmp_path / "cache"
    first, _ = run_embed(model_dir, as_splits(train, valid), tmp_path / "a", cache, precision=precision)
    assert first["train"]["embedded"] == 400 and first["valid"]["embedded"] == 100

    new_texts = random_sequences(4, seed=7, low=41, high=60)  # 1%, longer than any existing text
    train2 = train[:200] + new_texts + train[200:]
    again, vectors = run_embed(model_dir, as_splits(train2, valid), tmp_path / "b", cache, precision=precision)
    assert again["train"]["embedded"] == len(new_texts) and again["train"]["from_cache"] == 400
    assert again["valid"]["embedded"] == 0 and again["valid"]["from_cache"] == 100

    _, fresh = run_embed(model_dir, as_splits(train2, valid), tmp_path / "c", cache, use_cache=False, precision=precision)
    for name in ("train", "valid"):
        assert vectors[name].tobytes() == fresh[name].tobytes()


@pytest.mark.parametrize("change", [{"pooling": "mean"}, {"normalize": True}, {"precision": "bf16"},
                                    {"max_length": 32}, {"model": 1}])
def test_cache_is_invalidated_by_any_key_change(model_dir, tmp_path, change):
    texts = random_sequences(50, seed=8)
    splits = as_splits(texts[:40], texts[40:])
    cache = tmp_path / "cache"
    base = {"pooling": "cls", "normalize": False, "precision": "fp32", "max_length": 64}
    run_embed(model_dir, splits, tmp_path / "a", cache, **base)
    changed = {**base, **change}
    directory = model_dir
    if changed.pop("model", None):  # same architecture, other weights
        directory = save_model(tmp_path / "other_model", seed=1)
    counts, _ = run_embed(directory, splits, tmp_path / "b", cache, **changed)
    assert counts["train"]["embedded"] == 40 and counts["train"]["from_cache"] == 0
    unchanged, _ = run_embed(model_dir, splits, tmp_path / "c", cache, **base)
    assert unchanged["train"]["embedded"] == 0


def test_cache_off(model_dir, tmp_path):
    texts = random_sequences(35, seed=10)
    splits = as_splits(texts[:30], texts[30:])
    cache = tmp_path / "cache"
    run_embed(model_dir, splits, tmp_path / "a", cache, cache=False)
    assert not (cache / CACHE_FILE).exists()
    run_embed(model_dir, splits, tmp_path / "b", cache)
    counts, _ = run_embed(model_dir, splits, tmp_path / "c", cache, use_cache=False)  # --no-cache
    assert counts["train"]["embedded"] == 30
    assert parse_args(["--no-cache"]).no_cache and not parse_args([]).no_cache


def test_duplicate_texts_are_embedded_once(model_dir, tmp_path):
    sequences = random_sequences(20, seed=12)
    out = np.zeros((40, 32), dtype=np.float32)
    counts = embed_table(make_encoder(model_dir), TokenTable.from_lists(sequences + sequences), out, b"test")
    assert counts["embedded"] == 20 and counts["duplicates"] == 20
    assert out[:20].tobytes() == out[20:].tobytes()


def test_cache_size_bound_drops_least_recently_used(tmp_path):
    dim, per_run = 64, 3000
    limit = 1 << 20
    rng = np.random.default_rng(0)
    keys = [[bytes([run]) + i.to_bytes(4, "big") for i in range(per_run)] for run in range(2)]
    for run in range(2):
        cache = VectorCache(tmp_path / CACHE_FILE, dim, limit)
        cache.store(keys[run], rng.standard_normal((per_run, dim)).astype(np.float32))
        cache.close()
    cache = VectorCache(tmp_path / CACHE_FILE, dim, limit)
    assert cache.size_bytes() > limit
    assert cache.evict() > 0
    assert cache.size_bytes() <= limit
    newest = dict(cache.lookup(keys[1]))
    oldest = dict(cache.lookup(keys[0]))
    assert len(newest) > len(oldest)
    cache.close()


def test_output_is_a_npy_memmap_in_row_order(model_dir, tmp_path):
    sequences = random_sequences(25, seed=13)
    encoder = make_encoder(model_dir, precision="fp32")
    out = open_memmap(tmp_path / "v.npy", mode="w+", dtype=np.float32, shape=(25, encoder.dim))
    embed_table(encoder, TokenTable.from_lists(sequences), out, b"test")
    del out
    np.testing.assert_allclose(np.load(tmp_path / "v.npy"), reference(model_dir, sequences, "cls"), atol=2e-5, rtol=1e-4)


@pytest.mark.slow  # three `dvc repro embed` / stage runs in a pipeline repo
def test_dvc_repro_after_appending_rows_embeds_only_new_texts(tmp_path):
    """The user's workflow: a fixed base model (local dir), append 1% rows to the CSV, `dvc repro embed`."""
    import re

    import pandas as pd
    from transformers import BertJapaneseTokenizer

    from stages.modeling.builtin import save_tokenizer, segment, train_wordpiece_vocab
    from tests.conftest import REPO, make_pipeline_repo, run

    csv = pd.read_csv(REPO / "data" / "sample" / "train.csv")
    model_dir = tmp_path / "local_model"
    model_dir.mkdir()
    tokenizer: BertJapaneseTokenizer = save_tokenizer(train_wordpiece_vocab(segment(csv["text"]), 500), model_dir, 64)
    torch.manual_seed(0)
    BertModel(BertConfig(**{**TINY_CONFIG, "vocab_size": len(tokenizer)})).save_pretrained(str(model_dir))
    repo = make_pipeline_repo(tmp_path / "repo", {"model": {"name": str(model_dir)},
                                                  "embed": {"precision": "fp32", "cache_dir": str(tmp_path / "cache")}})

    def embedded(stdout: str) -> int:
        return sum(int(n) for n in re.findall(r"(\d+) texts embedded", stdout))

    first = run(["dvc", "repro", "embed"], repo)
    assert embedded(first.stdout) == len(csv)
    count = len(csv) // 100  # 1% new texts, made of known words so that they tokenize to new id sequences
    new_rows = pd.DataFrame({"text": [csv["text"][i] + csv["text"][i + 1] for i in range(count)],
                             "label": csv["label"][:count].tolist()})
    pd.concat([csv, new_rows]).to_csv(repo / "data" / "sample" / "train.csv", index=False)
    second = run(["dvc", "repro", "embed"], repo)
    assert embedded(second.stdout) == len(new_rows)
    incremental = {name: (repo / "data" / "embeddings" / f"{name}.npy").read_bytes() for name in ("train", "valid")}
    run(["python", "-m", "stages.embed", "--no-cache"], repo)
    for name, data in incremental.items():
        assert (repo / "data" / "embeddings" / f"{name}.npy").read_bytes() == data


def test_auto_precision_is_bf16_on_fast_cpus_and_fp32_on_cuda():
    from stages.common.hardware import cpu_has_fast_bf16
    from stages.modeling.encoder import embed_dtype

    assert embed_dtype("auto", torch.device("cuda")) is None  # fp32: bf16 measured slower on an H200
    assert embed_dtype("bf16", torch.device("cuda")) == torch.bfloat16
    assert embed_dtype("fp32", torch.device("cpu")) is None
    assert embed_dtype("auto", torch.device("cpu")) == (torch.bfloat16 if cpu_has_fast_bf16() else None)
