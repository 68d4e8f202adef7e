"""Atomic outputs: write to a temporary path in the same directory, rename into place when complete.

A stage killed half-way therefore leaves either the old output or none, never a half-written one
that DVC would then cache.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _clean_stale_temps(final: Path) -> None:
    """Temp siblings from an earlier killed run of the same output."""
    for stale in final.parent.glob(f".{final.name}.tmp*"):
        _remove(stale)


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temp directory; on success it replaces `final`, on error it is removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale_temps(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp", dir=final.parent))
    try:
        yield tmp
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


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Stable JSON (sorted keys, fixed float repr) so reruns are byte-identical."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                       encoding="utf-8")


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
