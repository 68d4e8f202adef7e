"""A team set-up: push a finished run to a DVC remote from one clone, pull it into another."""
from __future__ import annotations

import pytest

from tests.conftest import run

pytestmark = pytest.mark.slow


def test_push_from_one_clone_and_pull_into_another(sample_run, tmp_path):
    store = tmp_path / "dvc-store"  # a local directory remote: works offline, like a shared drive
    first = tmp_path / "first"
    run(["git", "clone", "-q", str(sample_run.repo), str(first)], tmp_path)
    # The first clone has no outputs yet: fetch them from the original repo's cache, as a colleague would
    # after `dvc pull`; here the original plays the remote's role for the first hop.
    run(["dvc", "remote", "add", "-d", "origin-cache", str(sample_run.repo / ".dvc" / "cache")], first)
    run(["dvc", "pull", "-q"], first)
    run(["dvc", "remote", "add", "-f", "-d", "team", str(store)], first)
    run(["git", "commit", "-qam", "team remote"], first)
    run(["dvc", "push", "-q"], first)
    assert any(store.rglob("*")), "dvc push wrote nothing to the remote"

    second = tmp_path / "second"
    run(["git", "clone", "-q", str(first), str(second)], tmp_path)
    run(["dvc", "pull", "-q"], second)
    assert (second / "data/release/config.json").is_file()
    assert (second / "data/eval/predictions.csv").read_bytes() == (sample_run.repo / "data/eval/predictions.csv").read_bytes()
    status = run(["dvc", "status"], second)
    assert "up to date" in status.stdout.lower(), status.stdout
