"""Hostile content and params that cannot work.

MeCab must read every text whole and never crash; class names and texts must render as inert text in
report.md and the model card and never run as formulas in the CSV files people open; params that cannot
work are refused by the stage before it touches anything (exit 2, one `error:` line, no file changed).
"""
from __future__ import annotations

import hashlib
import html
import json
import random
import unicodedata
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
import yaml
from markdown_it import MarkdownIt
from transformers import BertConfig

from stages.common.errors import UserError
from stages.common.params import DataParams, SplitParams
from stages.dataset.japanese import (
    MAX_CHARS,
    mecab_words,
    preparation_notes,
    prepare_texts,
    segment,
    word_tokenizer,
)
from stages.dataset.splitting import make_splits, save_split
from stages.dataset.tokenizing import position_limit, tokenize_all
from stages.evaluation import model_card
from stages.evaluation.evaluator import write_outputs
from stages.evaluation.markdown import code, escape, fenced, one_line, table
from stages.modeling.builtin import save_tokenizer, train_wordpiece_vocab
from stages.modeling.submission import submission_frame, write_submission
from tests.test_errors import BALANCED, assert_user_error, labelled, setup, stage
from tests.test_evaluate import BASELINES, synthetic_sets

TEXTS = ["吾輩は猫である。名前はまだ無い。", "どこで生れたかとんと見当がつかぬ。", "今日は良い天気です。晴れ。",
         "何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。"]
PROSE = "今日は良い天気です。"
# Strings that would be live Markdown, HTML, YAML structure or spreadsheet formulas if copied verbatim.
HOSTILE = ["<script>alert(1)</script>", "a\nb|c", "[a](javascript:alert(1))", "![x](http://evil)", "=1+1",
           "@SUM(A1)", "-2+3", "x\n---\ny", "```\n# heading", "http://evil.example/x", "www.evil.example",
           "*em* _u_ ~~s~~ $m$", "&lt;b&gt;", "back\\slash", "\x00nul\x1b[31m", "line\u2028sep", "- item", "1. one"]
MD = MarkdownIt("commonmark").enable("table").enable("strikethrough")  # raw HTML on: a leak shows as a tag


def as_html_text(text: str) -> str:
    """How markdown-it writes `text` as plain text."""
    return html.escape(text, quote=False).replace('"', "&quot;")


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# --- MeCab: what it does with hostile text, and what prepare_texts does about it ----------------------------


def test_mecab_itself_stops_at_nul_which_is_why_texts_are_prepared():
    mecab = word_tokenizer()
    assert mecab.tokenize("今日は\0晴れです") == mecab.tokenize("今日は")  # the measured MeCab behaviour
    assert "晴れ" in segment(["今日は\0晴れです"])[0]


def test_prepare_texts_changes_and_counts_exactly_what_mecab_cannot_read():
    texts = ["普通の文。", "良い\0商品", "\0\0", "長" * (MAX_CHARS + 5), "壊れ\udcff字", "制御\x01文字\x7f"]
    prepared, counts = prepare_texts(texts)
    assert counts == {"texts_with_nul": 2, "texts_with_lone_surrogates": 1, "texts_cut": 1}
    assert prepared[0] == texts[0] and prepared[5] == texts[5]  # MeCab keeps other control characters
    assert prepared[1] == "良い 商品" and prepared[2] == "  "
    assert prepared[3] == "長" * MAX_CHARS and prepared[4] == "壊れ\ufffd字"
    notes = preparation_notes(counts, "train")
    assert len(notes) == 3 and "NUL" in notes[0] and "2 texts" in notes[0] and "cut 1 texts" in notes[2]
    assert preparation_notes(prepare_texts(TEXTS)[1], "train") == []


def test_cut_is_measured_after_nfkc_which_can_make_a_text_18_times_longer():
    text = "\ufdfa" * 10_000  # 10,000 characters, 180,000 after NFKC
    [prepared], counts = prepare_texts([text])
    assert counts["texts_cut"] == 1
    assert MAX_CHARS - 40 <= len(unicodedata.normalize("NFKC", prepared)) <= MAX_CHARS


@pytest.fixture(scope="module")
def builtin_tokenizer(tmp_path_factory):
    """The builtin model's real BertJapaneseTokenizer, with a vocabulary from a few texts."""
    out = tmp_path_factory.mktemp("tokenizer")
    return save_tokenizer(train_wordpiece_vocab(segment(TEXTS), 300), out, 64)


def test_huge_and_nul_texts_go_through_the_builtin_tokenizer(builtin_tokenizer):
    huge = (PROSE * (3_000_000 // len(PROSE) + 1))[:3_000_000]  # MeCab alone segfaults on this (exit 139)
    texts = ["今日は\0良い天気です。", "今日は\0悪い所でニャーニャー泣いていた。", huge, TEXTS[0]]
    split = datasets.Dataset.from_dict({"text": texts, "label": [0, 1, 0, 1]})
    tokenized, report = tokenize_all(datasets.DatasetDict({"train": split}), builtin_tokenizer, max_length=32)
    ids = tokenized["train"]["input_ids"]
    assert ids[0] != ids[1]  # the words after the NUL count
    assert len(ids[2]) == 32 and report["train"]["truncated"] >= 1
    assert report["train"]["texts_with_nul"] == 2 and report["train"]["texts_cut"] == 1
    assert ids[3] == builtin_tokenizer(TEXTS[0], truncation=True, max_length=32)["input_ids"]  # others untouched


def test_tfidf_words_are_the_builtin_segmentation():
    texts = TEXTS + ["今日は\0晴れ", "制御\x01文字\tと\n改行", "ＡＢＣ１２３", "x" * 10]
    assert mecab_words(texts) == [" ".join(words) for words in segment(texts)]


# --- Markdown --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_text_renders_as_exactly_that_text(text):
    rendered = MD.render(escape(text))
    assert rendered == f"<p>{as_html_text(one_line(text))}</p>\n"
    assert f"<td>{as_html_text(one_line(text))}</td>" in MD.render(table(["class", text], [[text, 1]]))


def test_escape_known_answers():
    assert escape("<script>alert(1)</script>") == r"\<script\>alert(1)\</script\>"
    assert escape("[a](javascript:alert(1))") == r"\[a\](javascript:alert(1))"
    assert escape("a\nb|c") == r"a b\|c"
    assert escape("see http://x.example or www.y.example") == r"see http\://x.example or www\.y.example"
    assert escape("macro_f1") == "macro_f1" and escape("_x_") == r"\_x\_"


def test_random_hostile_strings_stay_text():
    pieces = list("\\`*_[]()<>&|~$@!#:/.-+=1aあ 　\n\r\t\x00\"'{}^") + [
        "http://", "www.", "javascript:", "&amp;", "<b>", "](", "![", "```", "~~~", "    ", "1.", "&#x41;"]
    rng = random.Random(0)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        line = one_line(text)
        if line:
            assert MD.render(escape(text)) == f"<p>{as_html_text(line)}</p>\n", repr(text)
            assert MD.render("x " + code(text)) == f"<p>x <code>{as_html_text(line)}</code></p>\n", repr(text)
        block = MD.render(fenced(text + "\n" + text, "text"))
        assert block.count("<pre>") == 1 and block.endswith("</code></pre>\n"), repr(text)


def run_evaluate_outputs(tmp_path, names: list[str], texts: list[str]):
    sets = synthetic_sets(len(names), rows=len(texts))
    sets["valid"]["texts"] = texts
    rng = np.random.default_rng(1)
    labels = np.arange(40) % len(names)
    vectors = rng.normal(size=(40, 8)).astype(np.float32) + labels[:, None]
    context = {"class_counts": {"train": {n: 10 for n in names}, "valid": {n: 5 for n in names}},
               "all_texts": {"valid": texts}, "token_report": None, "title": "run on `x`.csv <b>"}
    from stages.common.params import EvaluateParams

    out = tmp_path / "eval"
    write_outputs(out, names, 0, sets, vectors, labels, BASELINES, EvaluateParams.from_project(report_errors=50),
                  context)
    return out


def test_report_and_csvs_with_hostile_class_names_and_texts(tmp_path):
    names = ["<script>alert(1)</script>", "=HYPERLINK(\"http://evil\")", "a\nb|c", "-1"]
    texts = [HOSTILE[i % len(HOSTILE)] + f" {i}" for i in range(40)]
    out = run_evaluate_outputs(tmp_path, names, texts)
    report = (out / "report.md").read_text(encoding="utf-8")
    rendered = MD.render(report)
    assert "<script" not in rendered and "<a " not in rendered and "<b>" not in rendered
    images = [tag for tag in rendered.split("<img")[1:]]
    assert all(tag.split('src="')[1].split('"')[0].endswith(".png") for tag in images)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered and "a b|c" in rendered
    header_cells = rendered.split("<th>split</th>", 1)[1].split("</tr>", 1)[0].count("<th>")
    assert header_cells == len(names) + 1  # class-count table: one column per class (+ total), none split

    predictions = pd.read_csv(out / "predictions.csv", dtype=str, keep_default_na=False)
    for column in ("text", "gold", "predicted"):
        assert not predictions[column].str.match(r"^[=@]|^[+-](?![\d.]+$)").any(), column
    assert "'=1+1 4" in set(predictions["text"]) and "-1" in set(predictions["gold"])
    assert "p_=HYPERLINK(\"http://evil\")" in predictions.columns
    confusion = pd.read_csv(out / "confusion.csv", dtype=str, keep_default_na=False)
    assert list(confusion.columns) == ["actual", "predicted"] and "'=HYPERLINK(\"http://evil\")" in set(confusion["actual"])


def test_model_card_with_hostile_class_names(tmp_path):
    names = [name for name in HOSTILE if one_line(name)][:8]
    base = {"source": "org/model`x", "model_type": "bert", "tokenizer_class": "BertTokenizer"}
    summary = {"label_names": names, "class_counts": {"train": {n: 3 for n in names}}}
    metrics = {"valid": {"accuracy": 0.5, "per_class": {n: {"f1": 0.5, "support": 3} for n in names}}}
    params = {"data": {"label_names": names, "train_csv": "data/`odd`.csv"}}
    card = model_card.render_card(names, base, summary, metrics, params, 64)
    assert card.startswith("---\n")
    front, body = card[4:].split("\n---\n", 1)
    assert yaml.safe_load(front)["datasets"] == ["`odd`.csv"] and "labels" not in yaml.safe_load(front)
    assert yaml.safe_load(body.split("```yaml\n", 1)[1].split("\n```", 1)[0])["data"]["label_names"] == names
    rendered = MD.render(body)
    assert "<script" not in rendered and "<a " not in rendered and "<img" not in rendered and "<h1>" in rendered
    assert rendered.count("<h1>") == 1 and rendered.count("<h2>") == body.count("\n## ")
    assert "<code>data/`odd`.csv</code>" in rendered


def test_submission_csv_is_spreadsheet_safe_and_keeps_signed_number_labels(tmp_path):
    names = ["-1", "=cmd|' /C calc'!A0"]
    frame = submission_frame(["=1", "+7", "q3"], np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), names, "id", "label")
    write_submission(frame, tmp_path / "submission.csv")
    written = pd.read_csv(tmp_path / "submission.csv", dtype=str, keep_default_na=False)
    assert written["id"].tolist() == ["'=1", "+7", "q3"]
    assert written["label"].tolist() == ["-1", "'=cmd|' /C calc'!A0", "-1"]
    assert list(written.columns) == ["id", "label", "p_-1", "p_=cmd|' /C calc'!A0"]  # p_ prefix: never a formula


# --- split: params and files that cannot work -------------------------------------------------------------

RAGGED_MORE = "text,label\n良い,a,extra\n" + "".join(f"{t},{l}\n" for t, l in BALANCED)
RAGGED_FEWER = "text,label\nラベルがない\n" + "".join(f"{t},{l}\n" for t, l in BALANCED)
ALL_EMPTY = "text,label\n" + "".join(f" ,{l}\n" for _, l in BALANCED)
ALL_CONFLICT = "text,label\n" + "".join(f"同じ{i % 3},{'a' if i % 2 else 'b'}\n" for i in range(12))

REFUSED_SPLITS = {
    "sep_two_characters": (labelled(BALANCED), {"data": {"sep": ";;"}}, ["data.sep", "';;'", "one character"]),
    "sep_empty": (labelled(BALANCED), {"data": {"sep": ""}}, ["data.sep", "one character"]),
    "tilde_path": (labelled(BALANCED), {"data": {"train_csv": "~/train.csv"}},
                   ["data.train_csv", "'~/train.csv'", "relative to the project or absolute"]),
    "tilde_test_path": (labelled(BALANCED), {"data": {"test_csv": "~user/test.csv"}}, ["data.test_csv", "'~user/"]),
    "first_row_more_fields": (RAGGED_MORE, {}, ["train.csv", "header line has 2 fields", "row 1 has 3", "quotes"]),
    "first_row_fewer_fields": (RAGGED_FEWER, {}, ["train.csv", "header line has 2 fields", "row 1 has 1"]),
    "all_texts_empty": (ALL_EMPTY, {}, ["train.csv", f"all {len(BALANCED)} rows have an empty text", "'text'",
                                        "data.text_column", "'label'"]),
    "every_row_conflicting": (ALL_CONFLICT, {"data": {"on_conflict": "drop"}}, ["no rows left after cleaning",
                                                                                "dropped all 6"]),
}


@pytest.mark.parametrize("case", sorted(REFUSED_SPLITS))
def test_split_refuses_input_that_cannot_work(tmp_path, case):
    csv, params, fragments = REFUSED_SPLITS[case]
    workdir = setup(tmp_path, csv, params)
    before = tree_digest(workdir)
    assert_user_error(stage(workdir, "split"), *fragments)
    assert tree_digest(workdir) == before


def test_labelled_test_file_with_integer_labels_maps_through_label_names(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("text,label\n" + "".join(f"文{i}です,{i % 2}\n" for i in range(20)), encoding="utf-8")
    test = tmp_path / "test.csv"
    test.write_text("text,label\n新しい文,1\n別の文,0\n", encoding="utf-8")
    data = DataParams.from_project(train_csv=str(train), test_csv=str(test), label_names=["neg", "pos"])
    dataset_dict, summary, _ = make_splits(data, SplitParams.from_project())
    assert dataset_dict["test"].features["label"].names == ["neg", "pos"]
    assert dataset_dict["test"]["label"] == [1, 0] and summary["class_counts"]["test"] == {"neg": 1, "pos": 1}
    test.write_text("text,label\n新しい文,7\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"'7' on row 1 is not in data.label_names"):
        make_splits(data, SplitParams.from_project())


# --- tokenize: hostile texts go through; a max_length the model cannot embed is refused -----------------------


def test_position_limit_of_model_families():
    assert position_limit({"model_type": "bert", "max_position_embeddings": 512}) == 512
    assert position_limit({"model_type": "xlm-roberta", "max_position_embeddings": 514, "pad_token_id": 1}) == 512
    assert position_limit({"model_type": "deberta-v2", "max_position_embeddings": 512,
                           "position_biased_input": False}) is None


def test_tokenize_stage_notes_hostile_texts_and_refuses_max_length_beyond_positions(tmp_path):
    rows = BALANCED + [("今日は\0良い天気", "a"), ("今日は\0悪い天気", "b"), (PROSE * 12_000, "a")]
    workdir = setup(tmp_path, labelled(rows), {"tokenize": {"max_length": 32}})
    data = DataParams.from_project(train_csv=str(workdir / "train.csv"))
    dataset_dict, summary, _ = make_splits(data, SplitParams.from_project(seed=0))
    save_split(dataset_dict, summary, workdir / "data/split")
    model_dir = workdir / "data/base_model"
    model_dir.mkdir(parents=True)
    save_tokenizer(train_wordpiece_vocab(segment(TEXTS), 300), model_dir, 64)
    BertConfig(vocab_size=300, hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8,
               max_position_embeddings=64).save_pretrained(model_dir)

    done = stage(workdir, "tokenize")
    assert done.returncode == 0, done.stderr
    report = json.loads((workdir / "data/tokenize_report.json").read_text())
    nul = sum(split["texts_with_nul"] for split in report.values())
    cut = sum(split["texts_cut"] for split in report.values())
    assert (nul, cut) == (2, 1)
    assert done.stdout.count("note: ") >= 2 and "replaced NUL characters with spaces" in done.stdout

    before = tree_digest(workdir)
    for max_length in (65, 4096):
        setup(tmp_path, None, {"tokenize": {"max_length": max_length}})
        params_digest = tree_digest(workdir)
        assert_user_error(stage(workdir, "tokenize"), f"tokenize.max_length: {max_length}", "64 positions",
                          "between 8 and 64", "model.builtin.max_position_embeddings")
        assert tree_digest(workdir) == params_digest
    assert {k: v for k, v in tree_digest(workdir).items() if k != "params.yaml"} == \
        {k: v for k, v in before.items() if k != "params.yaml"}
