"""Train one cross-validation fold and predict the rows it held out (and the test split).

The Trainer setup is the train stage's own (training.build_trainer): same params, class weights, early
stopping and kept checkpoint, chosen on the fold's dev rows, which are carved from the fold's training part
(stages/dataset/folds.py), never from its held-out rows. Interrupted runs resume as in the train stage,
from checkpoints under `paths.cv_train_dir/fold_<fold>/<key>`.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Optional

import datasets
import numpy as np

from stages.common.codedeps import ROOT, code_files
from stages.common.errors import UserError
from stages.common.outputs import atomic_dir, write_json
from stages.common.params import Params
from stages.dataset.folds import FoldRows, cv_dataset, cv_labels, fold_rows
from stages.evaluation.metrics import classification_scores, positive_index, rounded
from stages.modeling import checkpointing as ckpt
from stages.modeling import fold_outputs
from stages.modeling.inference import predict_proba
from stages.modeling.training import TrainingSpeed, best_eval, build_trainer


def fold_checkpoint_root(params: Params, fold: int) -> Path:
    return Path(params.paths.cv_train_dir) / f"fold_{fold}"


def check_cv_train_dir(root: Path) -> None:
    """paths.cv_train_dir holds only fold_<n> folders, each only this stage's run folders (they get deleted)."""
    if not root.exists():
        return
    if not root.is_dir():
        raise UserError(f"paths.cv_train_dir: '{root}' is a file, not a folder; point paths.cv_train_dir at a folder "
                        "used only for the cv_train checkpoints (default checkpoints/cv)")
    foreign = sorted(p.name for p in root.iterdir() if not p.name.startswith("fold_") or not p.is_dir()
                     or any(not ckpt.is_run_folder(run) for run in p.iterdir()))
    if foreign:
        raise UserError(f"paths.cv_train_dir: '{root}' holds {', '.join(foreign[:3])} that the cv_train stages did not "
                        f"create, and they delete old checkpoint runs there; point paths.cv_train_dir at a folder of "
                        f"its own (default checkpoints/cv) or move those out")


def run_key(params: Params, fold: int) -> str:
    """Code, data deps and params of this fold's training: any change starts a fresh run folder."""
    code = [ROOT / f for f in code_files("stages.cv_train")]
    keyed = {**params.train.model_dump(), "evaluate.positive_label": params.evaluate.positive_label,
             "split": params.split.model_dump(exclude={"fold_ids"}), "fold": fold}
    return ckpt.checkpoint_key([*code, params.paths.tokenized, params.paths.base_model], keyed)


def fold_dict(cv_rows: datasets.Dataset, rows: FoldRows) -> datasets.DatasetDict:
    """What build_trainer trains on: the fold's train rows, and its dev rows to select on."""
    return datasets.DatasetDict({"train": cv_rows.select(rows.train), "dev": cv_rows.select(rows.dev)})


def train_fold(params: Params, fold: int) -> tuple[Optional[dict], TrainingSpeed]:
    """Train fold `fold`, write `paths.cv/fold_<fold>/`; returns the fold's metrics (None on ranks other than 0) and
    its training speed."""
    paths = params.paths
    tokenized = datasets.load_from_disk(paths.tokenized)
    names = tokenized["train"].features["label"].names
    labels = cv_labels(tokenized)
    rows, notes = fold_rows(labels, names, fold, params.split)
    cv_rows = cv_dataset(tokenized)
    main_process = int(os.environ.get("RANK", "0")) == 0
    key = run_key(params, fold)
    root = fold_checkpoint_root(params, fold)
    run_dir = root / key
    if main_process:
        for note in notes:
            print(f"note: {note}")
        check_cv_train_dir(Path(paths.cv_train_dir))
        ckpt.start_run(root, key)
    out = fold_outputs.fold_dir(paths.cv, fold)
    # Only rank 0 writes the fold folder (DVCLive logs there while training, so it is the temp folder).
    with atomic_dir(out) if main_process else contextlib.nullcontext(None) as tmp:
        trainer = build_trainer(fold_dict(cv_rows, rows), paths.base_model, params.train, str(run_dir),
                                str(tmp / fold_outputs.LOG_DIR) if tmp is not None else None,
                                positive_label=params.evaluate.positive_label)
        speed = TrainingSpeed(len(rows.train))
        trainer.add_callback(speed)
        if trainer.is_world_process_zero():
            ckpt.remove_other_runs(root, keep=key)
            ckpt.remove_incomplete_checkpoints(run_dir)
        trainer.accelerator.wait_for_everyone()
        resume = ckpt.latest_complete_checkpoint(run_dir)
        if resume is not None and main_process:
            print(f"cv_train: fold {fold}: resuming from {resume} (same deps and params as the interrupted run)",
                  flush=True)
        trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
        kept = best_eval(trainer)
        metrics = None
        if main_process:
            metrics = predict_and_write(trainer, tokenized, cv_rows, rows, names, params, kept, tmp)
            ckpt.remove_other_runs(root, keep="")  # finished: DVC caches the result instead
        trainer.accelerator.wait_for_everyone()
    return metrics, speed


def predict_and_write(trainer, tokenized: datasets.DatasetDict, cv_rows: datasets.Dataset, rows: FoldRows,
                      names: list[str], params: Params, kept: Optional[dict], out: Path) -> dict:
    model, device, batch = trainer.model, trainer.args.device, params.train.eval_batch_size
    heldout = predict_proba(model, cv_rows.select(rows.heldout)["input_ids"], batch, device, desc="predict held-out")
    fold_outputs.write_probabilities(out / fold_outputs.HELDOUT_FILE, heldout, names, rows.heldout)
    test = (predict_proba(model, tokenized["test"]["input_ids"], batch, device, desc="predict test")
            if "test" in tokenized else np.zeros((0, len(names))))
    fold_outputs.write_probabilities(out / fold_outputs.TEST_FILE, test, names)
    gold = np.asarray(cv_rows.select(rows.heldout)["label"])
    positive = positive_index(names, params.evaluate.positive_label)
    scores = classification_scores(gold, heldout.argmax(axis=1), len(names), positive)
    metrics = rounded({
        "fold": rows.fold,
        "rows": {"train": len(rows.train), "dev": len(rows.dev), "heldout": len(rows.heldout)},
        "heldout": {"macro_f1": scores["macro_f1"], "accuracy": scores["accuracy"]},
        "dev": ({"macro_f1": kept["eval_macro_f1"], "accuracy": kept["eval_accuracy"], "step": kept["step"]}
                if kept else None),
    })
    write_json(out / fold_outputs.METRICS_FILE, metrics, sort_keys=False)
    return metrics
