"""Model directories (config.json + safetensors weights + tokenizer files): the one place that checks and copies them.

The base_model stage checks a user's local or downloaded model here before copying it, the package stage
copies data/model with the same function, and the predict command checks its model directory here, so a
broken directory gives the same one-line error wherever it is found, not a traceback three stages later.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.common.errors import UserError

# Pickle-based weight formats are never copied or loaded: safetensors only.
UNSAFE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".ckpt", ".h5", ".msgpack", ".onnx"}
VOCAB_FILES = ("tokenizer.json", "vocab.txt", "vocab.json")
# Without one of these, transformers guesses the tokenizer class from config.json's model_type: a Japanese
# BERT then silently becomes a plain BertTokenizer (no MeCab word splitting), i.e. a different tokenizer.
TOKENIZER_SETTINGS = ("tokenizer_config.json", "tokenizer.json")
# Written into tokenizer_config.json by transformers from how a tokenizer was loaded (HF_HUB_OFFLINE, a local
# path), not properties of the tokenizer: a saved model must not depend on the shell it was trained in.
LOAD_TIME_KEYS = ("is_local", "local_files_only")
COPY_TOOLS_HINT = "copy the tokenizer files (tokenizer_config.json and vocab.txt / tokenizer.json) from the original model into it"


@dataclass
class ModelFiles:
    """What check_model_dir loaded on the way, so callers need not load it twice."""
    config: Any
    tokenizer: Any


def is_model_dir(directory: Path) -> bool:
    """A directory that holds a transformers model (config.json next to safetensors weights)."""
    try:
        return (directory / "config.json").is_file() and any(directory.glob("*.safetensors"))
    except OSError:  # unreadable directory: not ours to judge, and certainly not ours to write into
        return False


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:160]


def check_weights(directory: Path, label: str) -> None:
    """Every *.safetensors file has a readable header that covers the file exactly, so a truncated download or a
    file of random bytes is refused here rather than when a later stage loads the model."""
    from safetensors import SafetensorError, safe_open

    for weights in sorted(directory.glob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="pt") as handle:
                if not list(handle.keys()):
                    raise UserError(f"{label}: {weights.name} holds no tensors; re-download or re-save the model")
        except (SafetensorError, OSError) as err:
            raise UserError(f"{label}: {weights.name} is not a valid safetensors file ({first_line(err)}); the file is "
                            f"truncated or corrupt: download or save the model again") from None


def check_model_dir(directory: str | Path, label: str, hint: str = "", trust_remote_code: bool = False) -> ModelFiles:
    """A usable model directory: config.json, valid safetensors weights and the model's own tokenizer files.

    `label` starts each message (a param or a path); `hint` (what to give instead) ends the messages about a
    directory that is not a model at all. Returns the config and tokenizer it loaded.
    """
    from transformers import AutoConfig, AutoTokenizer

    directory = Path(directory)
    tail = f"; {hint}" if hint else ""
    if not directory.is_dir():
        what = "is a file, not a directory" if directory.exists() else "not found"
        raise UserError(f"{label}: model directory {what}{tail}")
    if not (directory / "config.json").is_file():
        raise UserError(f"{label}: no config.json; it is not a transformers model directory{tail}")
    if not any(directory.glob("*.safetensors")):
        unsafe = sorted(p.name for p in directory.iterdir() if p.suffix in UNSAFE_SUFFIXES)
        found = f" (found {', '.join(unsafe)}: convert them with save_pretrained(safe_serialization=True))" if unsafe else ""
        raise UserError(f"{label}: no *.safetensors weights{found}; only safetensors are loaded{tail}")
    has_vocabulary = any((directory / name).is_file() for name in VOCAB_FILES) or any(directory.glob("*.model"))
    if not has_vocabulary or not any((directory / name).is_file() for name in TOKENIZER_SETTINGS):
        missing = f"none of {', '.join(VOCAB_FILES)}, *.model" if not has_vocabulary else "no tokenizer_config.json"
        raise UserError(f"{label}: tokenizer files missing ({missing}), so the model's own tokenizer cannot be "
                        f"loaded; {COPY_TOOLS_HINT}")
    try:
        config = AutoConfig.from_pretrained(str(directory), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{label}: config.json is unreadable ({first_line(err)}); restore it from the original model") from None
    check_weights(directory, label)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        raise UserError(f"{label}: tokenizer files missing or unreadable ({first_line(err)}); {COPY_TOOLS_HINT}") from None
    vocab_size = getattr(config, "vocab_size", None)
    if vocab_size and len(tokenizer) > vocab_size:
        raise UserError(f"{label}: the tokenizer has {len(tokenizer)} tokens but the model's embeddings only "
                        f"{vocab_size} (vocab_size in config.json); the tokenizer files belong to another model: "
                        f"{COPY_TOOLS_HINT}")
    return ModelFiles(config, tokenizer)


def skipped_when_copying(directory: str, names: list[str]) -> set[str]:
    """Hidden files (caches, .git), pickle weights and Trainer checkpoints are never part of a model copy."""
    return {name for name in names
            if name.startswith(".") or Path(name).suffix in UNSAFE_SUFFIXES or name.startswith("checkpoint-")}


def copy_model_dir(source: Path, target: Path) -> None:
    """Copy a model directory's files into the existing directory `target` (contents only, no permissions or
    times, so two copies of the same model are the same outputs; symlinks, as in the hub cache, are followed)."""
    for item in sorted(Path(source).iterdir()):
        if item.name in skipped_when_copying(str(source), [item.name]):
            continue
        if item.is_dir():
            shutil.copytree(item, target / item.name, ignore=skipped_when_copying, copy_function=shutil.copyfile)
        else:
            shutil.copyfile(item, target / item.name)


def drop_load_time_keys(model_dir: Path) -> None:
    """Remove LOAD_TIME_KEYS from a saved tokenizer_config.json (data/model and the release)."""
    config_file = Path(model_dir) / "tokenizer_config.json"
    if not config_file.is_file():
        return
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if any(key in config for key in LOAD_TIME_KEYS):
        for key in LOAD_TIME_KEYS:
            config.pop(key, None)
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
