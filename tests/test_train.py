"""train stage: class weights, early stopping, params checks, determinism, SIGKILL-resume, 2 processes.

One tiny pipeline repo per module (split + builtin model + tokenize once); the fast tests call the
stage's functions in-process, the resume and multi-process tests run real `dvc repro`.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import pickle
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from sklearn.utils.class_weight import compute_class_weight
from transformers import AutoModelForSequenceClassification, Trainer

from stages.common.errors import UserError
from stages.common.params import TrainParams, parse_params, project_params
from stages.modeling import checkpointing as ckpt
from stages.modeling.model_dir import LOAD_TIME_KEYS
from stages.modeling.training import (
    EpochLengthGroupedSampler,
    ProjectTrainer,
    class_weights_for,
    build_trainer,
    save_model,
)
from tests.conftest import call_main, copy_repo, env_with_venv, make_pipeline_repo, write_params

# Evaluate and checkpoint every 5 steps: an epoch of the sample's 324 training rows (360 minus the dev split)
# is 21 steps, so the first
# checkpoints fall mid-epoch. No early stop and 40 steps, so every run has the same length.
RESUMABLE = {"train": {"eval_strategy": "steps", "eval_steps": 5, "save_strategy": "steps", "save_steps": 5,
                       "early_stopping_patience": 0, "max_steps": 40}}
TOTAL_STEPS = 40
STEPS_PER_EPOCH = 21


def run_fast(cmd: list[str], cwd: Path, check: bool = True, **popen) -> subprocess.CompletedProcess:
    """conftest.run with one OpenMP thread: the tiny model gains nothing from more, and a busy 2-core
    machine slows multi-threaded tiny ops down many times (threads wait for each other)."""
    env = env_with_venv()
    env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory) -> Path:
    repo = make_pipeline_repo(tmp_path_factory.mktemp("train") / "repo", RESUMABLE)
    run_fast(["dvc", "repro", "tokenize"], repo)
    return repo


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_train(**overrides) -> TrainParams:
    base = {"epochs": 1, "batch_size": 16, "learning_rate": 0.002, "warmup_ratio": 0.0,
            "eval_strategy": "no", "save_strategy": "no", "early_stopping_patience": 0}
    return TrainParams.from_project(**{**base, **overrides})


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- params ------------------------------------------------------------------------------------

@pytest.mark.parametrize("train, fragment", [
    ({"lr_scheduler_type": "cosine_typo"}, "unknown scheduler 'cosine_typo'; allowed: linear, cosine"),
    ({"early_stopping_patience": 2, "eval_strategy": "no"}, "needs eval_strategy"),
    ({"early_stopping_patience": 2, "save_strategy": "no"}, "needs save_strategy"),
    ({"save_strategy": "steps"}, "must equal eval_strategy"),
    ({"eval_strategy": "steps", "save_strategy": "steps", "eval_steps": 30, "save_steps": 40}, "multiple of eval_steps"),
    ({"metric_for_best_model": "auc"}, "train.metric_for_best_model"),
    ({"class_weights": "inverse"}, "train.class_weights"),
    ({"max_steps": 0}, "train.max_steps"),
    ({"nproc": 0}, "train.nproc"),
])
def test_bad_train_params_are_one_line_user_errors(train, fragment):
    with pytest.raises(UserError) as err:
        project_params({"train": train})
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_default_params_file_is_valid_and_train_deps_match_dvc_yaml():
    repo = Path(__file__).resolve().parents[1]
    params = parse_params(yaml.safe_load((repo / "params.yaml").read_text()))  # the committed file
    assert params.train.group_by_length and params.train.metric_for_best_model == "macro_f1"


# ---- class weights -----------------------------------------------------------------------------

def test_class_weights_for_match_sklearn():
    labels = np.array([0] * 8 + [1] * 1 + [2] * 3)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    assert np.allclose(class_weights_for(labels, 3).numpy(), expected)
    with pytest.raises(UserError, match="have no training rows"):
        class_weights_for(np.array([0, 0, 2]), 3)
    # sqrt: the same order of classes, the ratio between the rarest and the most common shrunk to its square root
    soft = class_weights_for(labels, 3, "sqrt").numpy()
    assert np.allclose(soft, np.sqrt(expected))
    assert soft[1] / soft[0] == pytest.approx(np.sqrt(8)) and soft[1] / soft[0] < expected[1] / expected[0]
    with pytest.raises(UserError, match="class_weights: sqrt: classes \\[1\\] have no training rows"):
        class_weights_for(np.array([0, 0, 2]), 3, "sqrt")


def test_selection_sees_the_dev_split_and_never_a_valid_text(tiny_repo, tmp_path, one_thread):
    """Early stopping and the kept checkpoint are chosen on the Trainer's eval set: it must be dev, not valid."""
    tokenized = datasets.load_from_disk(tiny_repo / "data/tokenized")
    split = datasets.load_from_disk(tiny_repo / "data/split")
    trainer = build_trainer(tokenized, str(tiny_repo / "data/base_model"),
                            tiny_train(eval_strategy="epoch", save_strategy="epoch", early_stopping_patience=1),
                            str(tmp_path))
    seen = [tuple(ids) for ids in trainer.eval_dataset["input_ids"]] + [tuple(ids) for ids in trainer.train_dataset["input_ids"]]
    assert [tuple(ids) for ids in trainer.eval_dataset["input_ids"]] == [tuple(ids) for ids in tokenized["dev"]["input_ids"]]
    assert not {tuple(ids) for ids in tokenized["valid"]["input_ids"]} & set(seen)
    assert not set(split["valid"]["text"]) & (set(split["dev"]["text"]) | set(split["train"]["text"]))


def test_length_grouped_sampler_gets_the_lengths_as_a_list(tiny_repo, tmp_path):
    """datasets 5 gives a column as a lazy Column, each `[i]` a table read: the per-epoch sort by length did
    16 of them per step (bench/train.py --overhead). Same values, so the same batch order."""
    tokenized = datasets.load_from_disk(tiny_repo / "data/tokenized")
    trainer = build_trainer(tokenized, str(tiny_repo / "data/base_model"), tiny_train(), str(tmp_path))
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, EpochLengthGroupedSampler) and type(sampler.lengths) is list
    assert sampler.lengths == [len(ids) for ids in tokenized["train"]["input_ids"]]


def test_class_weights_reach_the_trainer_loss(tiny_repo, tmp_path, one_thread):
    tokenized = datasets.load_from_disk(tiny_repo / "data/tokenized")
    base_model = str(tiny_repo / "data/base_model")
    weighted = build_trainer(tokenized, base_model, tiny_train(class_weights="balanced", precision="fp32"), str(tmp_path))
    plain = build_trainer(tokenized, base_model, tiny_train(precision="fp32"), str(tmp_path))
    rows = [weighted.train_dataset[i] for i in range(0, 300, 20)]
    batch = weighted.data_collator(rows)
    labels = batch["labels"]
    weighted.model.eval()
    with torch.no_grad():
        loss = weighted.compute_loss(weighted.model, dict(batch))
        logits = weighted.model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        plain_loss = plain.compute_loss(plain.model.eval(), dict(batch))
    counts = np.bincount(np.asarray(tokenized["train"]["label"]), minlength=3)
    weights = torch.tensor(counts.sum() / (3 * counts), dtype=torch.float32)
    assert torch.allclose(loss, F.cross_entropy(logits, labels, weight=weights), atol=1e-6)
    assert torch.allclose(plain_loss, F.cross_entropy(logits, labels), atol=1e-6)


# ---- early stopping, determinism, checkpoint files ---------------------------------------------

def head_that_tells_dev_texts_apart(trainer: Trainer) -> None:
    """A fixed random head on the dev texts' [CLS] vectors minus their mean. The tiny base model's vectors differ
    by about 1e-3 between texts, so its own random head gives every text one class, and early stopping does not
    count such evaluations."""
    batch = next(iter(trainer.get_eval_dataloader()))  # the whole dev split: 36 rows, eval batch 64
    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        pooled = trainer.model.bert(**inputs).pooler_output
        weight = torch.randn(trainer.model.num_labels, pooled.shape[1], generator=torch.Generator().manual_seed(0))
        trainer.model.classifier.weight.copy_(weight)
        trainer.model.classifier.bias.copy_(-weight @ pooled.mean(0))


def test_early_stopping_stops_and_keeps_the_best_model(tiny_repo, tmp_path, one_thread):
    tokenized = datasets.load_from_disk(tiny_repo / "data/tokenized")
    # A learning rate too small to change any prediction: macro-F1 never improves after the first epoch.
    train = tiny_train(epochs=6, learning_rate=1e-12, eval_strategy="epoch", save_strategy="epoch",
                       early_stopping_patience=1, precision="fp32")
    trainer = build_trainer(tokenized, str(tiny_repo / "data/base_model"), train, str(tmp_path))
    head_that_tells_dev_texts_apart(trainer)
    trainer.train()
    assert trainer.args.load_best_model_at_end and trainer.args.metric_for_best_model == "macro_f1"
    assert trainer.state.global_step < 6 * STEPS_PER_EPOCH  # stopped early
    assert trainer.state.best_global_step == STEPS_PER_EPOCH  # the first evaluation stayed the best
    assert all(e["eval_predicted_classes"] > 1 for e in trainer.state.log_history if "eval_loss" in e)


def test_early_stopping_waits_while_the_model_gives_every_text_one_class(tiny_repo, tmp_path, one_thread):
    tokenized = datasets.load_from_disk(tiny_repo / "data/tokenized")
    train = tiny_train(epochs=4, learning_rate=1e-12, eval_strategy="epoch", save_strategy="epoch",
                       early_stopping_patience=1, precision="fp32")
    trainer = build_trainer(tokenized, str(tiny_repo / "data/base_model"), train, str(tmp_path))
    with torch.no_grad():  # the constant answer: class 0 for every text, and too small an LR to leave it
        trainer.model.classifier.weight.zero_()
        trainer.model.classifier.bias.copy_(torch.tensor([5.0] + [0.0] * (trainer.model.num_labels - 1)))
    trainer.train()
    evals = [e for e in trainer.state.log_history if "eval_loss" in e]
    assert [e["eval_predicted_classes"] for e in evals] == [1] * 4
    assert trainer.state.global_step == 4 * STEPS_PER_EPOCH  # patience 1, yet no early stop
    assert trainer.state.best_global_step == STEPS_PER_EPOCH


def test_train_stage_warns_when_the_kept_model_gives_every_dev_text_one_class(tiny_repo, tmp_path, one_thread):
    repo = copy_repo(tiny_repo, tmp_path / "repo")
    # The tiny base model gives every text one class (see head_that_tells_dev_texts_apart); this LR never moves it.
    write_params(repo, {"train": {"learning_rate": 1e-12, "max_steps": 10}})
    result = call_main("stages.train", cwd=repo)
    assert result.returncode == 0, result.stderr[-2000:]
    warnings = [line for line in result.stdout.splitlines() if line.startswith("train: warning:")]
    assert warnings == ["train: warning: the kept model gives every dev text the same class (it has not learned the "
                        "labels); try more train.epochs, another train.learning_rate, or a pretrained model.name"]


def test_same_params_give_same_metrics_and_complete_checkpoints(tiny_repo, tmp_path, one_thread):
    tokenized = datasets.load_from_disk(tiny_repo / "data/tokenized")
    train = tiny_train(max_steps=10, eval_strategy="steps", eval_steps=5, save_strategy="steps", save_steps=5)
    runs = []
    for name in ("first", "second"):
        trainer = build_trainer(tokenized, str(tiny_repo / "data/base_model"), train, str(tmp_path / name))
        # Batches come from the per-epoch seeded sampler (resumable), not the global-RNG one.
        assert isinstance(trainer.get_train_dataloader().batch_sampler.sampler, EpochLengthGroupedSampler)
        trainer.train()
        runs.append(trainer)
    evals = [[e for e in t.state.log_history if "eval_macro_f1" in e] for t in runs]
    strip = lambda entries: [{k: v for k, v in e.items() if "runtime" not in k and "per_second" not in k}
                             for e in entries]
    assert strip(evals[0]) == strip(evals[1]) and len(evals[0]) == 2
    first, second = (dict(t.model.state_dict()) for t in runs)
    assert all(torch.equal(first[k], second[k]) for k in first)
    # The Trainer's own checkpoint, marked complete by the CompleteMarker callback. With save_total_limit 1
    # the Trainer keeps the latest and the best one while training and only the best one at the end.
    best = runs[0].state.best_global_step
    folder = tmp_path / "first" / f"checkpoint-{best}"
    assert sorted((tmp_path / "first").iterdir()) == [folder]
    assert (folder / ckpt.COMPLETE_MARKER).is_file()
    assert {"optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json",
            "model.safetensors"} <= {p.name for p in folder.iterdir()}
    assert ckpt.latest_complete_checkpoint(tmp_path / "first") == folder


def test_resume_refuses_a_checkpoint_that_carries_code(tiny_repo, tmp_path, one_thread):
    """The reason the project dropped its own pickle-free checkpoint format: transformers reads every checkpoint
    state with torch.load(weights_only=True), so a tampered checkpoint fails to load instead of running code."""
    tokenized = datasets.load_from_disk(tiny_repo / "data/tokenized")
    base_model = str(tiny_repo / "data/base_model")
    train = tiny_train(max_steps=2, eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=2)
    build_trainer(tokenized, base_model, train, str(tmp_path / "run")).train()
    checkpoint = ckpt.latest_complete_checkpoint(tmp_path / "run")
    sentinel = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(sentinel), "w"))

    for name in ("optimizer.pt", "rng_state.pth"):
        state_file = checkpoint / name
        original = state_file.read_bytes()
        torch.save(Payload(), state_file)
        resumed = build_trainer(tokenized, base_model, tiny_train(max_steps=4, eval_strategy="steps", eval_steps=2,
                                save_strategy="steps", save_steps=2), str(tmp_path / "resumed"))
        with pytest.raises(pickle.UnpicklingError, match="[Ww]eights only load failed"):
            resumed.train(resume_from_checkpoint=str(checkpoint))
        assert not sentinel.exists()
        state_file.write_bytes(original)


def test_saved_model_config_has_no_load_time_keys(tiny_repo, tmp_path, one_thread):
    tokenized = datasets.load_from_disk(tiny_repo / "data/tokenized")
    trainer = build_trainer(tokenized, str(tiny_repo / "data/base_model"), tiny_train(), str(tmp_path / "run"))
    trainer.processing_class.save_pretrained(str(tmp_path / "plain"))
    plain = json.loads((tmp_path / "plain/tokenizer_config.json").read_text(encoding="utf-8"))
    assert "is_local" in plain  # what transformers writes on its own: the test below can fail
    save_model(trainer, str(tmp_path / "model"))
    saved = json.loads((tmp_path / "model/tokenizer_config.json").read_text(encoding="utf-8"))
    assert not set(LOAD_TIME_KEYS) & set(saved), saved
    assert {k: v for k, v in plain.items() if k not in LOAD_TIME_KEYS} == saved


# ---- private Trainer hooks: a transformers upgrade that changes them must fail here -------------

# ProjectTrainer's private overrides (the reason for each is in its comment in training.py) with the parameters
# (name, default) of the transformers 5.24 method they replace.
PRIVATE_HOOKS = {
    "_get_train_sampler": [("self", inspect.Parameter.empty), ("train_dataset", None)],
}


def test_private_trainer_hooks_are_the_pinned_ones_with_the_pinned_signatures():
    overridden = {name for name in vars(ProjectTrainer) if name.startswith("_") and not name.startswith("__")}
    assert overridden == set(PRIVATE_HOOKS)
    for name, parameters in PRIVATE_HOOKS.items():
        signature = inspect.signature(getattr(Trainer, name))
        assert [(p.name, p.default) for p in signature.parameters.values()] == parameters, (name, signature)
        assert inspect.signature(getattr(ProjectTrainer, name)).parameters.keys() == signature.parameters.keys()
    # The public hooks the project relies on instead of private ones.
    assert list(inspect.signature(Trainer.compute_loss).parameters) == [
        "self", "model", "inputs", "return_outputs", "num_items_in_batch"]
    assert "on_save" in vars(ckpt.CompleteMarker)


# ---- train_dir: only the stage's own run folders are ever deleted ------------------------------

def test_remove_other_runs_deletes_marked_run_folders_only(tmp_path):
    root = tmp_path / "train"
    old, current = ckpt.start_run(root, "old"), ckpt.start_run(root, "current")
    (old / "checkpoint-5").mkdir()
    ckpt.check_train_dir(root)  # only marked run folders: accepted
    ckpt.remove_other_runs(root, keep="current")
    assert sorted(p.name for p in root.iterdir()) == ["current"] and (current / ckpt.RUN_MARKER).is_file()
    (root / "notes").mkdir()
    (root / "notes" / "keep.txt").write_text("mine")
    ckpt.remove_other_runs(root, keep="")
    assert [p.name for p in root.iterdir()] == ["notes"] and (root / "notes/keep.txt").read_text() == "mine"
    with pytest.raises(UserError, match=r"paths.train_dir: '.*' holds notes that the train stage did not create"):
        ckpt.check_train_dir(root)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        ckpt.check_train_dir(tmp_path / "file")


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): (sha256(p) if p.is_file() else "dir") for p in sorted(root.rglob("*"))
            if not p.is_symlink()}


@pytest.mark.parametrize("train_dir, fragment", [
    # The case: data/ holds the split, base model, tokenized set... (refused by the location check).
    ("data", "error: paths.train_dir: 'data' holds "),
    # A folder of its own that also holds what the stage did not create: a user's file, an unmarked folder.
    ("checkpoints/train", "error: paths.train_dir: 'checkpoints/train' holds 0123456789abcdef, notes.txt that "
                          "the train stage did not create (no TRAIN_RUN file)"),
])
def test_train_dir_holding_other_things_is_refused_and_nothing_is_touched(tiny_repo, tmp_path, train_dir, fragment):
    repo = copy_repo(tiny_repo, tmp_path / "repo")
    write_params(repo, {"paths": {"train_dir": train_dir}})
    (repo / "checkpoints/train/0123456789abcdef").mkdir(parents=True, exist_ok=True)
    (repo / "checkpoints/train/0123456789abcdef/model.safetensors").write_bytes(b"not the stage's")
    (repo / "checkpoints/train/notes.txt").write_text("mine\n")
    before = tree_digest(repo)
    assert any(name.startswith("data/base_model/") for name in before)
    result = run_fast(["python", "-m", "stages.train"], repo, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(fragment), result.stderr
    assert "Traceback" not in result.stderr
    assert tree_digest(repo) == before


# ---- SIGKILL mid-epoch, then dvc repro resumes -------------------------------------------------

def trained_examples(stdout: str) -> int:
    """The examples of the train stage's end-of-run line, checked against its seconds and examples/s."""
    lines = [line for line in stdout.splitlines() if line.startswith("train: ") and " -> " in line]
    assert len(lines) == 1, stdout
    line = lines[0]
    match = re.search(r"; (\d+) examples in ([\d.]+) s = ([\d.]+) examples/s -> ", line)
    assert match, line
    examples, seconds, rate = int(match[1]), float(match[2]), float(match[3])
    assert seconds > 0 and examples / (seconds + 0.05) - 0.05 <= rate <= examples / max(seconds - 0.05, 1e-9) + 0.05, line
    return examples


def newest_complete_step(repo: Path) -> int:
    steps = [int(p.parent.name.split("-")[1]) for p in repo.glob("checkpoints/train/*/checkpoint-*/COMPLETE")]
    return max(steps, default=0)


def test_sigkill_mid_epoch_then_repro_resumes_to_identical_result(tiny_repo):
    run_fast(["dvc", "repro", "train"], tiny_repo)
    reference_metrics = (tiny_repo / "data/train_log/metrics.json").read_text()
    reference_curve = (tiny_repo / "data/train_log/plots/metrics/eval/macro_f1.tsv").read_text()
    reference_model = sha256(tiny_repo / "data/model/model.safetensors")
    assert not list((tiny_repo / "checkpoints/train").iterdir())  # a finished run leaves no checkpoints
    # A user whose first training run is killed has no finished train run recorded: forget the reference
    # run (its dvc.lock entry and DVC's run-cache), or `dvc repro` below would check its outputs out of the
    # cache ("Stage 'train' is cached") instead of resuming the killed run.
    lock = yaml.safe_load((tiny_repo / "dvc.lock").read_text())
    lock["stages"].pop("train")
    (tiny_repo / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    shutil.rmtree(tiny_repo / ".dvc/cache/runs", ignore_errors=True)

    env = env_with_venv()
    env["OMP_NUM_THREADS"] = "1"
    victim = subprocess.Popen(["dvc", "repro", "-f", "train"], cwd=tiny_repo, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while newest_complete_step(tiny_repo) < 10 and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(victim.pid, signal.SIGKILL)  # dvc and the training process below it
    victim.wait()
    killed_at = newest_complete_step(tiny_repo)
    assert victim.returncode == -signal.SIGKILL, "training finished before it could be killed"
    assert 10 <= killed_at < TOTAL_STEPS and not (tiny_repo / "data/model").exists()

    resumed = run_fast(["dvc", "repro", "train"], tiny_repo)  # the stages after train add nothing to this check
    assert "Running stage 'train'" in resumed.stdout and "resuming from" in resumed.stdout
    # Its speed counts the steps it trained, not those before the kill.
    rows = len(datasets.load_from_disk(tiny_repo / "data/tokenized")["train"])
    assert trained_examples(resumed.stdout) == round((TOTAL_STEPS - killed_at) / STEPS_PER_EPOCH * rows)
    metrics = json.loads((tiny_repo / "data/train_log/metrics.json").read_text())
    reference = json.loads(reference_metrics)
    # Same step count, and the curve rows before the kill replayed from the checkpoint.
    assert metrics["step"] == reference["step"] == TOTAL_STEPS
    curve = (tiny_repo / "data/train_log/plots/metrics/eval/macro_f1.tsv").read_text()
    assert len(curve.splitlines()) == len(reference_curve.splitlines())
    # Optimizer, scheduler, RNG states and the batch order are restored exactly, and MKL_CBWR fixes the CPU
    # kernels' rounding (stages/train.py): the resumed run ends with the same metrics, curve and weights.
    assert metrics == reference
    assert curve == reference_curve
    assert sha256(tiny_repo / "data/model/model.safetensors") == reference_model
    # Run under HF_HUB_OFFLINE=1 (conftest.env_with_venv): the saved tokenizer config does not record it.
    saved = json.loads((tiny_repo / "data/model/tokenizer_config.json").read_text(encoding="utf-8"))
    assert not set(LOAD_TIME_KEYS) & set(saved), saved


def test_changed_params_never_resume_a_stale_checkpoint(tiny_repo, tmp_path):
    from stages.common.params import PathParams
    from stages.modeling.training import run_key

    paths = PathParams.from_project(tokenized=str(tiny_repo / "data/tokenized"), base_model=str(tiny_repo / "data/base_model"))
    assert run_key(paths, tiny_train()) == run_key(paths, tiny_train())
    assert run_key(paths, tiny_train()) != run_key(paths, tiny_train(learning_rate=0.001))


# ---- two processes -----------------------------------------------------------------------------

def test_two_cpu_processes_under_torchrun(tiny_repo):
    write_params(tiny_repo, {"train": {"nproc": 2, "max_steps": 15}})
    result = run_fast(["dvc", "repro", "train"], tiny_repo)
    assert result.stdout.count("train: dev macro-F1") == 1, result.stdout  # rank 0 only
    metrics = json.loads((tiny_repo / "data/train_log/metrics.json").read_text())
    assert metrics["step"] == 15 and "macro_f1" in metrics["eval"]
    # Two ranks split each epoch: its ceil(rows / 16) batches are shared out, half of them per rank.
    rows = len(datasets.load_from_disk(tiny_repo / "data/tokenized")["train"])
    assert metrics["train"]["epoch"] == pytest.approx(15 / math.ceil(math.ceil(rows / 16) / 2), abs=1e-4)
    assert trained_examples(result.stdout) == round(metrics["train"]["epoch"] * rows)  # an epoch = all rows
    assert not list((tiny_repo / "checkpoints/train").iterdir())
    model = AutoModelForSequenceClassification.from_pretrained(tiny_repo / "data/model")
    assert model.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    assert not [p for p in (tiny_repo / "data/model").iterdir() if p.suffix in (".bin", ".pt", ".pth")]
