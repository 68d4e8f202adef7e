"""Unit tests of reading messy CSVs and of the split stage's functions."""
from __future__ import annotations

import hashlib
from pathlib import Path

import datasets
import pytest

from stages.common.errors import UserError
from stages.common.params import DataParams, SplitParams
from stages.dataset.splitting import make_splits, save_split
from stages.dataset.tables import read_table
from tests.conftest import need_shared_data

ROWS = [(f"これは{i}番目の文です。", "良い" if i % 3 else "悪い") for i in range(30)]


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8", newline: str = "\n") -> str:
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode(encoding))
    return str(path)


def csv_text(rows, sep=",", header=("text", "label")) -> str:
    return sep.join(header) + "\n" + "".join(f"{t}{sep}{l}\n" for t, l in rows)


def splits_for(path: str, **data) -> tuple[datasets.DatasetDict, dict, list[str]]:
    return make_splits(DataParams.from_project(train_csv=path, **data), SplitParams.from_project(valid_size=0.2, seed=1))


def all_rows(dataset_dict) -> set[tuple[str, str]]:
    rows = set()
    for split in ("train", "dev", "valid"):
        names = dataset_dict[split].features["label"].names
        rows |= {(r["text"], names[r["label"]]) for r in dataset_dict[split]}
    return rows


@pytest.mark.parametrize("encoding, newline, note", [("utf-8", "\n", None), ("utf-8-sig", "\n", "utf-8 with BOM"),
                                                     ("cp932", "\r\n", "cp932"), ("utf-16", "\r\n", "utf-16")])
def test_encodings_and_line_endings_give_the_same_rows(tmp_path, encoding, newline, note):
    path = write(tmp_path, "train.csv", csv_text(ROWS), encoding, newline)
    dataset_dict, _, notes = splits_for(path)
    assert all_rows(dataset_dict) == set(ROWS)
    if note:
        assert any(note in n for n in notes), notes


def test_tsv_detected_from_extension_and_quoted_newlines(tmp_path):
    rows = ROWS + [('"改行を\n含む文"', "良い")]
    path = write(tmp_path, "train.tsv", csv_text(rows, sep="\t"))
    dataset_dict, _, _ = splits_for(path)
    assert ("改行を\n含む文", "良い") in all_rows(dataset_dict)


def test_label_column_is_classlabel_and_no_index_leaks(tmp_path):
    dataset_dict, summary, _ = splits_for(write(tmp_path, "t.csv", csv_text(ROWS)))
    for split in dataset_dict.values():
        assert list(split.features) == ["text", "label"]
        assert isinstance(split.features["label"], datasets.ClassLabel)
    assert dataset_dict["train"].features["label"].names == ["悪い", "良い"]
    assert summary["class_counts"]["valid"] == {"悪い": 2, "良い": 4}


def test_integer_labels_map_through_label_names(tmp_path):
    rows = [(t, str(i % 2)) for i, (t, _) in enumerate(ROWS)]
    dataset_dict, _, _ = splits_for(write(tmp_path, "t.csv", csv_text(rows)), label_names=["negative", "positive"])
    assert dataset_dict["train"].features["label"].names == ["negative", "positive"]
    assert all_rows(dataset_dict) == {(t, ["negative", "positive"][i % 2]) for i, (t, _) in enumerate(ROWS)}


def test_whitespace_around_labels_is_stripped(tmp_path):
    rows = [(t, f" {label}\u3000") for t, label in ROWS]
    dataset_dict, _, notes = splits_for(write(tmp_path, "t.csv", csv_text(rows)))
    assert dataset_dict["train"].features["label"].names == ["悪い", "良い"]
    assert any("stripped" in n for n in notes)


def test_duplicates_counted_and_conflicts_follow_param(tmp_path):
    rows = ROWS + [ROWS[0], ROWS[0], (ROWS[1][0], "悪い" if ROWS[1][1] == "良い" else "良い")]
    path = write(tmp_path, "t.csv", csv_text(rows))
    with pytest.raises(UserError, match="different labels"):
        splits_for(path)
    dropped, _, notes = splits_for(path, on_conflict="drop")
    assert any("2 exact duplicate" in n for n in notes)
    assert ROWS[1][0] not in {t for t, _ in all_rows(dropped)}
    kept, _, _ = splits_for(path, on_conflict="keep")
    assert sum(len(kept[s]) for s in ("train", "dev", "valid")) == len(ROWS) + 1


def test_no_text_in_two_splits(tmp_path):
    rows = ROWS + ROWS[:10]  # exact duplicates must not straddle the split
    dataset_dict, _, _ = splits_for(write(tmp_path, "t.csv", csv_text(rows)))
    texts = {name: set(dataset_dict[name]["text"]) for name in ("train", "dev", "valid")}
    assert not texts["train"] & texts["valid"] and not texts["dev"] & texts["valid"] and not texts["train"] & texts["dev"]


def test_dev_split_is_carved_from_train_with_a_minimum_per_class(tmp_path):
    rows = [(f"多数{i}", "多数派") for i in range(200)] + [(f"少数{i}", "少数派") for i in range(6)]
    dataset_dict, summary, _ = splits_for(write(tmp_path, "t.csv", csv_text(rows)))
    counts = summary["class_counts"]
    assert counts["dev"]["多数派"] == round((counts["dev"]["多数派"] + counts["train"]["多数派"]) * 0.1) == 16
    assert counts["dev"]["少数派"] == 2  # 0.1 of 4 or 5 training rows rounds to 0: the minimum of 2 applies
    assert counts["train"]["少数派"] >= 1
    assert sum(sum(c.values()) for c in counts.values()) == len(rows)


def test_empty_texts_dropped_or_refused(tmp_path):
    path = write(tmp_path, "t.csv", csv_text(ROWS + [("", "良い"), ("   ", "悪い")]))
    dataset_dict, _, notes = splits_for(path)
    assert any("dropped 2 rows with an empty text" in n for n in notes)
    with pytest.raises(UserError, match="row 31"):
        splits_for(path, on_empty_text="error")


def test_rare_class_dropped_on_request(tmp_path):
    path = write(tmp_path, "t.csv", csv_text(ROWS + [("一件だけ", "珍しい")]))
    with pytest.raises(UserError, match="data.on_rare_class"):
        splits_for(path)
    dataset_dict, _, notes = splits_for(path, on_rare_class="drop")
    assert dataset_dict["train"].features["label"].names == ["悪い", "良い"]


def test_three_row_class_is_split(tmp_path):
    rows = ROWS + [(f"少数{i}", "少数派") for i in range(3)]
    dataset_dict, summary, _ = splits_for(write(tmp_path, "t.csv", csv_text(rows)))
    counts = summary["class_counts"]
    assert counts["train"]["少数派"] + counts["dev"]["少数派"] + counts["valid"]["少数派"] == 3
    assert counts["train"]["少数派"] >= 1 and counts["valid"]["少数派"] >= 1


def test_unlabelled_test_csv_and_overlap_report(tmp_path):
    path = write(tmp_path, "t.csv", csv_text(ROWS))
    test = write(tmp_path, "test.csv", "id,text\nq1,新しい文\nq2," + ROWS[0][0] + "\n")
    dataset_dict, summary, notes = splits_for(path, test_csv=test)
    assert dataset_dict["test"].column_names == ["id", "text"]
    assert dataset_dict["test"]["id"] == ["q1", "q2"]
    assert any("1 test texts also occur" in n for n in notes)


def test_saved_split_is_byte_identical(tmp_path):
    path = write(tmp_path, "t.csv", csv_text(ROWS))
    digests = []
    for run in ("a", "b"):
        dataset_dict, summary, _ = splits_for(path)
        save_split(dataset_dict, summary, tmp_path / run)
        digests.append({p.relative_to(tmp_path / run).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
                        for p in sorted((tmp_path / run).rglob("*")) if p.is_file()})
    assert digests[0] == digests[1]
    saved = datasets.load_from_disk(str(tmp_path / "a"))
    assert saved["train"].num_rows + saved["dev"].num_rows == 24


def test_cp932_copy_of_real_data_gives_identical_split(tmp_path):
    source = need_shared_data("ja_toxic_inspection")
    cp932 = tmp_path / "toxic_cp932.csv"
    cp932.write_bytes(source.read_text(encoding="utf-8").encode("cp932"))
    outputs = []
    for name, path in (("utf8", source), ("cp932", cp932)):
        dataset_dict, summary, notes = splits_for(str(path))
        summary.pop("train_csv_sha256")
        save_split(dataset_dict, summary, tmp_path / name)
        outputs.append({p.relative_to(tmp_path / name).as_posix(): p.read_bytes()
                        for p in sorted((tmp_path / name).rglob("*")) if p.is_file()})
    assert outputs[0] == outputs[1]
    assert read_table(cp932).notes[0].endswith("decoded as cp932")
