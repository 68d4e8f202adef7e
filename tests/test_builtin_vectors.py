"""The builtin model's head start: chiVe word vectors read from the ja-ginza wheel, whole-word masking, and the
texts it is pretrained on (never the valid or dev texts)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from stages.common.errors import UserError
from stages.common.params import BuiltinModelParams, DataParams, SplitParams
from stages.dataset.splitting import make_splits
from stages.modeling import word_vectors
from stages.modeling.builtin import (
    SPECIAL_TOKENS,
    WholeWordMasker,
    build_builtin,
    build_model,
    init_word_embeddings,
    save_tokenizer,
    segment,
    train_wordpiece_vocab,
)
from stages.modeling.pretraining_texts import pretraining_texts
from stages.modeling.word_vectors import load_chive, lookup_words, murmurhash64a, word_key


@pytest.fixture(scope="module")
def chive():
    return load_chive()


def cosine(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_word_key_is_spacys_hash():
    # spaCy's documentation: nlp.vocab.strings["coffee"] == 3197928453018144401
    assert word_key("coffee") == 3197928453018144401
    # Inputs of every tail length (0-7 bytes after the 8-byte blocks) give distinct 64-bit values.
    values = {murmurhash64a(b"abcdefghijklmnop"[:n], 1) for n in range(17)}
    assert len(values) == 17 and all(0 <= v < 2 ** 64 for v in values)


def test_the_wheels_word_list_hashes_to_its_keys(chive):
    """The wheel stores 598,796 strings and 480,443 vector keys, nearly all of them the hashes of those strings:
    about 80 % of the strings are keys under our hash (a wrong hash would find next to none)."""
    strings = json.loads((word_vectors.chive_vocab_dir() / "strings.json").read_text(encoding="utf-8"))
    sample = strings[::600]
    found = sum(word_key(s) in chive.key2row for s in sample)
    assert found >= 0.7 * len(sample), (found, len(sample))
    assert chive.vectors.shape == (20000, 300) and chive.vectors.dtype == np.float32


def test_related_words_are_closer_than_unrelated_ones(chive):
    v = chive.vector
    assert cosine(v("東京"), v("大阪")) > cosine(v("東京"), v("食べる")) + 0.2
    assert cosine(v("日本"), v("中国")) > cosine(v("日本"), v("食べる")) + 0.2
    assert cosine(v("猫"), v("犬")) > cosine(v("猫"), v("経済")) + 0.3


def test_inflected_and_variant_surfaces_find_their_base_form(chive):
    assert chive.row("食べ") is None and chive.row("コンピュータ") is None  # not chiVe words as written
    found = lookup_words(["食べ", "コンピュータ", "東京"], chive)
    assert found == {"食べ": chive.row("食べる"), "コンピュータ": chive.row("コンピューター"), "東京": chive.row("東京")}


TEXTS = ["猫が好きです。", "犬を飼っています。", "経済の話をした。", "株価が上がった。", "東京に行った。",
         "大阪に住んでいる。", "猫と犬が遊ぶ。", "経済と株価の関係。", "東京と大阪の違い。", "都庁と県庁に行った。"] * 3


def test_embedding_rows_start_from_chive(tmp_path):
    size = BuiltinModelParams.from_project(vocab_size=300, hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                                           intermediate_size=32, max_position_embeddings=64)
    words = segment(TEXTS)
    vocab = train_wordpiece_vocab(words, size.vocab_size)
    tokenizer = save_tokenizer(vocab, tmp_path, 64)
    model = build_model(size, len(vocab), tokenizer)
    before = model.get_input_embeddings().weight.detach().clone()
    facts = init_word_embeddings(model, vocab, words, size.seed)
    weight = model.get_input_embeddings().weight.detach()
    row = {piece: weight[i] for i, piece in enumerate(vocab)}
    assert cosine(row["猫"], row["犬"]) > cosine(row["猫"], row["経済"])
    assert cosine(row["東京"], row["大阪"]) > cosine(row["東京"], row["猫"])
    changed = (weight != before).any(dim=1)
    assert not changed[:len(SPECIAL_TOKENS)].any()  # [PAD], [MASK], ... keep their initialisation
    assert int(changed.sum()) == facts["word_vectors_rows"]["from_word"] + facts["word_vectors_rows"]["from_containing_words"]
    assert 0.5 * model.config.initializer_range < float(weight[changed].std()) < 2 * model.config.initializer_range
    # The MLM output layer shares the (now chiVe-based) input embeddings.
    assert model.cls.predictions.decoder.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def test_missing_wheel_is_one_user_error_with_the_pip_command(tmp_path, monkeypatch):
    size = BuiltinModelParams.from_project(word_vectors="chive")
    monkeypatch.setattr(word_vectors, "CHIVE_PACKAGE", "ja_ginza_not_installed")
    with pytest.raises(UserError) as err:
        build_builtin(TEXTS, tmp_path, size, steps=1)
    message = str(err.value)
    assert "pip install --no-deps ja-ginza==5.3.0" in message and "word_vectors: none" in message
    assert "\n" not in message
    assert not list(tmp_path.iterdir())  # stopped before writing anything


def test_a_package_without_the_vectors_names_what_it_found(tmp_path, monkeypatch):
    (tmp_path / "ja_ginza").mkdir()
    (tmp_path / "ja_ginza" / "__init__.py").write_text("raise ImportError('never imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UserError, match="without ja_ginza-5.3.0/vocab/vectors"):
        word_vectors.chive_vocab_dir()


def test_whole_word_masking_masks_all_pieces_of_a_word_or_none(tmp_path):
    words = segment(TEXTS)
    vocab = train_wordpiece_vocab(words, 60)  # small: most words split into several pieces
    tokenizer = save_tokenizer(vocab, tmp_path, 64)
    texts = ["東京都庁と大阪府庁と県庁の経済政策について話した。", "株価が上がった。"] * 8
    encoded = [{"input_ids": ids} for ids in tokenizer(texts)["input_ids"]]
    masker = WholeWordMasker(tokenizer, probability=0.3, seed=0)
    chosen_words = total_words = multi_piece_masked = 0
    mask_token = masked_pieces = 0
    for _ in range(20):
        batch = masker(encoded)
        for row, example in enumerate(encoded):
            ids = example["input_ids"]
            labels = batch["labels"][row, :len(ids)].tolist()
            assert labels[0] == -100 and labels[-1] == -100  # [CLS], [SEP]
            assert (batch["labels"][row, len(ids):] == -100).all()  # padding
            pieces = tokenizer.convert_ids_to_tokens(ids)
            word: list[int] = []
            for position in range(1, len(ids)):  # group positions into words; a new word starts without "##"
                if position < len(ids) - 1 and pieces[position].startswith("##"):
                    word.append(position)
                    continue
                if word:
                    flags = {labels[p] != -100 for p in word}
                    assert len(flags) == 1, (pieces, labels)
                    total_words += 1
                    chosen_words += flags.pop()
                    multi_piece_masked += len(word) > 1 and labels[word[0]] != -100
                word = [position]
            masked = [p for p in range(len(ids)) if labels[p] != -100]
            assert all(labels[p] == ids[p] for p in masked)
            masked_pieces += len(masked)
            mask_token += sum(int(batch["input_ids"][row, p]) == tokenizer.mask_token_id for p in masked)
    assert multi_piece_masked > 0
    assert 0.25 < chosen_words / total_words < 0.35
    assert 0.7 < mask_token / masked_pieces < 0.9  # 80 % [MASK]; the rest random or unchanged


def test_masks_are_drawn_afresh_each_step(tmp_path):
    vocab = train_wordpiece_vocab(segment(TEXTS), 300)
    tokenizer = save_tokenizer(vocab, tmp_path, 64)
    encoded = [{"input_ids": ids} for ids in tokenizer(TEXTS)["input_ids"]]
    masker = WholeWordMasker(tokenizer, probability=0.15, seed=0)
    first, second = masker(encoded)["labels"], masker(encoded)["labels"]
    assert not torch.equal(first, second)
    assert torch.equal(WholeWordMasker(tokenizer, 0.15, seed=0)(encoded)["labels"], first)  # seeded


def test_pretraining_texts_never_include_valid_or_dev_texts(tmp_path):
    rows = [f"{topic}の話、その{i}。" for i in range(20) for topic in ("猫", "経済")]
    train_csv = tmp_path / "train.csv"
    train_csv.write_text("text,label\n" + "".join(f"{t},{'a' if '猫' in t else 'b'}\n" for t in rows), encoding="utf-8")
    test_csv = tmp_path / "test.csv"
    test_csv.write_text("id,text\n1,テストの文です。\n2,もう一つのテスト。\n", encoding="utf-8")
    data = DataParams.from_project(train_csv=str(train_csv), test_csv=str(test_csv))
    split, _, _ = make_splits(data, SplitParams.from_project(valid_size=0.25, dev_size=0.2, dev_min_per_class=2))
    held_out = set(split["valid"]["text"]) | set(split["dev"]["text"])
    assert len(held_out) >= 10
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\ufeff追加の文。\n\n" + "\n".join(sorted(held_out)) + "\n追加の文。\n", encoding="utf-8")

    texts, counts = pretraining_texts(split, use_test=True, corpus=str(corpus))
    assert not held_out & set(texts)
    assert set(split["train"]["text"]) | {"テストの文です。", "もう一つのテスト。", "追加の文。"} == set(texts)
    assert counts["pretrain_corpus_lines_held_out"] == len(held_out)
    assert counts["pretrain_texts_test"] == 2 and counts["pretrain_texts_corpus"] == 2

    texts, counts = pretraining_texts(split, use_test=False, corpus=None)
    assert texts == list(split["train"]["text"]) and set(counts) == {"pretrain_texts_train"}


def test_unreadable_corpus_is_a_user_error(tmp_path):
    split = make_splits(DataParams.from_project(), SplitParams.from_project())[0]
    with pytest.raises(UserError, match="model.pretrain_corpus: .*missing.txt is not found"):
        pretraining_texts(split, True, str(tmp_path / "missing.txt"))
    bad = tmp_path / "cp932.txt"
    bad.write_bytes("一行目\n".encode() + "二行目\n".encode("cp932"))
    with pytest.raises(UserError, match="line 2 is not UTF-8"):
        pretraining_texts(split, True, str(bad))


def test_no_output_path_may_overwrite_the_pretraining_corpus(tmp_path, monkeypatch):
    from stages.common.params import project_params
    from stages.common.paths import check_all_outputs

    monkeypatch.chdir(tmp_path)
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "corpus.txt").write_text("追加の文。\n", encoding="utf-8")
    params = project_params({"model": {"pretrain_corpus": "texts/corpus.txt"},
                             "paths": {"submission": "texts/corpus.txt"}})
    with pytest.raises(UserError, match=r"paths.submission: .*model.pretrain_corpus"):
        check_all_outputs(params)
    check_all_outputs(project_params({"model": {"pretrain_corpus": "texts/corpus.txt"}}))  # the shipped paths are fine


def test_build_builtin_with_chive_saves_the_initialised_model(tmp_path):
    from transformers import BertForMaskedLM

    size = BuiltinModelParams.from_project(word_vectors="chive", masking="whole_word", vocab_size=300, hidden_size=32,
                                           num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                           max_position_embeddings=64, pretrain_batch_size=4)
    facts = build_builtin(TEXTS, tmp_path, size, steps=2)
    assert facts["word_vectors"].startswith("chive") and facts["masking"] == "whole_word"
    assert facts["word_vectors_rows"]["from_word"] > 10
    model = BertForMaskedLM.from_pretrained(str(tmp_path))
    vocab = (tmp_path / "vocab.txt").read_text(encoding="utf-8").split("\n")
    weight = model.get_input_embeddings().weight.detach()
    assert cosine(weight[vocab.index("猫")], weight[vocab.index("犬")]) > cosine(weight[vocab.index("猫")], weight[vocab.index("経済")])
