"""Content hashes of files and directories (checkpoint keys, the embedding cache's namespace)."""
from __future__ import annotations

import hashlib
from pathlib import Path


def update_with_path(digest: "hashlib._Hash", path: str | Path) -> None:
    """Feed the relative names and bytes of every file under `path` (sorted), or of the file itself."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")


def hash_directory(directory: str | Path) -> str:
    """sha256 over the names and bytes of every file in `directory` (recursively, sorted)."""
    digest = hashlib.sha256()
    update_with_path(digest, directory)
    return digest.hexdigest()
