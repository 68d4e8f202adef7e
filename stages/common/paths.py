"""Output paths from params (`paths.*`) are checked before a stage touches anything.

Each stage calls `check_outputs(params, "<stage>")` right after loading params. Every `paths.*` value must be
a location of its own inside the project: not `~...` (never expanded), not outside the project after
resolving symlinks and `..`, not the project root, not an input or project file (data.train_csv,
data.test_csv, a local model.name, params.yaml, dvc.yaml, stages/, .git, ...) nor inside or around one, and
neither inside nor around another `paths.*` value or embed.cache_dir. The running stage's own outputs must
moreover be absent or the pipeline's (stages/common/outputs.py: marker, dvc.lock, record). A violation is one
`UserError` naming the key and what to do, so the stage exits with code 2 before writing anything.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from stages.common.errors import UserError
from stages.common.outputs import (
    MARKER_TEXT,
    OUTPUT_MARKER,
    claim,
    foreign_reason,
    listing,
    lock_outs,
    output_location,
    project_relative,
)
from stages.common.params import Params

DIRECTORY = "directory"    # replaced whole by atomic_dir
FILE = "file"              # replaced by atomic_file
FOLDER = "folder"          # a folder the stage writes named entries into (paths.eval, paths.train_log, paths.cv)
CHECKPOINTS = "checkpoints"  # paths.train_dir: location checks here; its contents are checkpointing.py's

STAGE_OUTPUTS: dict[str, dict[str, str]] = {
    "split": {"split": DIRECTORY},
    "base_model": {"base_model": DIRECTORY, "model_summary": FILE},
    "tokenize": {"tokenized": DIRECTORY, "tokenize_report": FILE},
    "embed": {"embeddings": DIRECTORY},
    "train": {"model": DIRECTORY, "train_log": FOLDER, "train_dir": CHECKPOINTS},
    "baselines": {"baselines": FOLDER},
    "evaluate": {"eval": FOLDER},
    "submit": {"submission": FILE},
    "package": {"release": DIRECTORY},
    # Cross-validation (split.folds > 1): paths.cv holds cv_split's folds.json and each cv_train@<i>'s fold_<i>.
    "cv_split": {"cv": FOLDER},
    "cv_train": {"cv": FOLDER, "cv_train_dir": CHECKPOINTS},
    "cv_evaluate": {"cv_eval": FOLDER},
}
# Named in messages as an example of a good value (the project's params.yaml may be the one being fixed).
SUGGESTED = {
    "split": "data/split", "base_model": "data/base_model", "model_summary": "data/base_model.json",
    "tokenized": "data/tokenized", "tokenize_report": "data/tokenize_report.json", "embeddings": "data/embeddings",
    "model": "data/model", "train_dir": "checkpoints/train", "train_log": "data/train_log", "eval": "data/eval",
    "submission": "data/submission.csv", "release": "data/release", "baselines": "data/baselines",
    "cv": "data/cv", "cv_eval": "data/cv_eval", "cv_train_dir": "checkpoints/cv",
}

# Files and folders of the project itself: never an output, never inside or around one.
PROJECT_ENTRIES = {
    "params.yaml": "the pipeline's params", "dvc.yaml": "the pipeline's definition", "dvc.lock": "DVC's record of runs",
    ".git": "git's repository", ".dvc": "DVC's folder", ".dvcignore": "a DVC file", ".gitignore": "a git file",
    "stages": "the pipeline's code", "tests": "the project's tests", "bench": "the project's benchmarks",
    "pyproject.toml": "the project's metadata", "README.md": "the project's guide", "Makefile": "a project file",
    ".venv": "the Python environment", ".cache": "the pipeline's caches",
}
DVC_GITIGNORE = ".gitignore"  # DVC writes one into the folder of every cached out


def _inside(path: Path, folder: Path) -> bool:
    return folder in path.parents


def _show(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path == root or _inside(path, root) else str(path)


def _default(key: str) -> str:
    return SUGGESTED.get(key, f"data/{key}")


def _inputs(params: Params, root: Path) -> list[tuple[str, Path]]:
    """(what, location) of everything a stage reads that no `paths.*` value may hold or lie in."""
    inputs = [(f"{name} ({what})", output_location(root / name)) for name, what in PROJECT_ENTRIES.items()]
    inputs.append((f"data.train_csv ({params.data.train_csv}, an input)", output_location(root / params.data.train_csv)))
    if params.data.test_csv:
        inputs.append((f"data.test_csv ({params.data.test_csv}, an input)", output_location(root / params.data.test_csv)))
    if params.model.pretrain_corpus:
        inputs.append((f"model.pretrain_corpus ({params.model.pretrain_corpus}, an input)",
                       output_location(root / Path(params.model.pretrain_corpus).expanduser())))
    model_dir = root / params.model.name
    if params.model.name and model_dir.is_dir():
        inputs.append((f"model.name ({params.model.name}, the base model's source)", output_location(model_dir)))
    inputs.append((f"embed.cache_dir ({params.embed.cache_dir}, the vector cache)",
                   output_location(root / params.embed.cache_dir)))
    return inputs


def location_problem(key: str, value: str, inputs: list[tuple[str, Path]], root: Path) -> Optional[str]:
    """What is wrong with where `paths.<key>` points (None if nothing): the error message after `paths.<key>: `."""
    shown = repr(value)
    suggest = f"such as {_default(key)}"
    if value.strip().startswith("~"):
        return f"{shown} starts with '~', which is not expanded to a home folder; give a path inside the project, {suggest}"
    if not value.strip():
        return f"is empty; give a path inside the project, {suggest}"
    target = output_location(root / value)
    if target == root:
        return (f"{shown} is the project root; give a path of its own inside the project, {suggest} "
                f"(a stage replaces its output path on every run)")
    if not _inside(target, root):
        return f"{shown} lies outside the project (it resolves to {target}); give a path inside the project, {suggest}"
    for what, location in inputs:
        if target == location:
            return f"{shown} is {what}; give a path of its own, {suggest}"
        if _inside(target, location):
            return f"{shown} lies inside {what}; give a path of its own, {suggest}"
        if _inside(location, target):
            return f"{shown} holds {what}; give a path of its own, {suggest}"
    return None


def overlap_problem(key: str, value: str, others: dict[str, Path], root: Path) -> Optional[str]:
    """`paths.<key>` equal to, inside, or around another `paths.*` value: one stage would replace the other's."""
    shown, suggest = repr(value), f"such as {_default(key)}"
    target = others[key]
    for other, location in others.items():
        if other == key:
            continue
        if target == location:
            return f"{shown} is also paths.{other}; every output needs a path of its own, {suggest}"
        if _inside(target, location):
            return (f"{shown} lies inside paths.{other} ({_show(location, root)}), another stage output; "
                    f"give a path of its own, {suggest}")
        if _inside(location, target):
            return (f"{shown} holds paths.{other} ({_show(location, root)}), another stage output; "
                    f"give a path of its own, {suggest}")
    return None


def folder_reason(folder: Path) -> Optional[str]:
    """None when a folder the stage writes entries into is absent, empty, marked, or used by the last run."""
    if not os.path.lexists(folder):
        return None
    if folder.is_symlink() or not folder.is_dir():
        return "is not a folder" if not folder.is_symlink() else "is a symbolic link this pipeline did not make"
    entries = [p.name for p in folder.iterdir() if p.name != DVC_GITIGNORE]
    if not entries or OUTPUT_MARKER in entries:
        return None
    relative = project_relative(folder)
    if relative is not None and any(out.startswith(relative + "/") for out in lock_outs()):
        return None  # written by a run before folders carried the marker
    return f"holds files this pipeline did not write ({listing(folder)})"


def ownership_problem(key: str, value: str, kind: str, target: Path) -> Optional[str]:
    if kind == CHECKPOINTS:
        return None
    if kind == FOLDER:
        reason = folder_reason(target)
    elif kind == FILE and target.is_dir() and not target.is_symlink():
        reason = "is a directory"
    else:
        reason = foreign_reason(target)
    if reason is None:
        return None
    what = "a new or empty folder" if kind in (DIRECTORY, FOLDER) else "a new file name"
    return (f"{value!r} already exists and {reason}; a stage replaces only what it wrote: give {what}, "
            f"such as {_default(key)}, or move those files away")


def check_outputs(params: Params, stage: str) -> None:
    """Refuse (UserError) any `paths.*` value that could make `stage` touch what it did not write; then
    claim the stage's outputs (directories get the marker, files are recorded) and mark its folders."""
    others = _check_locations(params)
    own = STAGE_OUTPUTS[stage]
    values = params.paths.model_dump()
    for key, kind in own.items():
        problem = ownership_problem(key, values[key], kind, others[key])
        if problem:
            raise UserError(f"paths.{key}: {problem}")
    claim(others[key] for key, kind in own.items() if kind in (DIRECTORY, FILE))
    for key, kind in own.items():
        if kind == FOLDER:
            marker = others[key] / OUTPUT_MARKER
            if not marker.is_file():
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(MARKER_TEXT, encoding="utf-8")


def check_all_outputs(params: Params) -> None:
    """Every stage's outputs checked at once, changing nothing: what the check_paths stage runs before any
    other stage, because `dvc repro` deletes a stage's declared outputs before it runs that stage's command."""
    others = _check_locations(params)
    values = params.paths.model_dump()
    for outputs in STAGE_OUTPUTS.values():
        for key, kind in outputs.items():
            if values[key] == SUGGESTED.get(key):
                # The location the project ships for this output (it may hold a committed copy, e.g. the
                # metrics files, in a checkout without dvc.lock): DVC replaces what the stage declares there.
                continue
            problem = ownership_problem(key, values[key], kind, others[key])
            if problem:
                raise UserError(f"paths.{key}: {problem}")


def _check_locations(params: Params) -> dict[str, Path]:
    """Where every `paths.*` value points, after refusing those outside the project, on inputs or overlapping."""
    root = Path.cwd().resolve()
    values = params.paths.model_dump()
    others = {key: output_location(root / value) for key, value in values.items()
              if value.strip() and not value.strip().startswith("~")}
    inputs = _inputs(params, root)
    for key, value in values.items():
        problem = location_problem(key, value, inputs, root)
        if problem:
            raise UserError(f"paths.{key}: {problem}")
    # A changed value is the likelier culprit of an overlap: blame it rather than the untouched one it hits.
    for key in sorted(values, key=lambda k: values[k] == _default(k)):
        problem = overlap_problem(key, values[key], others, root)
        if problem:
            raise UserError(f"paths.{key}: {problem}")
    return others
