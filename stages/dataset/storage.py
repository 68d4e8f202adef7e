"""Saving a DatasetDict as a stage output: atomically, and byte-identical when the rows are."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

import datasets

from stages.common.outputs import atomic_dir

SUMMARY_FILE = "summary.json"


def save_dataset(dataset_dict: datasets.DatasetDict, out_dir: str | Path, summary: Optional[dict] = None) -> None:
    """save_to_disk into a fresh directory that replaces `out_dir` when complete, byte-identical on reruns."""
    with atomic_dir(out_dir) as tmp:
        dataset_dict.save_to_disk(str(tmp))
        normalise_dataset_state(tmp)
        if summary is not None:
            (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, ensure_ascii=False, sort_keys=True) + "\n",
                                            encoding="utf-8")


def normalise_dataset_state(saved: Path) -> None:
    """Replace run-dependent fields that `save_to_disk` writes, so reruns are byte-identical."""
    for state_file in saved.glob("*/state.json"):
        state = json.loads(state_file.read_text())
        digest = hashlib.sha256()
        for data_file in state.get("_data_files", []):
            digest.update((state_file.parent / data_file["filename"]).read_bytes())
        state["_fingerprint"] = digest.hexdigest()[:16]
        state_file.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
