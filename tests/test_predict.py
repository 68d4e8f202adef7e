"""Using the trained model: the predict command, the portable release directory (plain transformers), the
model card, the submission file for an unlabelled test set, and the DVC artifact entry.

One tiny `dvc repro` (with an unlabelled test file) builds the model for the whole module.
"""
from __future__ import annotations

import io
import json
import shutil
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import pandas as pd
import pytest
import yaml

from stages import predict
from stages.common.errors import UserError
from stages.common.params import DataParams
from stages.evaluation import model_card
from stages.modeling import submission as submit
from tests.conftest import REPO, SAMPLE_TEST_ROWS, copy_repo, run

NAMES = ["negative", "neutral", "positive"]
TEST_ROWS = SAMPLE_TEST_ROWS
PROBABILITY_TOLERANCE = 1e-5  # both sides are rounded to 6 decimals from the same float32 computation


@pytest.fixture(scope="module")
def repo(sample_run, tmp_path_factory) -> Path:
    """A copy of the shared tiny run (it has an unlabelled test file), so tagging here touches nothing else."""
    for stage in ("submit", "package"):
        assert f"Running stage '{stage}'" in sample_run.stdout
    return copy_repo(sample_run.repo, tmp_path_factory.mktemp("predict") / "repo")


@pytest.fixture(scope="module")
def evaluated(repo) -> pd.DataFrame:
    """The evaluate stage's predictions on the validation texts: the reference for every entry point."""
    frame = pd.read_csv(repo / "data/eval/predictions.csv", dtype={"text": str})
    return frame[frame["split"] == "valid"].reset_index(drop=True)


def probabilities_of(frame: pd.DataFrame) -> np.ndarray:
    return frame[[f"p_{name}" for name in NAMES]].to_numpy(dtype=float)


def assert_same_predictions(got: pd.DataFrame, expected: pd.DataFrame, label_column: str = "label") -> None:
    assert got[label_column].tolist() == expected["predicted"].tolist()
    np.testing.assert_allclose(probabilities_of(got), probabilities_of(expected), atol=PROBABILITY_TOLERANCE)


def run_predict(argv: list[str], stdin_text: str | None = None) -> tuple[pd.DataFrame | None, str, str]:
    """The command in-process; the frame is its CSV standard output parsed back (None for other output)."""
    stdin = io.TextIOWrapper(io.BytesIO((stdin_text or "").encode("utf-8")), encoding="utf-8")
    stdout, stderr = io.StringIO(), io.StringIO()
    summary = predict.run(argv, stdin=stdin, stdout=stdout, stderr=stderr)
    out = stdout.getvalue()
    frame = None
    if summary.output == "-" and summary.format == "csv":
        frame = pd.read_csv(io.StringIO(out), dtype={"id": str, "text": str})
        assert len(frame) == summary.texts
    return frame, out, stderr.getvalue()


# --- portable model directory: plain transformers, no code of ours ----------------------------------


def test_release_loads_with_plain_transformers_pipeline_elsewhere(repo, evaluated, tmp_path):
    """Copied away from the project and loaded in a fresh interpreter that never imports `stages`."""
    elsewhere = shutil.copytree(repo / "data/release", tmp_path / "laptop" / "model")
    evaluated = evaluated.head(30)  # the pipeline runs one text at a time: a sample keeps the test short
    texts = evaluated["text"].tolist()
    script = (
        "import json, sys\n"
        "from transformers import AutoTokenizer, pipeline\n"
        "texts = json.loads(sys.stdin.read())\n"
        f"classifier = pipeline('text-classification', model={str(elsewhere)!r})\n"
        "scores = classifier(texts, top_k=None, truncation=True)\n"
        f"tokenizer = AutoTokenizer.from_pretrained({str(elsewhere)!r})\n"
        "print(json.dumps({'scores': scores, 'tokenizer': type(tokenizer).__name__,\n"
        "                  'word': tokenizer.word_tokenizer_type, 'mecab': tokenizer.mecab_kwargs,\n"
        "                  'stages_imported': any(m.split('.')[0] == 'stages' for m in sys.modules)}))\n")
    import subprocess

    from tests.conftest import env_with_venv

    result = subprocess.run([sys.executable, "-c", script], input=json.dumps(texts), cwd=tmp_path, env=env_with_venv(),
                            capture_output=True, text=True, timeout=300, check=True)
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert shown["tokenizer"] == "BertJapaneseTokenizer"
    assert shown["word"] == "mecab" and shown["mecab"] == {"mecab_dic": "unidic_lite"}
    assert not shown["stages_imported"]
    by_label = [{entry["label"]: entry["score"] for entry in row} for row in shown["scores"]]
    assert all(set(row) == set(NAMES) for row in by_label)  # the project's names, not LABEL_0
    got = pd.DataFrame({f"p_{name}": [row[name] for row in by_label] for name in NAMES})
    got["label"] = [max(row, key=row.get) for row in by_label]
    # The pipeline runs one text at a time without padding: same numbers up to float32 noise.
    assert got["label"].tolist() == evaluated["predicted"].tolist()
    np.testing.assert_allclose(probabilities_of(got), probabilities_of(evaluated), atol=1e-4)


def test_release_tokenizer_is_the_training_tokenizer(repo):
    from transformers import AutoTokenizer

    release = AutoTokenizer.from_pretrained(repo / "data/release")
    trained = AutoTokenizer.from_pretrained(repo / "data/base_model")
    assert type(release) is type(trained) and type(release).__name__ == "BertJapaneseTokenizer"
    assert release.model_max_length == 64  # tokenize.max_length of the run, so truncation=True matches training
    text = "東京都の新しい店で買ったスマートフォンは、画面がとても綺麗でした。" * 8
    assert release(text, truncation=True)["input_ids"] == trained(text, truncation=True, max_length=64)["input_ids"]
    config = json.loads((repo / "data/release/tokenizer_config.json").read_text())
    assert "local_files_only" not in config and "is_local" not in config
    assert not list((repo / "data/release").glob("*.py")) and not list((repo / "data/release").glob("*.bin"))


# --- the predict command ----------------------------------------------------------------------------


def test_predict_over_stdin_equals_evaluate_stage(repo, evaluated):
    """The real command in a subprocess, texts on standard input, CSV on standard output."""
    import subprocess

    from tests.conftest import env_with_venv

    result = subprocess.run([sys.executable, "-m", "stages.predict", "data/release"], cwd=repo, env=env_with_venv(),
                            input="\n".join(evaluated["text"]) + "\n", capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    got = pd.read_csv(io.StringIO(result.stdout), dtype={"text": str})
    assert list(got.columns) == ["text", "label"] + [f"p_{name}" for name in NAMES]
    assert got["text"].tolist() == evaluated["text"].tolist()
    assert_same_predictions(got, evaluated)


def test_predict_on_train_output_directory_equals_evaluate_stage(repo, evaluated):
    """data/model (before packaging) works too; --max-length gives the training truncation explicitly."""
    frame, _, _ = run_predict([str(repo / "data/model"), *evaluated["text"], "--max-length", "64"])
    assert_same_predictions(frame, evaluated)


def test_predict_from_arguments_as_json_lines_with_top_k(repo, evaluated):
    texts = evaluated["text"].tolist()[:3]
    _, out, err = run_predict([str(repo / "data/release"), *texts, "--format", "jsonl", "--top-k", "2"])
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in records] == texts
    for record, (_, expected) in zip(records, evaluated.head(3).iterrows()):
        assert set(record) == {"text", "label", "probabilities", "top_k"}
        assert list(record["probabilities"]) == NAMES
        assert record["label"] == expected["predicted"] == record["top_k"][0]["label"]
        assert len(record["top_k"]) == 2 and record["top_k"][0]["score"] >= record["top_k"][1]["score"]
        assert record["top_k"][0]["score"] == record["probabilities"][record["label"]]
        assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose([record["probabilities"][n] for n in NAMES],
                                   [expected[f"p_{n}"] for n in NAMES], atol=PROBABILITY_TOLERANCE)
    assert err == ""  # no progress bars or notes for three texts


def test_predict_from_cp932_tsv_file_keeps_ids_and_skips_empty_rows(repo, evaluated, tmp_path):
    texts = evaluated["text"].tolist()[:5]
    source = tmp_path / "new.tsv"
    rows = [f"doc-{i}\t{text}" for i, text in enumerate(texts)]
    source.write_bytes(("id\tbody\n" + "\n".join(rows[:2] + ["doc-x\t "] + rows[2:]) + "\n").encode("cp932"))
    target = tmp_path / "out" / "predictions.csv"
    frame, out, err = run_predict([str(repo / "data/release"), "--input", str(source), "--text-column", "body",
                                   "-o", str(target), "--top-k", "3"])
    assert out == ""
    assert "decoded as cp932" in err and "skipped 1 empty texts" in err
    written = pd.read_csv(target, dtype=str)
    assert written["id"].tolist() == [f"doc-{i}" for i in range(5)]
    assert list(written.columns)[:3] == ["id", "text", "label"] and "label_3" in written.columns
    assert_same_predictions(pd.read_csv(target, dtype={"id": str, "text": str}), evaluated.head(5))


def test_console_script_is_declared_and_resolves_to_predict_main():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attribute = scripts["ja-textclf-predict"].partition(":")
    assert (module, attribute) == ("stages.predict", "main")
    assert getattr(predict, attribute) is predict.main and callable(predict.main)


@pytest.mark.parametrize("argv, stdin_text, message", [
    (["{repo}/data/release", "--input", "{tmp}/missing.csv"], None, "input file not found"),
    (["{repo}/data/release", "--input", "{tmp}/texts.csv", "--text-column", "body"], None, "column 'body' not found"),
    (["{repo}/data/release"], "", "no input"),
    (["{repo}/data/release", "--input", "{tmp}/blank.csv"], None, "no texts to classify"),
    (["{repo}/data/base_model", "よい"], None, "not a text classifier"),
    (["{repo}/data/eval", "よい"], None, "no config.json"),
    (["{tmp}/nowhere", "よい"], None, "model directory not found"),
    (["{repo}/data/release", "よい", "--input", "{tmp}/texts.csv"], None, "not both"),
    (["{repo}/data/release", "よい", "--batch-size", "0"], None, "--batch-size: must be at least 1"),
])
def test_predict_bad_input_is_a_user_error(repo, tmp_path, argv, stdin_text, message):
    (tmp_path / "texts.csv").write_text("id,text\n1,よい\n", encoding="utf-8")
    (tmp_path / "blank.csv").write_text("id,text\n1, \n2,\n", encoding="utf-8")
    argv = [a.format(repo=repo, tmp=tmp_path) for a in argv]
    with pytest.raises(UserError, match=message):
        run_predict(argv, stdin_text)


def test_predict_error_is_one_line_and_exit_code_2(repo):
    result = run([sys.executable, "-m", "stages.predict", "data/base_model", "よい"], repo, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: data/base_model: a BertForMaskedLM model"), result.stderr


# --- submission file --------------------------------------------------------------------------------


def test_submission_predicts_the_unlabelled_test_file(repo, tmp_path):
    submission = pd.read_csv(repo / "data/submission.csv", dtype={"id": str})
    assert list(submission.columns) == ["id", "label"] + [f"p_{name}" for name in NAMES]
    kept = [(i, t) for i, t in TEST_ROWS if t]  # the split stage drops the empty text
    assert submission["id"].tolist() == [i for i, _ in kept]
    frame, _, _ = run_predict([str(repo / "data/release"), *[t for _, t in kept]])
    assert submission["label"].tolist() == frame["label"].tolist()
    np.testing.assert_allclose(probabilities_of(submission), probabilities_of(frame), atol=PROBABILITY_TOLERANCE)


def test_submission_is_header_only_without_an_unlabelled_test_set(repo, tmp_path):
    split = datasets.load_from_disk(repo / "data/split")
    cases = {"no_test": datasets.DatasetDict({"train": split["train"], "valid": split["valid"]}),
             "labelled_test": datasets.DatasetDict({"train": split["train"], "valid": split["valid"],
                                                    "test": split["valid"]})}
    data = DataParams.from_project(id_column="ID", label_column="sentiment")
    for name, dataset_dict in cases.items():
        dataset_dict.save_to_disk(str(tmp_path / name))
        paths = SimpleNamespace(split=str(tmp_path / name), tokenized="unused", model="unused")
        frame, what = submit.make_submission(paths, data, 64)
        assert what.startswith("header only")
        submit.write_submission(frame, tmp_path / f"{name}.csv")
        assert (tmp_path / f"{name}.csv").read_text() == "ID,sentiment,p_negative,p_neutral,p_positive\n"


# --- model card -------------------------------------------------------------------------------------


def test_model_card_describes_the_run(repo):
    card = (repo / "data/release/README.md").read_text(encoding="utf-8")
    front, body = card.removeprefix("---\n").split("\n---\n", 1)
    meta = yaml.safe_load(front)
    assert meta["pipeline_tag"] == "text-classification" and "labels" not in meta  # not a Hub card key
    summary = json.loads((repo / "data/split/summary.json").read_text())
    metrics = json.loads((repo / "data/eval/metrics.json").read_text())
    assert summary["train_csv_sha256"] in body
    for split in ("train", "dev", "valid"):  # class counts per split, as the split stage wrote them
        counts = summary["class_counts"][split]
        assert f"| {split} | {' | '.join(str(counts[n]) for n in NAMES)} | {sum(counts.values())} |" in body, split
    assert summary["class_counts"]["valid"] == {n: 30 for n in NAMES}
    assert f"| macro_f1 | {metrics['valid']['macro_f1']:.4f} |" in body
    assert "Base model: `builtin`" in body and "30 masked-LM steps" in body
    assert "learning_rate: 0.002" in body and "max_length: 64" in body  # params used
    for heading in ("## Intended use", "## Limitations", "## Usage", "## Training data", "## Evaluation"):
        assert heading in body
    assert 'pipeline("text-classification", model=' in body and "ja-textclf-predict" in body


def usage_answers(card_text: str) -> list:
    """The answers the card's usage example shows: the `# ...` comment lines after each `classifier(...)` call."""
    import ast

    block = card_text.split("## Usage", 1)[1].split("```python\n", 1)[1].split("\n```", 1)[0]
    answers, current = [], None
    for line in block.splitlines():
        if line.startswith("classifier("):
            current = []
            answers.append(current)
        elif line.startswith("# ") and current is not None:
            current.append(line[2:])
    return [ast.literal_eval("\n".join(lines)) for lines in answers]


def test_model_card_is_a_hub_model_card_whose_usage_answers_are_the_release_s_own(repo):
    from huggingface_hub import ModelCard
    from transformers import pipeline

    card = ModelCard.load(repo / "data/release/README.md")
    data = card.data.to_dict()
    assert data["license"] == "other" and data["language"] == "ja" and data["library_name"] == "transformers"
    assert data["pipeline_tag"] == "text-classification" and data["datasets"] == ["train.csv"]
    assert "base_model" not in data and "labels" not in data  # builtin: no Hub base model; no non-standard keys
    metrics = json.loads((repo / "data/eval/metrics.json").read_text())
    scores = {(r.dataset_split, r.metric_type, (r.metric_args or {}).get("average")): r.metric_value
              for r in card.data.eval_results}
    assert scores == {("validation", "f1", "macro"): metrics["valid"]["macro_f1"],
                      ("validation", "accuracy", None): metrics["valid"]["accuracy"]}
    assert {r.task_type for r in card.data.eval_results} == {"text-classification"}
    assert {r.dataset_name for r in card.data.eval_results} == {"train.csv"}

    # The usage example's answers are what pipeline() gives on the release directory, call by call.
    classifier = pipeline("text-classification", model=str(repo / "data/release"), device="cpu")
    calls = model_card.example_calls(len(NAMES))
    expected = [model_card.rounded_output(classifier(texts, **kwargs)) for texts, kwargs in calls]
    shown = usage_answers(card.content)
    assert shown == expected and len(shown) == 2
    assert [a["label"] for a in shown[0]] and sorted(a["label"] for a in shown[1]) == sorted(NAMES)
    for texts, kwargs in calls:
        assert model_card.call_code(texts, kwargs) in card.content


def test_model_card_for_a_hub_model_names_revision_and_custom_texts():
    base = {"source": "tohoku-nlp/bert-base-japanese-v3", "revision": None, "resolved_revision": "abc123",
            "model_type": "bert", "tokenizer_class": "BertJapaneseTokenizer", "word_tokenizer_type": "mecab"}
    summary = {"label_names": ["normal", "toxic"], "train_csv_sha256": "f" * 64,
               "class_counts": {"train": {"normal": 8, "toxic": 4}, "test": {"unlabelled": 5}}}
    metrics = {"valid": {"accuracy": 0.75, "roc_auc": 0.8}, "test": {"accuracy": 0.5}}
    card = model_card.render_card(["normal", "toxic"], base, summary, metrics, {"data": {"train_csv": "x.csv"}}, 128,
                                  intended_use="Moderation triage {not a format field}", limitations=None)
    assert "`tohoku-nlp/bert-base-japanese-v3` at revision `abc123`" in card
    assert "base_model: tohoku-nlp/bert-base-japanese-v3" in card and "license: other" in card
    assert "Moderation triage {not a format field}" in card and "truncated to 128 tokens" in card
    assert "| roc_auc | 0.8000 |" in card and card.index("Validation split") < card.index("Test file")
    assert "Unlabelled `test` rows (predicted into the submission file): 5" in card
    assert card == model_card.render_card(["normal", "toxic"], base, summary, metrics, {"data": {"train_csv": "x.csv"}},
                                          128, intended_use="Moderation triage {not a format field}")


def test_model_card_keeps_hostile_names_inert_in_metadata_and_usage():
    from huggingface_hub import ModelCard

    names = ["---", "```\n# heading", "it's \"quoted\"", "a\u2028b", "<script>x</script>"]
    outputs = [[{"label": names[1], "score": 0.5}, {"label": names[0], "score": 0.25}],
               [{"label": name, "score": round(0.2 - i / 100, 4)} for i, name in enumerate(names)]]
    params = {"data": {"train_csv": "data/a\n---\nlicense: mit.csv", "label_names": names}}
    card = model_card.render_card(names, {"source": "builtin"}, {"label_names": names}, {"valid": {"accuracy": 0.5}},
                                  params, 64, license="cc-by-4.0", usage_outputs=outputs)
    loaded = ModelCard(card)
    assert loaded.data.license == "cc-by-4.0" and loaded.data.datasets == ["a\n---\nlicense: mit.csv"]
    assert card.count("\n---\n") == 1  # the front matter ends once, where it should
    assert usage_answers(card) == outputs
    assert card == model_card.render_card(names, {"source": "builtin"}, {"label_names": names},
                                          {"valid": {"accuracy": 0.5}}, params, 64, license="cc-by-4.0",
                                          usage_outputs=outputs)


def test_package_stage_rerun_is_byte_identical(repo, monkeypatch):
    from stages.common.params import load_params
    from stages.evaluation import packaging as package

    before = {p.name: p.read_bytes() for p in (repo / "data/release").iterdir()}
    monkeypatch.chdir(repo)
    package.package(load_params())
    assert {p.name: p.read_bytes() for p in (repo / "data/release").iterdir()} == before


# --- model registry ---------------------------------------------------------------------------------


def test_dvc_artifacts_get_downloads_the_release(repo, tmp_path):
    declared = yaml.safe_load((repo / "dvc.yaml").read_text())["artifacts"]["ja-textclf"]
    assert declared["type"] == "model" and declared["desc"] and declared["labels"]
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "model run", "--allow-empty"], repo)  # the shared run is already committed
    run(["git", "tag", "-a", "ja-textclf@v1.0.0", "-m", "Register ja-textclf v1.0.0"], repo)  # what `gto register` does
    target = tmp_path / "downloaded"
    run(["dvc", "artifacts", "get", ".", "ja-textclf", "-o", str(target)], repo)
    release = repo / "data/release"
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in release.iterdir())
    assert (target / "README.md").read_bytes() == (release / "README.md").read_bytes()
    assert (target / "model.safetensors").read_bytes() == (release / "model.safetensors").read_bytes()


def test_model_card_names_the_word_vectors_and_their_licences_only_when_used():
    base = {"source": "builtin", "pretrain_steps": 300, "model_type": "bert", "word_vectors": "none"}
    plain = "\n".join(model_card.base_model_lines(base))
    assert "no external weights" in plain and "chiVe" not in plain
    with_vectors = "\n".join(model_card.base_model_lines({**base, "word_vectors": "chive (ja-ginza 5.3.0)"}))
    assert "no external weights" not in with_vectors
    assert "chiVe" in with_vectors and "Apache License 2.0" in with_vectors and "MIT License" in with_vectors
