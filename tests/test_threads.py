"""Concurrent pipeline processes share the CPU cores (stages/common/threads.py).

Each test uses its own registry folder (or its own temp folder): the real per-user one holds whatever other
pipelines on this machine are running now.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import threadpoolctl
import torch

from stages.common import threads
from stages.common.errors import UserError
from stages.common.threads import CoreShare, fair_share, fixed_threads, live_processes
from tests.conftest import REPO, env_with_venv

REGISTER_AND_SLEEP = ("import sys, time; from pathlib import Path; from stages.common.threads import CoreShare; "
                      "CoreShare(Path(sys.argv[1])).register(); print('registered', flush=True); time.sleep(300)")


def start_registered_child(folder: Path) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", REGISTER_AND_SLEEP, str(folder)], cwd=REPO, env=env_with_venv(),
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "registered"
    return child


def stop(child: subprocess.Popen) -> None:
    child.kill()
    child.wait(timeout=30)


@pytest.fixture
def registry(tmp_path) -> Path:
    folder = tmp_path / "running"
    folder.mkdir()
    return folder


@pytest.fixture
def torch_threads():
    """Tests change the process's thread counts: put them back."""
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


@pytest.fixture
def active(monkeypatch):
    """Install a CoreShare as the running stage's, re-checking at every call (no 5 s wait)."""
    monkeypatch.setattr(threads, "RECHECK_SECONDS", 0.0)

    def install(share: CoreShare) -> CoreShare:
        monkeypatch.setattr(threads, "ACTIVE", share)
        return share

    return install


def test_live_processes_divide_the_budget_and_dead_ones_are_cleaned_up(registry):
    ours = CoreShare(registry, budget=6)
    ours.register()
    foreign = {"12345": "not a registration\n", "notes.txt": "hello\n"}  # never counted, never removed
    for name, text in foreign.items():
        (registry / name).write_text(text)
    assert ours.share().threads == 6 and ours.share().processes == 1
    first = start_registered_child(registry)
    second = None
    try:
        assert (ours.share().processes, ours.share().threads) == (2, 3)
        second = start_registered_child(registry)
        assert (ours.share().processes, ours.share().threads) == (3, 2)
        stop(second)
        assert (ours.share().processes, ours.share().threads) == (2, 3)
        assert not (registry / str(second.pid)).exists(), "a dead process's registration stays"
        stop(first)
        assert (ours.share().processes, ours.share().threads) == (1, 6)
        assert not (registry / str(first.pid)).exists()
    finally:
        for child in (first, second):
            if child is not None and child.poll() is None:
                stop(child)
    assert {p.name for p in registry.iterdir()} == {str(os.getpid()), *foreign}
    ours.unregister()
    assert not (registry / str(os.getpid())).exists()


def test_a_reused_pid_is_not_a_registered_process(registry):
    """A registration left by kill -9 whose pid now runs another program (other start time) does not count."""
    (registry / str(os.getppid())).write_text(f"{threads.MARKER}\n1\n")
    assert live_processes(registry) == []
    assert not (registry / str(os.getppid())).exists()


def test_shares_add_up_to_the_budget_and_are_at_least_one():
    for budget in (1, 2, 7, 16):
        for count in (1, 2, 3, 5):
            pids = list(range(100, 100 + count))
            shares = [fair_share(budget, pids, pid) for pid in pids]
            assert min(shares) >= 1 and max(shares) - min(shares) <= 1
            assert sum(shares) == max(budget, count)


@pytest.mark.parametrize("value", ["0", "-1", "x", "2.5", "1e3"])
def test_a_bad_thread_count_names_the_variable(value):
    with pytest.raises(UserError, match="JA_TEXTCLF_THREADS") as error:
        fixed_threads({"JA_TEXTCLF_THREADS": value})
    assert "\n" not in str(error.value)


def test_the_variable_fixes_the_count_whatever_runs(registry):
    assert fixed_threads({"JA_TEXTCLF_THREADS": " 3 "}) == 3
    assert fixed_threads({"JA_TEXTCLF_THREADS": ""}) is None and fixed_threads({}) is None
    (registry / str(os.getppid())).write_text(f"{threads.MARKER}\n{threads.process_stat(os.getppid())[1]}\n")
    share = CoreShare(registry, budget=2, fixed=3).share()
    assert (share.threads, share.fixed) == (3, True)


def test_a_stage_refuses_a_bad_variable_with_one_line(tmp_path):
    """The real command: exit 2, `error: ...` on one line, before anything is read."""
    env = {**env_with_venv(), "JA_TEXTCLF_THREADS": "0", "TMPDIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "stages.predict"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: JA_TEXTCLF_THREADS='0'") and result.stderr.count("\n") == 1


def test_applying_sets_torch_and_blas_threads_and_restores_them(registry, torch_threads):
    other = CoreShare(registry, pid=os.getppid())  # a live process of ours stands in for a second run
    other.register()
    notes = []
    share = CoreShare(registry, budget=2, announce=notes.append)
    share.register()
    applied = share.apply()
    assert applied.processes == 2 and torch.get_num_threads() == applied.threads == 1
    np.ones((64, 64)) @ np.ones((64, 64))  # numpy's BLAS is loaded
    assert {lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"} == {1}
    assert notes == ["2 pipeline processes share 2 CPU threads: 1 here (set JA_TEXTCLF_THREADS to fix the count)"]
    share.restore()
    assert torch.get_num_threads() == torch_threads


def test_a_lone_run_keeps_its_defaults_and_prints_nothing(registry, torch_threads):
    notes = []
    torch.set_num_threads(1)  # what a lone run would have, if its default were not the budget
    CoreShare(registry, budget=2, announce=notes.append).apply()
    assert torch.get_num_threads() == 1 and notes == []


def test_the_trainer_callback_reapplies_when_another_run_starts_and_ends(registry, torch_threads, active):
    """A real Trainer: the share is re-checked between its steps, in the thread that runs them."""
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments

    from stages.modeling.training import SharedCores

    other = CoreShare(registry, pid=os.getppid())
    notes = []
    torch.set_num_threads(2)  # a lone run's count (the budget below)
    share = active(CoreShare(registry, budget=2, announce=notes.append))
    share.register()
    share.apply()
    seen = []

    class OtherRunStartsAtStep2EndsAtStep4(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            seen.append(torch.get_num_threads())
            if state.global_step == 2:
                other.register()
            if state.global_step == 4:
                other.unregister()

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=32, num_labels=2))
    rows = [{"input_ids": [1, 2 + i % 7, 3], "labels": i % 2} for i in range(12)]
    args = TrainingArguments(output_dir=str(registry.parent / "out"), max_steps=6, per_device_train_batch_size=2,
                             report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=rows,
            callbacks=[SharedCores(), OtherRunStartsAtStep2EndsAtStep4()]).train()
    assert seen == [2, 2, 1, 1, 2, 2], seen
    assert notes == ["2 pipeline processes share 2 CPU threads: 1 here (set JA_TEXTCLF_THREADS to fix the count)",
                     "no other pipeline process now: back to 2 CPU threads"]


def test_predict_batches_recheck_the_share(registry, torch_threads, active):
    from transformers import BertConfig, BertForSequenceClassification

    from stages.modeling.inference import predict_proba

    other = CoreShare(registry, pid=os.getppid())
    torch.set_num_threads(2)
    share = active(CoreShare(registry, budget=2))
    share.register()
    share.apply()
    other.register()
    model = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=32, num_labels=2))
    predict_proba(model, [[1, 2, 3]] * 4, 2, torch.device("cpu"))
    assert torch.get_num_threads() == 1


def test_torchrun_ranks_count_and_the_launcher_does_not(registry, monkeypatch, active):
    launcher = active(CoreShare(registry, budget=2))
    launcher.register()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads.before_torchrun()
    assert live_processes(registry) == []
    assert os.environ["OMP_NUM_THREADS"] == str(threads.default_threads())  # torchrun would give each rank 1


def test_a_registry_folder_of_someone_else_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    user = os.getuid()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / f"ja-textclf-{user}").symlink_to(elsewhere)
    assert threads.registry_dir() is None
    (tmp_path / f"ja-textclf-{user}").unlink()
    assert threads.registry_dir() == tmp_path / f"ja-textclf-{user}" / "running"


def test_a_stage_registers_while_it_runs_and_not_after(tmp_path, monkeypatch):
    """The decorator on a stage main, in process: registered during main, gone after it, also after an error."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = tmp_path / f"ja-textclf-{os.getuid()}" / "running"
    during = []

    @threads.shares_cores
    def main():
        during.append(live_processes(folder))
        raise UserError("stop")

    with pytest.raises(UserError):
        main()
    assert during == [[os.getpid()]] and live_processes(folder) == [] and threads.ACTIVE is None


def test_embed_caches_only_vectors_made_at_the_thread_count_of_its_key(tmp_path, registry, torch_threads, active):
    """The cache key holds the thread count at the start; vectors made after the share changed are not stored
    under it (their last bits may differ)."""
    from tests.test_embed import as_splits, random_sequences, run_embed, save_model

    model_dir = save_model(tmp_path / "model")
    texts = random_sequences(30, seed=3)
    splits = as_splits(texts[:20], texts[20:])
    torch.set_num_threads(2)
    share = active(CoreShare(registry, budget=2))
    share.register()
    share.apply()
    other = CoreShare(registry, pid=os.getppid())
    other.register()  # another run starts: this one goes from 2 threads to 1 at its first batch
    changed, _ = run_embed(model_dir, splits, tmp_path / "a", tmp_path / "cache", precision="fp32")
    assert torch.get_num_threads() == 1 and changed["train"]["embedded"] == 20
    other.unregister()
    share.apply()  # back to 2, as at the next check of a stage
    alone, _ = run_embed(model_dir, splits, tmp_path / "b", tmp_path / "cache", precision="fp32")
    assert torch.get_num_threads() == 2
    assert (alone["train"]["from_cache"], alone["train"]["embedded"]) == (0, 20)  # nothing stored under "2 threads"
    again, _ = run_embed(model_dir, splits, tmp_path / "c", tmp_path / "cache", precision="fp32")
    assert (again["train"]["from_cache"], again["valid"]["from_cache"]) == (20, 10)


def test_a_registry_removed_meanwhile_means_running_alone(tmp_path, registry, torch_threads):
    share = CoreShare(registry, budget=2)
    share.register()
    CoreShare(registry, pid=os.getppid()).register()
    assert share.share().threads == 1
    for entry in registry.iterdir():
        entry.unlink()
    registry.rmdir()  # e.g. a temp-folder cleaner
    assert (share.share().processes, share.share().threads) == (1, 2)
