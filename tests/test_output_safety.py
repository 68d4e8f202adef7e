"""Nothing a user owns is deleted or overwritten: `paths.*` values are checked before a stage touches anything.

Each stage runs as a subprocess (`python -m stages.<name>`) in a throwaway copy of the project; a refused
value must exit 2 with one `error: paths.<key>: ...` line and leave every file (inside and outside the
project) byte for byte as it was. The check happens before any work, so no pipeline run is needed for
these; the reruns over a stage's own outputs use the shared sample run.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stages.common.errors import UserError
from stages.common.outputs import OUTPUT_MARKER, atomic_dir
from stages.common.params import parse_params
from stages.common.paths import SUGGESTED, check_outputs
from tests.conftest import (
    REPO,
    copy_repo,
    deep_update,
    env_with_venv,
    make_pipeline_repo,
    write_params,
)


def tree_digest(root: Path) -> dict[str, str]:
    """Every entry under `root`: files by sha256, symlinks by target, directories by name."""
    digest = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            key = path.relative_to(root).as_posix()
            if path.is_symlink():
                digest[key] = "link:" + os.readlink(path)
            elif path.is_dir():
                digest[key] = "dir"
            else:
                digest[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def run_stage(repo: Path, stage: str) -> subprocess.CompletedProcess:
    env = dict(env_with_venv(), PYTHONDONTWRITEBYTECODE="1")  # no __pycache__ in the copy: nothing may change
    return subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=600)


def error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A git copy of the project (no pipeline run): enough, since the checks come before any work."""
    return make_pipeline_repo(tmp_path_factory.mktemp("output_safety") / "repo")


@pytest.fixture
def repo(project, tmp_path) -> Path:
    return copy_repo(project, tmp_path / "repo")


def outside_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "keep.txt").write_text("a user's file outside the project\n", encoding="utf-8")
    return folder


# (stage, key, value or a function of (repo, tmp_path) making it, fragment of the message)
def _foreign_folder(repo: Path, tmp_path: Path) -> str:
    (repo / "notes").mkdir()
    (repo / "notes" / "notes.txt").write_text("my notes\n", encoding="utf-8")
    return "notes"


def _absolute_outside(repo: Path, tmp_path: Path) -> str:
    return str(outside_folder(tmp_path))


def _parent_outside(repo: Path, tmp_path: Path) -> str:
    return str(repo / ".." / "outside")


def _symlink_out(repo: Path, tmp_path: Path) -> str:
    (repo / "data" / "link").symlink_to(outside_folder(tmp_path), target_is_directory=True)
    return "data/link/model"


STAGE_CASES = {
    "package_root": ("package", "release", ".", "is the project root"),
    "split_data_folder": ("split", "split", "data", "holds data.train_csv"),
    "evaluate_parent_dir": ("evaluate", "eval", "../outside", "lies outside the project"),
    "evaluate_foreign_folder": ("evaluate", "eval", _foreign_folder, "holds files this pipeline did not write (notes.txt)"),
    "embed_absolute_outside": ("embed", "embeddings", _absolute_outside, "lies outside the project"),
    "tokenize_home": ("tokenize", "tokenized", "~/x", "starts with '~'"),
    "submit_train_csv": ("submit", "submission", "data/sample/train.csv", "is data.train_csv"),
    "baselines_inside_model": ("baselines", "baselines", "data/model/baselines", "lies inside paths.model"),
    "train_symlink_outside": ("train", "model", _symlink_out, "lies outside the project"),
    "base_model_code": ("base_model", "base_model", "stages", "is stages"),
}


@pytest.mark.slow  # a stage subprocess per case (heavy imports before main runs)
@pytest.mark.parametrize("case", list(STAGE_CASES))
def test_stage_refuses_a_bad_output_path_and_touches_nothing(repo, tmp_path, case):
    stage, key, value, fragment = STAGE_CASES[case]
    if callable(value):
        value = value(repo, tmp_path)
    write_params(repo, {"paths": {key: value}})
    before, outside_before = tree_digest(repo), tree_digest(tmp_path)

    line = error_line(run_stage(repo, stage))

    assert line.startswith(f"error: paths.{key}: "), line
    assert fragment in line, line
    assert SUGGESTED[key] in line  # says what to use instead
    assert tree_digest(tmp_path) == outside_before  # the copy and everything next to it
    assert tree_digest(repo) == before
    assert not (tmp_path / "outside").exists() and not (repo / "~").exists()


# Every key against every kind of bad value, in-process (the stage calls this same function first).
BAD_VALUES = {
    "root": ".",
    "root_spelled_otherwise": "data/..",
    "parent": "../outside",
    "deep_parent": "data/eval/../../../outside",
    "home": "~/x",
    "empty": "",
    "train_csv": "data/sample/train.csv",
    "around_train_csv": "data/sample",
    "data_folder": "data",
    "params_file": "params.yaml",
    "dvc_file": "dvc.yaml",
    "inside_code": "stages/common/out",
    "inside_git": ".git/out",
    "inside_dvc": ".dvc/out",
    "tests": "tests",
    "embed_cache": ".cache/embed",
}
KEYS = list(SUGGESTED)
STAGE_OF = {"split": "split", "base_model": "base_model", "model_summary": "base_model", "tokenized": "tokenize",
            "tokenize_report": "tokenize", "embeddings": "embed", "model": "train", "train_dir": "train",
            "train_log": "train", "eval": "evaluate", "submission": "submit", "release": "package",
            "baselines": "baselines", "cv": "cv_split", "cv_eval": "cv_evaluate", "cv_train_dir": "cv_train"}


def params_with(repo: Path, paths: dict):
    raw = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    return parse_params(deep_update(raw, {"paths": paths}))


@pytest.mark.parametrize("key", KEYS)
def test_every_key_refuses_every_bad_location(project, tmp_path, monkeypatch, key):
    repo = project  # read-only here: nothing may change
    monkeypatch.chdir(repo)
    outside = outside_folder(tmp_path)
    values = {**BAD_VALUES, "absolute_outside": str(outside), "absolute_parent": str(repo.parent)}
    before, repo_before = tree_digest(tmp_path), tree_digest(repo)
    for name, value in values.items():
        for stage in ("split", STAGE_OF[key]):  # every stage checks every key's location
            with pytest.raises(UserError, match=rf"^paths\.{key}: ") as caught:
                check_outputs(params_with(repo, {key: value}), stage)
            assert "\n" not in str(caught.value), (name, str(caught.value))
    assert tree_digest(tmp_path) == before and tree_digest(repo) == repo_before


@pytest.mark.parametrize("key", KEYS)
def test_no_output_may_lie_inside_or_around_another(project, monkeypatch, key):
    repo = project
    monkeypatch.chdir(repo)
    other = "model" if key != "model" else "split"
    for value in (SUGGESTED[other], f"{SUGGESTED[other]}/inner", SUGGESTED[other].rsplit("/", 1)[0] + "/x/.."):
        with pytest.raises(UserError, match=rf"^paths\.{key}: .*paths\.{other}|^paths\.{key}: .*holds") as caught:
            check_outputs(params_with(repo, {key: value}), STAGE_OF[key])
        assert "\n" not in str(caught.value)
    # one value around another: the error names one of the two (an unchanged default is never blamed)
    with pytest.raises(UserError, match=rf"^paths\.({key}|{other}): .*(holds|inside) paths\.({key}|{other}) "):
        check_outputs(params_with(repo, {key: "data/group", other: "data/group/inner"}), STAGE_OF[key])


def test_the_project_as_shipped_passes_every_stage(project, tmp_path, monkeypatch):
    """A clone: dvc.lock lists the committed outputs (data/base_model.json, data/eval/metrics.json, ...)."""
    repo = copy_repo(project, tmp_path / "repo")
    shutil.copy2(REPO / "dvc.lock", repo / "dvc.lock")
    monkeypatch.chdir(repo)
    params = params_with(repo, {})
    before = tree_digest(repo)
    for stage in sorted(set(STAGE_OF.values())):
        check_outputs(params, stage)
    # the only change: the marker of the folders that evaluate and train write entries into (already committed)
    assert tree_digest(repo) == before
    assert (repo / "data/eval" / OUTPUT_MARKER).is_file() and (repo / "data/train_log" / OUTPUT_MARKER).is_file()


def test_an_existing_file_output_of_someone_else_is_refused(project, tmp_path, monkeypatch):
    repo = copy_repo(project, tmp_path / "repo")
    monkeypatch.chdir(repo)
    (repo / "data" / "mine.json").write_text('{"mine": true}\n', encoding="utf-8")
    for key in ("model_summary", "tokenize_report", "submission"):
        with pytest.raises(UserError, match=rf"^paths\.{key}: 'data/mine\.json' already exists and is a file this "
                                            r"pipeline has no record of writing"):
            check_outputs(params_with(repo, {key: "data/mine.json"}), STAGE_OF[key])
    assert (repo / "data" / "mine.json").read_text() == '{"mine": true}\n'


def test_atomic_dir_refuses_to_replace_a_foreign_directory(tmp_path, monkeypatch):
    """The last line of defence, for library code called without the stage check."""
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "out"
    target.mkdir()
    (target / "notes.txt").write_text("mine\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"out: not replaced: it holds files this pipeline did not write \(notes\.txt\)"):
        with atomic_dir(target) as tmp:
            (tmp / "x").write_text("x")
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp directory left behind
    # an empty directory, or one this pipeline marked, is replaced
    (target / "notes.txt").unlink()
    with atomic_dir(target) as tmp:
        (tmp / OUTPUT_MARKER).write_text("")
        (tmp / "a").write_text("a")
    with atomic_dir(target) as tmp:
        (tmp / "b").write_text("b")
    assert sorted(p.name for p in target.iterdir()) == [OUTPUT_MARKER, "b"]


# --- the normal case: a stage reruns over its own outputs -------------------------------------------------

def test_stages_rerun_over_their_own_outputs(sample_run, tmp_path):
    repo = copy_repo(sample_run.repo, tmp_path / "repo")
    release, evaluation = repo / "data/release", repo / "data/eval"
    assert (release / OUTPUT_MARKER).is_file() and (evaluation / OUTPUT_MARKER).is_file()
    before = {"release": tree_digest(release), "eval": tree_digest(evaluation),
              "baselines": tree_digest(repo / "data/baselines")}
    for _ in range(2):  # first over what dvc.lock lists, then over what the stage itself recorded
        for stage in ("package", "baselines"):
            result = run_stage(repo, stage)
            assert result.returncode == 0, result.stderr[-3000:]
    (evaluation / "notes.txt").write_text("a user's note in the marked folder stays\n", encoding="utf-8")
    assert run_stage(repo, "evaluate").returncode == 0
    assert tree_digest(release) == before["release"]  # byte-identical reruns, marker included
    assert tree_digest(repo / "data/baselines") == before["baselines"]
    assert {k: v for k, v in tree_digest(evaluation).items() if k != "notes.txt"} == before["eval"]
    assert (evaluation / "notes.txt").is_file()


def test_a_new_output_path_gets_the_marker_and_a_foreign_one_is_left_alone(sample_run, tmp_path):
    repo = copy_repo(sample_run.repo, tmp_path / "repo")
    write_params(repo, {"paths": {"release": "data/release2"}})
    assert run_stage(repo, "package").returncode == 0
    assert (repo / "data/release2" / OUTPUT_MARKER).is_file()
    assert run_stage(repo, "package").returncode == 0  # not in dvc.lock, but marked
    shutil.rmtree(repo / "data/release2")
    (repo / "data/release2").mkdir()
    (repo / "data/release2" / "weights.safetensors").write_bytes(b"someone else's model")
    before = tree_digest(repo)
    line = error_line(run_stage(repo, "package"))
    assert line == ("error: paths.release: 'data/release2' already exists and holds files this pipeline did not "
                    "write (weights.safetensors); a stage replaces only what it wrote: give a new or empty folder, "
                    "such as data/release, or move those files away")
    assert tree_digest(repo) == before


def test_dvc_repro_refuses_before_dvc_deletes_a_users_folder(sample_run, tmp_path):
    """`dvc repro` deletes a stage's declared outs before running it: check_paths must stop the run first."""
    repo = copy_repo(sample_run.repo, tmp_path / "repo")
    (repo / "notes").mkdir()
    (repo / "notes" / "notes.txt").write_text("my notes\n", encoding="utf-8")
    write_params(repo, {"paths": {"eval": "notes"}})
    before = tree_digest(repo / "notes")
    result = subprocess.run(["dvc", "repro"], cwd=repo, env=env_with_venv(), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode != 0
    assert "error: paths.eval: 'notes' already exists and holds files this pipeline did not write" in result.stderr
    assert "Running stage 'evaluate'" not in result.stdout
    assert tree_digest(repo / "notes") == before
