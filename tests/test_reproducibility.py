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


def test_fresh_clone_killed_during_embed_recovers_to_identical_outputs(sample_run, tmp_path):
    """A second fresh clone of the sample run, its embed stage SIGKILLed mid-output: the rerun recovers, and every
    output (and metrics.json byte for byte) equals the first clone's: runs are reproducible across clones, and a
    killed stage leaves nothing that changes a result. One pipeline run checks both (each costs minutes)."""
    reference = sample_run.repo
    repo = make_sample_repo(tmp_path / "repo", sample_run.test_csv)
    killed = kill_when(repo, ".embeddings.tmp*")
    assert killed.returncode == -signal.SIGKILL
    assert not (repo / "data/embeddings").exists()  # nothing half-written in place

    rerun = run(["dvc", "repro"], repo)
    assert "Running stage 'embed'" in rerun.stdout
    assert not list((repo / "data").glob(".embeddings.tmp*"))
    vectors = np.load(repo / "data/embeddings/train.npy")
    assert np.isfinite(vectors).all() and np.abs(vectors).sum(axis=1).min() > 0  # every row written
    assert out_md5s(repo) == out_md5s(reference)
    metrics = "data/eval/metrics.json"
    assert (repo / metrics).read_bytes() == (reference / metrics).read_bytes()
    assert not list(repo.rglob("*.pkl")) and not list((repo / "data").rglob("*.bin"))
    assert "Data and pipelines are up to date" in run(["dvc", "status"], repo).stdout
