"""Where the train stage's resumable checkpoints live, which of them may be resumed, and what may be deleted.

The checkpoints themselves are the Trainer's own (`checkpoint-<step>/`: model safetensors, optimizer.pt,
scheduler.pt, rng_state.pth, trainer_state.json, ...). transformers 5 reads every one of them back with
`torch.load(weights_only=True)`, which refuses pickled code, so resuming executes nothing from those files.

    <paths.train_dir>/                     holds nothing but run folders of this stage
      <key>/                               one run: the key hashes the stage's code, data deps and params
        TRAIN_RUN                          written when the folder is created: "this folder is ours"
        checkpoint-<step>/                 the Trainer's checkpoint
          COMPLETE                         written after the Trainer finished saving (CompleteMarker)

- A checkpoint without COMPLETE (a kill mid-save) is never resumed, and is deleted before resuming.
- After any change of code, data or params the key changes: a stale checkpoint is never resumed, and
  the old run folders are deleted, but only folders carrying TRAIN_RUN. A train_dir holding anything
  else (a file, a folder of the user's) is refused before anything is touched.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Iterable

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from stages.common.errors import UserError
from stages.common.hashing import update_with_path

COMPLETE_MARKER = "COMPLETE"
RUN_MARKER = "TRAIN_RUN"
CHECKPOINT_PREFIX = f"{PREFIX_CHECKPOINT_DIR}-"
# Saved by transformers into tokenizer_config.json from how the tokenizer was loaded (HF_HUB_OFFLINE=1 turns
# local_files_only on), not properties of the tokenizer: they would make a saved model depend on the shell.


# ---- keys -------------------------------------------------------------------------------------

def checkpoint_key(deps: Iterable[str | Path], params: dict) -> str:
    """Short hash of the deps' contents and the params: equal inputs -> equal key, any change -> new key."""
    digest = hashlib.sha256()
    digest.update(json.dumps(params, sort_keys=True, default=str).encode())
    for dep in deps:
        dep = Path(dep)
        digest.update(f"\0{dep.as_posix()}\0".encode())
        if dep.exists():
            update_with_path(digest, dep)
    return digest.hexdigest()[:16]


# ---- run folders ------------------------------------------------------------------------------

def is_run_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and (path / RUN_MARKER).is_file()


def check_train_dir(root: Path) -> None:
    """Refuse a train_dir this stage cannot clean up safely: it must hold nothing but marked run folders."""
    if not root.exists():
        return
    if not root.is_dir():
        raise UserError(f"paths.train_dir: '{root}' is a file, not a folder; point paths.train_dir at a folder "
                        "used only for the train stage's checkpoints (default checkpoints/train)")
    foreign = sorted(p.name for p in root.iterdir() if not is_run_folder(p))
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise UserError(f"paths.train_dir: '{root}' holds {shown} that the train stage did not create (no "
                        f"{RUN_MARKER} file), and it deletes old checkpoint runs there; point paths.train_dir at "
                        "a folder of its own (default checkpoints/train) or move those out")


def start_run(root: Path, key: str) -> Path:
    """The run folder `root/key`, created with its marker (after check_train_dir)."""
    run_dir = root / key
    run_dir.mkdir(parents=True, exist_ok=True)
    marker = run_dir / RUN_MARKER
    if not marker.is_file():
        marker.write_text("train stage checkpoints of one deps+params key; deleted when no longer resumable\n",
                          encoding="utf-8")
    return run_dir


def remove_other_runs(root: Path, keep: str) -> None:
    """Run folders of earlier deps/params: they can never be resumed by this run, only waste disk."""
    if root.is_dir():
        for folder in root.iterdir():
            if folder.name != keep and is_run_folder(folder):
                shutil.rmtree(folder)


# ---- checkpoints in a run folder --------------------------------------------------------------

def checkpoint_step(path: Path) -> int | None:
    step = path.name[len(CHECKPOINT_PREFIX):]
    return int(step) if path.name.startswith(CHECKPOINT_PREFIX) and step.isdigit() else None


def latest_complete_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint with the highest step whose save finished (has the COMPLETE marker)."""
    if not run_dir.is_dir():
        return None
    complete = [p for p in run_dir.iterdir() if checkpoint_step(p) is not None and (p / COMPLETE_MARKER).is_file()]
    return max(complete, key=checkpoint_step, default=None)


def remove_incomplete_checkpoints(run_dir: Path) -> None:
    """Checkpoint folders a kill interrupted mid-save; the Trainer would otherwise save into them again."""
    if run_dir.is_dir():
        for folder in run_dir.iterdir():
            if folder.is_dir() and checkpoint_step(folder) is not None and not (folder / COMPLETE_MARKER).is_file():
                shutil.rmtree(folder)


class CompleteMarker(TrainerCallback):
    """Marks a checkpoint resumable once it is whole. The Trainer calls on_save after its _save_checkpoint
    returned (model, optimizer, scheduler, RNG and trainer state written, old checkpoints rotated); under
    DDP every rank writes its own RNG file, so the main process waits for all ranks first."""

    def on_save(self, args, state, control, **kwargs):
        if args.world_size > 1:
            import torch.distributed as dist

            dist.barrier()
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"{CHECKPOINT_PREFIX}{state.global_step}"
            (folder / COMPLETE_MARKER).write_text("ok\n", encoding="utf-8")
        return control


# ---- saved model files ------------------------------------------------------------------------
