"""Per-text vector cache of the embed stage: an SQLite file of raw float32 vectors (never a pickle).

Each text's key is sha256(namespace + its token ids). The namespace hashes everything else that
decides the vector: the base model directory's files (weights, config, tokenizer files),
pooling, normalisation, precision, tokenize.max_length, the packing block size, the device type,
torch's version and thread count. Change any of them and no old entry matches any more: the cache is
invalidated without being deleted, and old entries age out under the size bound (least recently used
first).

The file lives outside DVC's outputs (default `.cache/embed/vectors.sqlite`, git-ignored), so
`dvc repro` does not delete it when it reruns the stage.
"""
from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

SCHEMA_VERSION = "1"
LOOKUP_CHUNK = 500  # keys per SELECT ... IN (...), below SQLite's variable limit


def namespace(parts: dict) -> bytes:
    """A digest of the settings that decide a vector (everything but the text)."""
    text = "\n".join(f"{name}={parts[name]}" for name in sorted(parts))
    return hashlib.sha256(f"embed-cache-v{SCHEMA_VERSION}\n{text}".encode()).digest()


def text_key(space: bytes, token_ids: np.ndarray) -> bytes:
    # Token ids are a function of the text, the tokenizer files and max_length (all in the namespace).
    return hashlib.sha256(space + np.ascontiguousarray(token_ids, dtype="<i8").tobytes()).digest()


class VectorCache:
    """key -> float32 vector, with a size bound in bytes (least recently used entries go first)."""

    def __init__(self, path: str | Path, dim: int, max_bytes: int):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dim = dim
        self.max_bytes = max_bytes
        self.db = sqlite3.connect(str(self.path))
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL, "
                        "used INTEGER NOT NULL) WITHOUT ROWID")
        self.db.execute("CREATE INDEX IF NOT EXISTS vectors_used ON vectors(used)")
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = self.db.execute("SELECT value FROM meta WHERE name='run'").fetchone()
        # Each run stamps the entries it reads or writes; eviction removes the oldest stamps first.
        self.run = int(row[0]) + 1 if row else 1
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('run', ?)", (str(self.run),))
        self.db.commit()

    def lookup(self, keys: Iterable[bytes]) -> Iterator[tuple[bytes, np.ndarray]]:
        """(key, vector) for the keys that are cached; marks them as used by this run."""
        keys = list(keys)
        for start in range(0, len(keys), LOOKUP_CHUNK):
            chunk = keys[start:start + LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk).fetchall()
            self.db.execute(f"UPDATE vectors SET used=? WHERE key IN ({marks})", [self.run, *chunk])
            for key, blob in rows:
                if len(blob) == 4 * self.dim:  # anything else is not ours: treat as a miss
                    yield key, np.frombuffer(blob, dtype="<f4")
        self.db.commit()

    def store(self, keys: list[bytes], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        self.db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                            ((key, vector.tobytes(), self.run) for key, vector in zip(keys, vectors)))
        self.db.commit()

    def size_bytes(self) -> int:
        pages, free, page_size = (self.db.execute(f"PRAGMA {name}").fetchone()[0]
                                  for name in ("page_count", "freelist_count", "page_size"))
        return (pages - free) * page_size

    def entries(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]

    def evict(self) -> int:
        """Drop least recently used entries until the file's used pages fit the bound; returns how many."""
        dropped = 0
        while True:
            size, count = self.size_bytes(), self.entries()
            if size <= self.max_bytes or count == 0:
                return dropped
            # Entries are about equal in size: drop the share over the bound, plus a little for page slack.
            drop = min(count, int(count * (1 - self.max_bytes / size) * 1.05) + 1)
            self.db.execute("DELETE FROM vectors WHERE key IN (SELECT key FROM vectors ORDER BY used, key LIMIT ?)",
                            (drop,))
            self.db.commit()
            dropped += drop

    def close(self) -> None:
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.close()
