"""Sharing the model: the optional ONNX export of the release (package.onnx) and the optional Hub push
(package.push_to_hub).

The export tests run the real exporter and ONNX Runtime on a tiny BERT with the builtin model's real tokenizer
(random weights: parity does not depend on training), in-process. The stage tests reuse the shared tiny
`dvc repro` (conftest's sample_run) and call the package stage on a copy; the push goes to a closed local port
with the real huggingface_hub client, so it fails the way an offline machine does.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from stages.common.errors import UserError
from stages.common.params import project_params, project_raw
from stages.evaluation import onnx_export
from tests.conftest import call_main, copy_repo, env_with_venv, write_params

NAMES = ["negative", "neutral", "positive"]
TEXTS = ["この商品はとても使いやすいです。", "二度と買いません。", "届いた商品が壊れていて最悪でした。",
         "色は写真のとおりでした。", "発送が早く、梱包も丁寧でした。"]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT classifier with the builtin model's tokenizer (MeCab + WordPiece) on TEXTS."""
    from transformers import BertConfig, BertForSequenceClassification

    from stages.dataset.japanese import segment
    from stages.modeling.builtin import save_tokenizer, train_wordpiece_vocab

    model_dir = tmp_path_factory.mktemp("tiny_model")
    vocab = train_wordpiece_vocab(segment(TEXTS), 200)
    tokenizer = save_tokenizer(vocab, model_dir, model_max_length=48)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
                        id2label=dict(enumerate(NAMES)), label2id={n: i for i, n in enumerate(NAMES)})
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(str(model_dir))
    return model_dir


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory) -> tuple[Path, dict]:
    out_dir = tmp_path_factory.mktemp("exported") / onnx_export.ONNX_DIR
    return out_dir, onnx_export.export_checked(tiny_model_dir, out_dir)


def serve(onnx_file: Path, model_dir: Path, texts: list[str]) -> np.ndarray:
    """The README's ONNX Runtime snippet: the release's tokenizer, no torch model."""
    import onnxruntime
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    inputs = tokenizer(texts, padding=True, truncation=True, return_tensors="np")
    logits, probabilities = session.run(None, dict(inputs))
    return probabilities


def torch_probabilities(model_dir: Path, texts: list[str]) -> np.ndarray:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
    with torch.no_grad():
        return torch.softmax(model(**tokenizer(texts, padding=True, truncation=True, return_tensors="pt")).logits,
                             dim=-1).numpy()


# --- the export and its check (in-process, fast) ------------------------------------------------------------


def test_export_check_covers_several_batch_sizes_and_lengths(exported):
    out_dir, check = exported
    assert (out_dir / onnx_export.ONNX_FILE).stat().st_size > 0
    written = json.loads((out_dir / onnx_export.CHECK_FILE).read_text(encoding="utf-8"))
    assert written == {key: value for key, value in check.items() if key != "export_seconds"}
    assert 0 <= check["max_abs_diff"] <= onnx_export.TOLERANCE
    batch_sizes = {shape[0] for shape in check["batch_shapes"]}
    lengths = {shape[1] for shape in check["batch_shapes"]}
    assert batch_sizes == {1, len(onnx_export.CHECK_TEXTS)} and len(lengths) >= 4
    assert max(lengths) == 48  # the long text is cut at the tokenizer's model_max_length
    assert check["inputs"] == ["input_ids", "attention_mask"]  # what the builtin tokenizer returns


def test_served_probabilities_match_pytorch_on_unseen_shapes(exported, tiny_model_dir):
    """A batch size and lengths the export and its check never used: the axes are really dynamic."""
    out_dir, _ = exported
    texts = [TEXTS[2] * 4, TEXTS[3], TEXTS[4] * 2]
    served = serve(out_dir / onnx_export.ONNX_FILE, tiny_model_dir, texts)
    assert served.shape == (3, len(NAMES))
    np.testing.assert_allclose(served, torch_probabilities(tiny_model_dir, texts), atol=onnx_export.TOLERANCE,
                               rtol=0)


def test_the_check_detects_a_graph_that_differs(exported, tiny_model_dir):
    """The check can fail: the exported graph against a model whose classifier bias moved."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out_dir, _ = exported
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_model_dir)).eval()
    with torch.no_grad():
        model.classifier.bias[0] += 0.01
    worst, _ = onnx_export.max_abs_diff(model, AutoTokenizer.from_pretrained(str(tiny_model_dir)),
                                        out_dir / onnx_export.ONNX_FILE, threads=1)
    assert worst > onnx_export.TOLERANCE


@pytest.mark.parametrize("problem_type, labels, compared", [
    ("regression", ["score"], "predicted value"),
    ("multi_label_classification", ["anger", "joy", "sadness"], "sigmoid"),
])
def test_regression_and_multi_label_models_serve_their_own_scores(tiny_model_dir, tmp_path, problem_type, labels,
                                                                   compared):
    """The `probabilities` output follows problem_type: the value for regression (a softmax of one logit is a
    constant 1), independent sigmoids for multi-label (rows need not sum to 1)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    torch.manual_seed(1)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(model_dir), num_labels=len(labels), problem_type=problem_type, ignore_mismatched_sizes=True,
        id2label=dict(enumerate(labels)), label2id={name: i for i, name in enumerate(labels)})
    model.save_pretrained(str(model_dir))
    check = onnx_export.export_checked(model_dir, tmp_path / "onnx")
    assert check["max_abs_diff"] <= onnx_export.TOLERANCE and compared in check["compared"]
    texts = [TEXTS[0], TEXTS[1] * 3]
    served = serve(tmp_path / "onnx" / onnx_export.ONNX_FILE, model_dir, texts)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    with torch.no_grad():
        logits = model.eval()(**tokenizer(texts, padding=True, truncation=True, return_tensors="pt")).logits
    expected = (logits if problem_type == "regression" else torch.sigmoid(logits)).numpy()
    assert served.shape == (2, len(labels))
    if problem_type == "regression":
        assert len(set(served[:, 0].round(6))) == 2  # the values, not a constant 1.0
    else:
        assert not np.allclose(served.sum(axis=1), 1.0, atol=0.05)  # sigmoids, not a softmax
    np.testing.assert_allclose(served, expected, atol=onnx_export.TOLERANCE, rtol=0)


def test_push_without_a_hub_repo_id_names_the_param(tmp_path):
    raw = project_raw()
    raw["package"]["push_to_hub"] = True
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    result = call_main("stages.package", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: params.yaml: package: push_to_hub")
    assert "package.hub_repo_id" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


@pytest.mark.parametrize("repo_id", ["someone/ja textclf", "a/b/c", "-x/model"])
def test_a_malformed_hub_repo_id_is_refused(repo_id):
    with pytest.raises(UserError, match=r"package\.hub_repo_id: not a Hub repo id; use owner/name"):
        project_params({"package": {"push_to_hub": True, "hub_repo_id": repo_id}})
    assert project_params({"package": {"push_to_hub": True, "hub_repo_id": "someone/ja-textclf_v1.0"}})


# --- the package stage on the shared tiny run (slow) --------------------------------------------------------


def release_files(release: Path) -> dict[str, bytes]:
    return {str(p.relative_to(release)): p.read_bytes() for p in sorted(release.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def onnx_repo(sample_run, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    repo = copy_repo(sample_run.repo, tmp_path_factory.mktemp("onnx") / "repo")
    write_params(repo, {"package": {"onnx": True}})
    return repo, call_main("stages.package", cwd=repo)


def test_package_with_onnx_adds_only_the_onnx_folder(onnx_repo, sample_run):
    repo, result = onnx_repo
    assert result.returncode == 0, result.stderr
    default = release_files(sample_run.repo / "data/release")
    with_onnx = release_files(repo / "data/release")
    assert sorted(set(with_onnx) - set(default)) == ["onnx/check.json", "onnx/model.onnx"]
    assert {name: data for name, data in with_onnx.items() if not name.startswith("onnx/")} == default
    check = json.loads(with_onnx["onnx/check.json"])
    assert check["max_abs_diff"] <= onnx_export.TOLERANCE
    assert f"max abs diff {check['max_abs_diff']:.2g}" in result.stdout


def test_onnx_release_serves_the_evaluated_probabilities(onnx_repo):
    """The README snippet on the release reproduces the evaluate stage's validation probabilities."""
    repo, _ = onnx_repo
    frame = pd.read_csv(repo / "data/eval/predictions.csv", dtype={"text": str})
    valid = frame[frame["split"] == "valid"].head(40)
    served = serve(repo / "data/release/onnx/model.onnx", repo / "data/release", valid["text"].tolist())
    expected = valid[[f"p_{name}" for name in NAMES]].to_numpy(dtype=float)
    np.testing.assert_allclose(served, expected, atol=onnx_export.TOLERANCE, rtol=0)


def test_onnx_without_onnxruntime_is_refused_before_writing(sample_run, tmp_path, monkeypatch):
    repo = copy_repo(sample_run.repo, tmp_path / "repo")
    write_params(repo, {"package": {"onnx": True}})
    before = release_files(repo / "data/release")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what `import onnxruntime` meets when it is absent
    result = call_main("stages.package", cwd=repo)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: package.onnx: true needs onnxruntime (not installed)")
    assert "pip install '.[onnx]'" in result.stderr
    assert release_files(repo / "data/release") == before


def run_package(repo: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stages.package"], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=600)


def test_push_unreachable_hub_fails_after_writing_the_release(sample_run, tmp_path):
    """The real client against a closed port: exit 2, one line, and the release complete on disk."""
    repo = copy_repo(sample_run.repo, tmp_path / "repo")
    write_params(repo, {"package": {"push_to_hub": True, "hub_repo_id": "someone/ja-textclf"}})
    expected = release_files(repo / "data/release")
    for path in sorted((repo / "data/release").rglob("*"), reverse=True):  # written anew, not left over
        path.unlink() if path.is_file() else path.rmdir()
    (repo / "data/release").rmdir()
    env = {**env_with_venv(), "HF_HUB_OFFLINE": "0", "HF_TOKEN": "hf_not_a_real_token",
           "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf_home")}
    result = run_package(repo, env)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(
        "error: package.push_to_hub: could not push data/release to someone/ja-textclf at http://127.0.0.1:9")
    assert "the release directory is complete" in result.stderr
    assert release_files(repo / "data/release") == expected


def test_push_without_a_token_is_refused_before_writing(sample_run, tmp_path):
    repo = copy_repo(sample_run.repo, tmp_path / "repo")
    write_params(repo, {"package": {"push_to_hub": True, "hub_repo_id": "someone/ja-textclf"}})
    before = release_files(repo / "data/release")
    # Neither the developer's token nor their stored login.
    env = {key: value for key, value in env_with_venv().items() if key not in ("HF_TOKEN", "HF_TOKEN_PATH")}
    env["HF_HOME"] = str(tmp_path / "hf_home")
    result = run_package(repo, env)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: package.push_to_hub: no Hugging Face token found; set HF_TOKEN")
    assert release_files(repo / "data/release") == before
