"""Resumable training checkpoints without pickle.

The Trainer's own checkpoints store the optimizer, scheduler, scaler and RNG states with `torch.save`
(pickle files that execute code when loaded). Here the same states go to safetensors (tensors) and
JSON (everything else), so a checkpoint directory holds no pickle and resuming reads none:

    model.safetensors, config.json, tokenizer files   model (Trainer.save_model -> save_pretrained)
    optimizer.safetensors + optimizer.json            AdamW moments / step counters + param groups
    scheduler.json, scaler.json                       LR scheduler (and fp16 GradScaler) state
    rng_state_<rank>.safetensors + rng_state_<rank>.json   torch / CUDA / Python / NumPy RNGs
    trainer_state.json                                Trainer's own (already JSON)
    COMPLETE                                          written last: a killed save is never resumed

Checkpoints live under `<paths.train_dir>/<key>/`, where the key hashes the train stage's deps and
params: after any change a fresh directory is used, so a stale checkpoint is never resumed.
"""
from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from stages.common.hashing import update_with_path

COMPLETE_MARKER = "COMPLETE"
CHECKPOINT_PREFIX = "checkpoint-"


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


def latest_complete_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint with the highest step whose save finished (has the COMPLETE marker)."""
    if not run_dir.is_dir():
        return None
    complete = [p for p in run_dir.glob(f"{CHECKPOINT_PREFIX}*")
                if (p / COMPLETE_MARKER).is_file() and p.name[len(CHECKPOINT_PREFIX):].isdigit()]
    return max(complete, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]), default=None)


def remove_incomplete_checkpoints(run_dir: Path) -> None:
    """Checkpoint folders a kill interrupted mid-save; the Trainer would otherwise save into them again."""
    for folder in run_dir.glob(f"{CHECKPOINT_PREFIX}*"):
        if folder.is_dir() and not (folder / COMPLETE_MARKER).is_file():
            shutil.rmtree(folder, ignore_errors=True)


def remove_other_runs(root: Path, keep: str) -> None:
    """Checkpoints of earlier deps/params: they can never be resumed by this run, only waste disk."""
    if root.is_dir():
        for folder in root.iterdir():
            if folder.is_dir() and folder.name != keep:
                shutil.rmtree(folder, ignore_errors=True)


# ---- JSON helpers -----------------------------------------------------------------------------

def _write_json(path: Path, payload: Any) -> None:
    try:
        text = json.dumps(payload, indent=1, sort_keys=True)
    except TypeError as err:  # a state entry that is neither a tensor nor plain data
        raise TypeError(f"{path.name}: state is not JSON-serialisable ({err}); cannot checkpoint without pickle")
    path.write_text(text + "\n", encoding="utf-8")


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# ---- optimizer --------------------------------------------------------------------------------

def save_optimizer(state: dict, directory: Path) -> None:
    """torch optimizer state_dict -> tensors in safetensors, the rest (param groups, scalars) in JSON."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    save_file(tensors, str(directory / "optimizer.safetensors"))
    _write_json(directory / "optimizer.json", {"param_groups": state["param_groups"], "scalars": scalars})


def load_optimizer(directory: Path) -> dict:
    tensors = load_file(str(directory / "optimizer.safetensors"))
    meta = _read_json(directory / "optimizer.json")
    state: dict[int, dict[str, Any]] = {}
    for key, tensor in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = tensor
    for index, entries in meta["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    groups = meta["param_groups"]
    for group in groups:  # JSON turns tuples into lists; AdamW reads betas as a pair either way
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
    return {"state": state, "param_groups": groups}


def has_optimizer_state(directory: Path) -> bool:
    return (directory / "optimizer.safetensors").is_file() and (directory / "optimizer.json").is_file()


# ---- scheduler and scaler (plain data) --------------------------------------------------------

def save_plain_state(state: dict, path: Path) -> None:
    _write_json(path, state)


def load_plain_state(path: Path) -> dict:
    return _read_json(path)


# ---- RNG --------------------------------------------------------------------------------------

def save_rng_state(directory: Path, rank: int) -> None:
    tensors = {"torch": torch.random.get_rng_state()}
    if torch.cuda.is_available():
        for device, state in enumerate(torch.cuda.random.get_rng_state_all()):
            tensors[f"cuda.{device}"] = state
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    save_file(tensors, str(directory / f"rng_state_{rank}.safetensors"))
    _write_json(directory / f"rng_state_{rank}.json", {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    })


def load_rng_state(directory: Path, rank: int) -> bool:
    """Restore the RNGs saved by `rank`; False when the checkpoint has none for it."""
    tensor_file = directory / f"rng_state_{rank}.safetensors"
    if not tensor_file.is_file():
        return False
    tensors = load_file(str(tensor_file))
    meta = _read_json(directory / f"rng_state_{rank}.json")
    torch.random.set_rng_state(tensors["torch"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda.")),
                                             key=lambda k: int(k.split(".")[1]))]
        if states:
            torch.cuda.random.set_rng_state_all(states)
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    return True


def mark_complete(directory: Path) -> None:
    (directory / COMPLETE_MARKER).write_text("ok\n", encoding="utf-8")
