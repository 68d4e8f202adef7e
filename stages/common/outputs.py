"""Atomic outputs: write to a temporary path in the same directory, rename into place when complete.

A stage killed half-way therefore leaves either the old output or none, never a half-written one
that DVC would then cache.

A stage replaces only what this pipeline wrote (README "Never destroy what you did not create"). An existing
path counts as the pipeline's when it is absent or empty, when dvc.lock lists it as an out (the last
successful `dvc repro`), when it is a directory carrying OUTPUT_MARKER (written into each top-level directory
output a stage claims), when it sits in a folder carrying the marker (paths.eval, paths.train_log), or when it
is a file a stage claimed and whose bytes are still those it wrote (WRITTEN_RECORD, for reruns outside DVC).
Anything else is refused with a UserError, here as a last line of defence behind stages/common/paths.py.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import yaml

from stages.common.errors import UserError

# Constant content, so reruns stay byte-identical and DVC hashes of outputs do not change.
OUTPUT_MARKER = ".ja-textclf-output"
MARKER_TEXT = ("Written by a stage of the ja-textclf pipeline (dvc.yaml), which replaces what this folder "
               "holds on every run.\n")
LOCK_FILE = "dvc.lock"
# Git-ignored (the project's .gitignore lists /.cache/); losing it only means a file output without a
# dvc.lock entry is refused once, with a message saying what to do.
WRITTEN_RECORD = Path(".cache") / "ja-textclf" / "written-files.json"

_claimed: set[Path] = set()


def output_location(path: str | os.PathLike) -> Path:
    """Absolute path with every directory symlink and `..` resolved, but the last component kept: replacing a
    symlink replaces the link (DVC's symlink cache mode links outputs into .dvc/cache), never its target."""
    path = Path(path)
    if path.name in ("", ".", ".."):
        return path.resolve()
    return path.parent.resolve() / path.name


def project_relative(path: str | os.PathLike) -> Optional[str]:
    """`path` relative to the project root (the working directory), in dvc.lock's spelling; None outside it."""
    location, root = output_location(path), Path.cwd().resolve()
    if location != root and root not in location.parents:
        return None
    return location.relative_to(root).as_posix()


def lock_outs() -> set[str]:
    """Every out path of every stage in dvc.lock: what the last successful `dvc repro` wrote."""
    lock = Path(LOCK_FILE)
    if not lock.is_file():
        return set()
    try:
        stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages") or {}
    except (yaml.YAMLError, UnicodeDecodeError, AttributeError):
        return set()  # an unreadable lock proves nothing is ours; DVC itself reports it
    return {os.path.normpath(str(out["path"])).replace(os.sep, "/")
            for stage in stages.values() if isinstance(stage, dict)
            for out in stage.get("outs") or [] if isinstance(out, dict) and "path" in out}


def claim(paths: Iterable[str | os.PathLike]) -> None:
    """The running stage's own outputs (after stages/common/paths.py checked them): directories among them
    get OUTPUT_MARKER, files are recorded in WRITTEN_RECORD."""
    _claimed.update(output_location(p) for p in paths)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _written_record() -> dict[str, str]:
    try:
        record = json.loads(WRITTEN_RECORD.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _record_written(final: Path) -> None:
    relative = project_relative(final)
    if relative is None:
        return
    record = {name: digest for name, digest in _written_record().items() if Path(name).exists()}
    record[relative] = _file_digest(final)
    WRITTEN_RECORD.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{WRITTEN_RECORD.name}.tmp", dir=WRITTEN_RECORD.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2, sort_keys=True)
    os.replace(name, WRITTEN_RECORD)


def listing(directory: Path, limit: int = 3) -> str:
    names = sorted(p.name for p in directory.iterdir())
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def foreign_reason(path: str | os.PathLike) -> Optional[str]:
    """None when replacing `path` loses nothing this pipeline did not write; else what is there (for a message)."""
    path = Path(path)
    if not os.path.lexists(path):
        return None
    relative = project_relative(path)
    if relative is not None and relative in lock_outs():
        return None
    if path.is_symlink():
        return "is a symbolic link this pipeline did not make (not an out in dvc.lock)"
    if (path.parent / OUTPUT_MARKER).is_file():
        return None  # an entry of a folder the pipeline owns (paths.eval, paths.train_log)
    if path.is_dir():
        if not any(path.iterdir()) or (path / OUTPUT_MARKER).is_file():
            return None
        return f"holds files this pipeline did not write ({listing(path)})"
    if relative is not None and _written_record().get(relative) == _file_digest(path):
        return None
    return "is a file this pipeline has no record of writing (not an out in dvc.lock)"


def refuse_unless_replaceable(final: Path) -> None:
    reason = foreign_reason(final)
    if reason:
        raise UserError(f"{final}: not replaced: it {reason}; a stage replaces only what it wrote: move it away "
                        f"or point the output elsewhere")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _clean_stale_temps(final: Path) -> None:
    """Temp siblings from an earlier killed run of the same output (exactly the names mkdtemp/mkstemp give)."""
    pattern = re.compile(rf"\.{re.escape(final.name)}\.tmp[a-z0-9_]{{8}}")
    for stale in final.parent.glob(f".{glob_escape(final.name)}.tmp*"):
        if pattern.fullmatch(stale.name):
            _remove(stale)


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temp directory; on success it replaces `final`, on error it is removed.

    Refuses (UserError) before any work, and again before the rename, when `final` holds what the pipeline
    did not write. The replacement carries OUTPUT_MARKER when the stage claimed `final` or the old one had it.
    """
    final = Path(final)
    refuse_unless_replaceable(final)
    marked = output_location(final) in _claimed or (final / OUTPUT_MARKER).is_file()
    final.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale_temps(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp", dir=final.parent))
    try:
        yield tmp
        if marked:
            (tmp / OUTPUT_MARKER).write_text(MARKER_TEXT, encoding="utf-8")
        refuse_unless_replaceable(final)  # the long work above may have given a user time to put files there
    except BaseException:
        _remove(tmp)
        raise
    _remove(final)
    os.replace(tmp, final)
    # mkdtemp creates 0700 directories; outputs are ordinary directories.
    os.chmod(final, 0o755)


@contextlib.contextmanager
def atomic_file(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp file path; on success it replaces `final`, on error it is removed."""
    final = Path(final)
    if final.is_dir() and not final.is_symlink():
        raise UserError(f"{final}: is a directory, not replaced by a file; move it away or point the output elsewhere")
    final.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale_temps(final)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    os.chmod(tmp, 0o644)
    os.replace(tmp, final)
    if output_location(final) in _claimed:
        _record_written(final)


def write_json(path: str | os.PathLike, payload: Any, sort_keys: bool = True) -> None:
    """Stable JSON (fixed float repr; sorted keys, or the payload's own order where it was built in a fixed
    order on purpose, e.g. headline metrics first) so reruns are byte-identical."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=sort_keys, ensure_ascii=False) + "\n",
                       encoding="utf-8")


def write_csv(frame: Any, path: str | os.PathLike) -> None:
    """A pandas DataFrame as UTF-8 CSV with LF line ends, atomically."""
    with atomic_file(path) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


FILE_STEM_CHARS = 40  # far below every file system's 255-byte name limit, even in UTF-8 kanji (3 bytes each)


def class_file_stems(names: list[str]) -> list[str]:
    """One file name stem per class: `<index>-<name>`, path-unsafe characters replaced and long names cut.

    The index prefix makes stems unique by construction, whatever the names are (`x`, `x_2`, `x~`, names
    equal up to case on a case-insensitive file system, or names that differ only past the cut).
    """
    stems = []
    for index, name in enumerate(names):
        readable = re.sub(r"[^\w.-]+", "_", str(name)).strip("._")[:FILE_STEM_CHARS]
        stems.append(f"{index}-{readable}" if readable else str(index))
    return stems
