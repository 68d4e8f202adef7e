"""The builtin Japanese BERT (vocabulary, tokenizer, model) and the tokenize stage's functions."""
from __future__ import annotations

import datasets
import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertJapaneseTokenizer

from stages.common.params import BuiltinModelParams
from stages.dataset.tokenizing import tokenize_all
from stages.modeling.builtin import build_builtin, segment, train_wordpiece_vocab

TEXTS = ["吾輩は猫である。名前はまだ無い。", "どこで生れたかとんと見当がつかぬ。", "薔薇と檸檬と鬱金香の話。",
         "何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。"] * 5
TINY = BuiltinModelParams.from_project(vocab_size=300, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=32, max_position_embeddings=64, pretrain_batch_size=4)


@pytest.fixture(scope="module")
def builtin_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("builtin")
    facts = build_builtin(TEXTS, out, TINY, steps=3)
    assert facts["pretrain_texts"] == len(TEXTS)
    return out


def test_segmentation_is_unidic_mecab():
    assert segment(["吾輩は猫である"]) == [["吾輩", "は", "猫", "で", "ある"]]


def test_vocabulary_covers_every_character_and_is_deterministic():
    words = segment(TEXTS)
    first = train_wordpiece_vocab(words, 50)  # far below the alphabet: characters must still all be kept
    assert first == train_wordpiece_vocab(words, 50)
    characters = {ch for sentence in words for word in sentence for ch in word}
    assert characters <= set(first) and {f"##{ch}" for ch in characters} <= set(first)
    assert first[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def test_saved_model_loads_with_plain_auto_classes(builtin_dir):
    tokenizer = AutoTokenizer.from_pretrained(builtin_dir)
    assert isinstance(tokenizer, BertJapaneseTokenizer)
    assert tokenizer.word_tokenizer_type == "mecab" and tokenizer.subword_tokenizer_type == "wordpiece"
    assert tokenizer.mecab_kwargs == {"mecab_dic": "unidic_lite"}
    ids = tokenizer(TEXTS[2])["input_ids"]
    assert tokenizer.unk_token_id not in ids  # rare kanji (薔薇, 檸檬, 鬱金香) are in the vocabulary
    model = AutoModel.from_pretrained(builtin_dir)
    assert model.config.hidden_size == 16
    with torch.no_grad():
        hidden = model(**tokenizer(TEXTS[:2], padding=True, return_tensors="pt")).last_hidden_state
    assert hidden.shape[:2] == (2, max(len(tokenizer(t)["input_ids"]) for t in TEXTS[:2]))
    assert {p.name for p in builtin_dir.iterdir()} >= {"model.safetensors", "vocab.txt", "config.json"}
    assert not list(builtin_dir.glob("*.bin"))


def test_tokenize_truncates_and_reports(builtin_dir):
    tokenizer = AutoTokenizer.from_pretrained(builtin_dir)
    dataset_dict = datasets.DatasetDict({"train": datasets.Dataset.from_dict(
        {"text": TEXTS + ["未知の字：龘"], "label": [0] * (len(TEXTS) + 1)})})
    tokenized, report = tokenize_all(dataset_dict, tokenizer, max_length=12)
    lengths = tokenized["train"]["length"]
    assert max(lengths) == 12 and min(lengths) < 12  # truncated, and not padded on disk
    assert [len(ids) for ids in tokenized["train"]["input_ids"]] == lengths
    assert report["train"]["truncated"] == sum(len(tokenizer(t)["input_ids"]) > 12 for t in dataset_dict["train"]["text"])
    assert report["train"]["unk_rate"] > 0  # 龘 never occurred in the training texts
    assert "text" not in tokenized["train"].column_names


def test_no_pretraining_writes_a_null_loss_not_nan(tmp_path):
    import json

    facts = build_builtin(TEXTS, tmp_path, TINY, steps=0)
    assert facts["pretrain_final_loss"] is None and facts["pretrain_steps"] == 0
    json.loads(json.dumps(facts), parse_constant=lambda name: pytest.fail(f"{name} in the summary"))
    assert AutoModel.from_pretrained(str(tmp_path)).config.vocab_size == len(AutoTokenizer.from_pretrained(str(tmp_path)))


def test_masked_only_head_gives_the_masked_lm_loss_of_transformers(builtin_dir):
    from transformers import BertForMaskedLM, DataCollatorForLanguageModeling

    from stages.modeling.builtin import masked_lm_loss

    tokenizer = AutoTokenizer.from_pretrained(str(builtin_dir))
    model = BertForMaskedLM.from_pretrained(str(builtin_dir)).eval()  # eval: no dropout, same forward twice
    texts = ["この商品はとても良かったです。", "配送が遅くて残念でした。", "普通の品質だと思います。"]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.3, seed=0)
    batch = collator([{"input_ids": ids} for ids in tokenizer(texts)["input_ids"]])
    assert (batch["labels"] != -100).any()
    with torch.no_grad():
        torch.testing.assert_close(masked_lm_loss(model, batch), model(**batch).loss, rtol=1e-5, atol=1e-6)


def test_cls_bag_of_words_loss_is_the_masked_lm_loss_plus_cls_predicting_its_texts_pieces(builtin_dir):
    from transformers import BertForMaskedLM, DataCollatorForLanguageModeling

    from stages.modeling.builtin import masked_lm_and_cls_loss, masked_lm_loss

    tokenizer = AutoTokenizer.from_pretrained(str(builtin_dir))
    model = BertForMaskedLM.from_pretrained(str(builtin_dir)).eval()
    texts = ["この商品はとても良かったです。", "配送が遅くて残念でした。"]
    plain = tokenizer(texts)["input_ids"]
    batch = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.3, seed=0)([{"input_ids": i} for i in plain])
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)))
    with torch.no_grad():
        total = masked_lm_and_cls_loss(model, batch, special)
        # by hand: per text, the mean over its unmasked pieces (no [CLS]/[SEP]/[PAD]) of -log p([CLS] -> piece)
        cls = model.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state[:, 0]
        log_probs = torch.log_softmax(model.cls(cls), dim=-1)
        bag = torch.stack([-log_probs[row, [i for i in ids if i not in special.tolist()]].mean()
                           for row, ids in enumerate(plain)]).mean()
        torch.testing.assert_close(total, masked_lm_loss(model, batch) + bag, rtol=1e-5, atol=1e-5)


def test_length_grouped_pretraining_covers_every_text_once_and_pads_less():
    import numpy as np
    import torch

    from stages.modeling.builtin import pretraining_order

    lengths = np.random.default_rng(0).integers(5, 200, size=1000).tolist()
    grouped = pretraining_order(lengths, 32, True, torch.Generator().manual_seed(1))
    plain = pretraining_order(lengths, 32, False, torch.Generator().manual_seed(1))
    assert sorted(grouped) == sorted(plain) == list(range(1000))

    def padded(order):
        return sum(max(lengths[i] for i in order[s:s + 32]) * len(order[s:s + 32]) for s in range(0, len(order), 32))

    # uniform lengths 5..199: random batches pad to about 1.9x the tokens, grouped ones to about 1.2x
    assert padded(grouped) < 1.25 * sum(lengths) < 0.7 * padded(plain)
    # off: the plain random permutation of the seed, as before the switch existed
    assert plain == torch.randperm(1000, generator=torch.Generator().manual_seed(1)).tolist()
    # batches are shuffled, not served longest-first
    firsts = [max(lengths[i] for i in grouped[s:s + 32]) for s in range(0, 1000, 32)]
    assert firsts != sorted(firsts, reverse=True)
