"""Documents longer than tokenize.max_length: head_tail and sliding_window (stages/dataset/windows.py) and the
pooling of window probabilities per document (stages/modeling/window_pooling.py), with real tokenizers and,
at the end, one real `dvc repro` whose predictions the predict command reproduces."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
from transformers import AutoTokenizer, BertConfig, PreTrainedTokenizerFast

from stages.common.errors import UserError
from stages.common.params import project_params
from stages.dataset.tokenizing import tokenize_all
from stages.dataset.windows import (
    DOCUMENT_COLUMN,
    HEAD_SHARE,
    LongText,
    encode_documents,
    encode_texts,
    first_windows,
)
from stages.modeling.builtin import save_tokenizer, segment, train_wordpiece_vocab
from stages.modeling.window_pooling import pool_windows
from tests.conftest import REPO, make_pipeline_repo, run

TEXTS = ["吾輩は猫である。名前はまだ無い。", "どこで生れたかとんと見当がつかぬ。", "薔薇と檸檬と鬱金香の話。",
         "何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。"]
LONG = "".join(TEXTS * 4)  # well over the 24 tokens of max_length below
MAX_LENGTH = 24


def builtin_tokenizer(out: Path):
    """The builtin model's tokenizer (a slow BertJapaneseTokenizer: MeCab + WordPiece), saved and reloaded."""
    save_tokenizer(train_wordpiece_vocab(segment(TEXTS), 300), out, 64)
    return AutoTokenizer.from_pretrained(out)


def fast_tokenizer() -> PreTrainedTokenizerFast:
    """A fast tokenizer from `tokenizers`: character WordPiece with BERT's [CLS] ... [SEP] template."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {token: i for i, token in enumerate(specials + sorted(set("".join(TEXTS))))}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]")


@pytest.fixture(scope="module", params=["builtin", "fast"])
def tokenizer(request, tmp_path_factory):
    return builtin_tokenizer(tmp_path_factory.mktemp("builtin")) if request.param == "builtin" else fast_tokenizer()


def windows_of(tokenizer, text: str, long_text: LongText) -> list[list[int]]:
    columns, documents = encode_documents(tokenizer, [text], long_text)
    assert documents == [0] * len(columns["input_ids"])
    return columns["input_ids"]


@pytest.mark.parametrize("stride", [0, 5, 21])
def test_windows_cover_every_token_with_exact_overlap_and_special_tokens(tokenizer, stride):
    long_text = LongText("sliding_window", MAX_LENGTH, stride)
    bare = tokenizer(LONG, add_special_tokens=False)["input_ids"]
    windows = windows_of(tokenizer, LONG, long_text)
    content = MAX_LENGTH - 2
    assert len(windows) == 1 + -(-(len(bare) - content) // (content - stride))  # ceil: the last one reaches the end
    for window in windows:
        assert window[0] == tokenizer.cls_token_id and window[-1] == tokenizer.sep_token_id
        assert len(window) <= MAX_LENGTH
    pieces = [window[1:-1] for window in windows]
    for previous, following in zip(pieces, pieces[1:]):
        assert len(previous) == content
        assert following[:stride] == (previous[-stride:] if stride else [])  # exactly `stride` tokens shared
    rebuilt = pieces[0] + [token for piece in pieces[1:] for token in piece[stride:]]
    assert rebuilt == bare  # every token of the document, in order, none twice beyond the overlap
    # The first window is what the tokenizer's own truncation gives: the same special tokens, the same cut.
    assert windows[0] == tokenizer(LONG, truncation=True, max_length=MAX_LENGTH)["input_ids"]


def test_short_text_is_one_sequence_with_the_tokenizers_own_columns(tokenizer):
    for strategy in ("sliding_window", "head_tail"):
        columns, documents = encode_documents(tokenizer, [TEXTS[0]], LongText(strategy, MAX_LENGTH, 4))
        encoded = tokenizer(TEXTS[0])
        assert documents == [0]
        assert set(columns) - {"full_length"} == set(encoded.keys())
        assert {key: values[0] for key, values in columns.items() if key != "full_length"} == dict(encoded)


@pytest.mark.parametrize("head_tokens", [None, 0, 7, 22])
def test_head_tail_keeps_the_head_and_the_tail(tokenizer, head_tokens):
    bare = tokenizer(LONG, add_special_tokens=False)["input_ids"]
    [sequence] = windows_of(tokenizer, LONG, LongText("head_tail", MAX_LENGTH, head_tokens=head_tokens))
    content = MAX_LENGTH - 2
    head = round(content * HEAD_SHARE) if head_tokens is None else head_tokens
    assert head == (6 if head_tokens is None else head_tokens)  # 22 x 128/510, Sun et al.'s share
    assert sequence == [tokenizer.cls_token_id] + bare[:head] + bare[len(bare) - (content - head):] + [tokenizer.sep_token_id]


def test_stride_and_head_tokens_are_checked_against_the_special_tokens(tokenizer):
    with pytest.raises(UserError, match=r"tokenize.stride: 22 leaves no new tokens per window: a window holds 22 tokens "
                                        r"\(tokenize.max_length 24 minus 2 special tokens\); set tokenize.stride between 0 and 21"):
        encode_documents(tokenizer, [LONG], LongText("sliding_window", MAX_LENGTH, 22))
    with pytest.raises(UserError, match=r"tokenize.head_tokens: 23 is more than the 22 tokens a sequence holds"):
        encode_documents(tokenizer, [LONG], LongText("head_tail", MAX_LENGTH, head_tokens=23))


def test_params_refuse_impossible_values_and_windows_with_folds():
    with pytest.raises(UserError, match=r"tokenize: stride \(24\) must be less than max_length \(24\)"):
        project_params({"tokenize": {"long_text": "sliding_window", "max_length": 24, "stride": 24}})
    with pytest.raises(UserError, match=r"params.yaml: tokenize.long_text sliding_window makes several rows per "
                                        r"document, which the k-fold stages do not pool"):
        project_params({"tokenize": {"long_text": "sliding_window"}, "split": {"folds": 2, "fold_ids": [1, 2]}})
    project_params({"tokenize": {"long_text": "head_tail"}, "split": {"folds": 2, "fold_ids": [1, 2]}})


def test_tokenized_split_has_a_row_per_window_with_its_documents_label(tokenizer):
    texts = [TEXTS[0], LONG, TEXTS[1], LONG + TEXTS[2]]
    split = datasets.Dataset.from_dict({"text": texts, "label": [0, 1, 0, 1]})
    long_text = LongText("sliding_window", MAX_LENGTH, 6)
    tokenized, report = tokenize_all(datasets.DatasetDict({"valid": split}), tokenizer, MAX_LENGTH, long_text)
    rows = tokenized["valid"]
    expected = [len(windows_of(tokenizer, text, long_text)) for text in texts]
    assert rows[DOCUMENT_COLUMN] == [d for d, n in enumerate(expected) for _ in range(n)]
    assert rows["label"] == [split["label"][d] for d in rows[DOCUMENT_COLUMN]]
    assert rows["length"] == [len(ids) for ids in rows["input_ids"]]
    facts = report["valid"]
    assert (facts["strategy"], facts["texts"], facts["long_documents"], facts["windows"], facts["truncated"]) == (
        "sliding_window", 4, 2, sum(expected), 0)
    first = first_windows(tokenized)["valid"]
    assert first[DOCUMENT_COLUMN] == [0, 1, 2, 3]
    assert first["input_ids"] == [windows_of(tokenizer, text, long_text)[0] for text in texts]
    # head_tail: one row per document, the long ones counted as cut.
    tokenized, report = tokenize_all(datasets.DatasetDict({"valid": split}), tokenizer, MAX_LENGTH,
                                     LongText("head_tail", MAX_LENGTH))
    assert len(tokenized["valid"]) == 4 and DOCUMENT_COLUMN not in tokenized["valid"].column_names
    assert (report["valid"]["truncated"], report["valid"]["windows"]) == (2, 4)
    # The predict command's route cuts texts the same way.
    assert encode_texts(tokenizer, texts, LongText("head_tail", MAX_LENGTH), MAX_LENGTH) == (
        tokenized["valid"]["input_ids"], None)
    assert encode_texts(tokenizer, texts, long_text, MAX_LENGTH) == (rows["input_ids"], rows[DOCUMENT_COLUMN])


def test_pooling_gives_one_row_per_document_in_document_order():
    windows = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]], dtype=np.float32)
    documents = [0, 1, 1, 1, 2]
    mean = pool_windows(windows, documents, 3, "mean")
    np.testing.assert_allclose(mean, [[0.9, 0.1], [(0.2 + 0.6 + 0.3) / 3, (0.8 + 0.4 + 0.7) / 3], [0.5, 0.5]], rtol=1e-6)
    top = pool_windows(windows, documents, 3, "max")
    np.testing.assert_allclose(top, [[0.9, 0.1], [0.6 / 1.4, 0.8 / 1.4], [0.5, 0.5]], rtol=1e-6)
    np.testing.assert_allclose(top.sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="windows cover 2 of 3 documents"):
        pool_windows(windows[:4], documents[:4], 3, "mean")


def test_strategy_is_recorded_in_config_json_only_when_not_truncate(tmp_path):
    config = BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8)
    LongText("truncate", 64).record(config)
    config.save_pretrained(tmp_path / "plain")
    assert "long_text" not in json.loads((tmp_path / "plain" / "config.json").read_text())
    assert LongText.from_config(BertConfig.from_pretrained(tmp_path / "plain"), "m") == LongText()
    windows = LongText("sliding_window", 64, 16, None, "max")
    windows.record(config)
    config.save_pretrained(tmp_path / "windows")
    assert LongText.from_config(BertConfig.from_pretrained(tmp_path / "windows"), "m") == windows
    config.long_text = {"strategy": "chunks"}
    with pytest.raises(UserError, match=r"m: config.json's 'long_text' is \{'strategy': 'chunks'\}, which this version "
                                        r"cannot read"):
        LongText.from_config(config, "m")


# --- one real pipeline ----------------------------------------------------------------------------

def long_document_csv(path: Path, per_document: int) -> int:
    """Long documents from the bundled sample: each joins `per_document` consecutive sample texts of one label
    (about 20 tokens each, so over the e2e's max_length of 64), keeping that label. Returns the row count."""
    sample = pd.read_csv(REPO / "data/sample/train.csv")
    rows = []
    for label, group in sample.groupby("label", sort=True):
        texts = group["text"].tolist()
        rows += [("".join(texts[i:i + per_document]), label) for i in range(0, len(texts) - per_document + 1, per_document)]
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    return len(rows)


@pytest.mark.slow
def test_sliding_window_pipeline_scores_one_row_per_document_and_predict_agrees(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    long_document_csv(repo / "long.csv", per_document=6)
    unlabelled = tmp_path / "unlabelled.csv"
    pd.DataFrame({"id": ["d-1", "d-2"], "text": [TEXTS[0], LONG * 2]}).to_csv(unlabelled, index=False)
    make_pipeline_repo(repo, {
        "data": {"train_csv": "long.csv", "test_csv": str(unlabelled)},
        "model": {"pretrain_steps": 10},
        "tokenize": {"long_text": "sliding_window", "stride": 16, "window_pooling": "mean"},
        "train": {"epochs": 1},
        "baselines": {"mteb": {"n_experiments": 1}},
    })
    out = run(["dvc", "repro"], repo).stdout
    assert "(sliding_window):" in out

    split = datasets.load_from_disk(repo / "data/split")
    tokenized = datasets.load_from_disk(repo / "data/tokenized")
    report = json.loads((repo / "data/tokenize_report.json").read_text())
    assert report["valid"]["windows"] == len(tokenized["valid"]) > len(split["valid"])  # real windows were made
    predictions = pd.read_csv(repo / "data/eval/predictions.csv", keep_default_na=False)
    valid = predictions[predictions["split"] == "valid"]
    assert valid["text"].tolist() == split["valid"]["text"]  # one row per document, in the split's order
    submission = pd.read_csv(repo / "data/submission.csv", keep_default_na=False)
    assert submission["id"].tolist() == ["d-1", "d-2"]

    config = json.loads((repo / "data/release/config.json").read_text())
    assert config["long_text"]["strategy"] == "sliding_window" and config["long_text"]["stride"] == 16
    valid[["text"]].to_csv(tmp_path / "valid.csv", index=False, quoting=csv.QUOTE_ALL)
    run(["python", "-m", "stages.predict", "data/release", "--input", str(tmp_path / "valid.csv"),
         "-o", str(tmp_path / "predicted.csv")], repo)
    predicted = pd.read_csv(tmp_path / "predicted.csv", keep_default_na=False)
    columns = [c for c in valid.columns if c.startswith("p_")]
    assert predicted["text"].tolist() == valid["text"].tolist()
    np.testing.assert_allclose(predicted[columns].to_numpy(), valid[columns].to_numpy(), atol=1.5e-6)
