"""The committed dvc.lock describes the committed code, params and data: a fresh clone's `dvc status` shows
only outputs that are not pulled yet (deleted), never a changed dep, param or command."""
from __future__ import annotations

import json
import shutil

from tests.conftest import REPO, repo_files, run


def fresh_clone(dest):
    """What `git clone` gives: the tracked (and not ignored) files, no DVC cache, no outputs."""
    for name in repo_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    run(["git", "init", "-q"], dest)
    return dest


ABSENT = {"deleted", "not in cache"}  # an output a fresh clone has not pulled yet: fine


def stale_entries(status: dict) -> list[str]:
    """Everything in `dvc status --json` except outputs (or deps that are outputs) not present yet: a changed
    dep (code, data), param or command means dvc.lock was not refreshed after a change."""
    stale = []
    for stage, changes in status.items():
        for change in changes:
            if not isinstance(change, dict):
                stale.append(f"{stage}: {change}")
                continue
            for kind, entries in change.items():
                if isinstance(entries, dict):
                    # params.yaml's entry is itself a dict ({"train": "modified", "data.task": "new"}).
                    stale += [f"{stage}: {kind} {path} {state}" for path, state in entries.items()
                              if isinstance(state, dict) or state not in ABSENT]
                else:
                    stale.append(f"{stage}: {kind} {entries}")
    return stale


def test_committed_lock_matches_code_params_and_data(tmp_path):
    clone = fresh_clone(tmp_path / "clone")
    assert (clone / "dvc.lock").is_file(), "dvc.lock is not committed"
    status = json.loads(run(["dvc", "status", "--json"], clone).stdout)
    stale = stale_entries(status)
    assert not stale, ("dvc.lock is stale: run `dvc repro` and commit dvc.lock and the metrics/plots files: "
                       + "; ".join(stale[:10]))


def test_stale_entries_reports_changed_params_and_ignores_unpulled_outputs():
    status = {"train": [{"changed deps": {"stages/train.py": "modified", "params.yaml": {"data.task": "new"}}},
                        {"changed outs": {"data/model": "deleted"}}]}
    assert stale_entries(status) == ["train: changed deps stages/train.py modified",
                                     "train: changed deps params.yaml {'data.task': 'new'}"]
