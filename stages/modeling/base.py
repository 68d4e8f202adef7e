"""Resolve `model.name` into a local model directory: the builtin model, a local directory, or a hub id.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import datasets
from transformers import AutoConfig, AutoTokenizer

from stages.common.errors import UserError
from stages.common.hardware import resolve_device, resolve_precision
from stages.common.outputs import atomic_dir
from stages.common.params import BUILTIN_MODEL, ModelParams
from stages.modeling.model_dir import check_model_dir, copy_model_dir

HUB_PATTERNS = ["*.json", "*.txt", "*.safetensors", "*.model", "*.tiktoken", "*.py", "README.md"]


def model_source(name: str) -> str:
    if name == BUILTIN_MODEL:
        return "builtin"
    path = Path(name).expanduser()
    if path.is_dir():
        return "local"
    if path.exists():
        raise UserError(f"model.name: {name!r} is a file, not a model directory; give the directory that holds "
                        f"config.json, the *.safetensors weights and the tokenizer files (or a hub id, or 'builtin')")
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserError(f"model.name: local directory {name!r} not found; give an existing directory, "
                        f"a hub id like 'tohoku-nlp/bert-base-japanese-v3', or 'builtin' for the offline default")
    return "hub"


def download_hub(model: ModelParams, target: Path) -> str:
    """Download a hub snapshot; returns the resolved commit hash."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        path = snapshot_download(model.name, revision=model.revision, local_dir=str(target), allow_patterns=HUB_PATTERNS)
    except (RepositoryNotFoundError, RevisionNotFoundError) as err:
        raise UserError(f"model.name: {model.name!r} (revision {model.revision or 'main'}) not found on the Hugging Face "
                        f"Hub ({type(err).__name__}); check the id, or use model.name: builtin for the offline default") from None
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as err:
        raise UserError(f"model.name: {model.name!r} is not a local directory and the Hugging Face Hub is unreachable "
                        f"({type(err).__name__}); set model.name: builtin to use the offline default, or point "
                        f"model.name at a downloaded model directory") from None
    cache = Path(path) / ".cache"
    if cache.exists():
        shutil.rmtree(cache)
    commits = sorted(Path(path).glob("**/*.metadata"))
    return model.revision or (commits[0].read_text().split()[0] if commits else "main")


def summarise(directory: Path, model: ModelParams, extra: dict) -> dict:
    config = AutoConfig.from_pretrained(str(directory), trust_remote_code=model.trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(str(directory), trust_remote_code=model.trust_remote_code)
    summary = {
        "source": model.name,
        "revision": model.revision,
        "model_type": config.model_type,
        "num_hidden_layers": getattr(config, "num_hidden_layers", None),
        "num_attention_heads": getattr(config, "num_attention_heads", None),
        "hidden_size": getattr(config, "hidden_size", None),
        "intermediate_size": getattr(config, "intermediate_size", None),
        "max_position_embeddings": getattr(config, "max_position_embeddings", None),
        "vocab_size": len(tokenizer),
        "tokenizer_class": type(tokenizer).__name__,
        "word_tokenizer_type": getattr(tokenizer, "word_tokenizer_type", None),
        "subword_tokenizer_type": getattr(tokenizer, "subword_tokenizer_type", None),
    }
    summary.update(extra)
    return summary


def resolve_base_model(model: ModelParams, split_dir: str, target_dir: str) -> dict:
    source = model_source(model.name)
    label = f"model.name {model.name!r}"
    if model.trust_remote_code:
        print("warning: model.trust_remote_code is true: code from the model repository will run on this machine")
    if source == "local":  # checked before anything is written, so a broken directory leaves no trace
        check_model_dir(Path(model.name).expanduser(), label, trust_remote_code=model.trust_remote_code)
    with atomic_dir(target_dir) as tmp:
        extra: dict = {}
        if source == "builtin":
            from stages.modeling.builtin import build_builtin
            from stages.modeling.pretraining_texts import pretraining_texts

            texts, counts = pretraining_texts(datasets.load_from_disk(split_dir), model.pretrain_test_texts,
                                              model.pretrain_corpus)
            dtype = resolve_precision("auto", resolve_device("cpu"))
            extra = {**build_builtin(texts, tmp, model.builtin, model.pretrain_steps, dtype), **counts}
        elif source == "local":
            copy_model_dir(Path(model.name).expanduser(), tmp)
        else:
            extra = {"resolved_revision": download_hub(model, tmp)}
            check_model_dir(tmp, label, trust_remote_code=model.trust_remote_code)
        return summarise(tmp, model, extra)
