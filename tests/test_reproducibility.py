"""Byte-identical reruns from fresh clones, and recovery from a stage killed with SIGKILL mid-output."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import env_with_venv, make_sample_repo, run

pytestmark = pytest.mark.slow


def out_md5s(repo: Path) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


@pytest.fixture(scope="module")
def reference_run(sample_run) -> Path:
    return sample_run.repo


def test_two_fresh_clones_give_identical_outputs(reference_run, sample_run, tmp_path):
    other = make_sample_repo(tmp_path / "repo", sample_run.test_csv)
    run(["dvc", "repro"], other)
    assert out_md5s(other) == out_md5s(reference_run)
    metrics = "data/eval/metrics.json"
    assert (other / metrics).read_bytes() == (reference_run / metrics).read_bytes()
    assert not list(other.rglob("*.pkl")) and not list((other / "data").rglob("*.bin"))


def kill_when(repo: Path, pattern: str, timeout: float = 600) -> subprocess.Popen:
    """Start `dvc repro` and SIGKILL its whole process group as soon as `pattern` exists under data/."""
    process = subprocess.Popen(["dvc", "repro"], cwd=repo, env=env_with_venv(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list((repo / "data").glob(pattern)):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return process
        if process.poll() is not None:
            pytest.fail(f"dvc repro finished before {pattern} appeared")
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    pytest.fail(f"{pattern} never appeared")


def test_sigkill_during_embed_then_repro_recovers(reference_run, sample_run, tmp_path):
    repo = make_sample_repo(tmp_path / "repo", sample_run.test_csv)
    killed = kill_when(repo, ".embeddings.tmp*")
    assert killed.returncode == -signal.SIGKILL
    assert not (repo / "data/embeddings").exists()  # nothing half-written in place

    rerun = run(["dvc", "repro"], repo)
    assert "Running stage 'embed'" in rerun.stdout
    assert not list((repo / "data").glob(".embeddings.tmp*"))
    vectors = np.load(repo / "data/embeddings/train.npy")
    assert np.isfinite(vectors).all() and np.abs(vectors).sum(axis=1).min() > 0  # every row written
    assert out_md5s(repo) == out_md5s(reference_run)
    assert (repo / "data/eval/metrics.json").read_bytes() == (reference_run / "data/eval/metrics.json").read_bytes()
    assert "Data and pipelines are up to date" in run(["dvc", "status"], repo).stdout
