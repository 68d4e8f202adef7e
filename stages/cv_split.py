"""cv_split stage: which cv rows each fold holds out and trains on (split.folds > 1), as folds.json.

With split.folds 1 it only records that cross-validation is off, so the cv stages cost nothing by default.
"""
from __future__ import annotations

from pathlib import Path

from stages.common.errors import stage_entry
from stages.common.outputs import write_json
from stages.common.params import load_params
from stages.common.paths import check_outputs

SUMMARY_FILE = "folds.json"


@stage_entry
def main() -> None:
    params = load_params()
    check_outputs(params, "cv_split")
    if params.split.folds == 1:  # cross-validation off: no data read, no heavy import (the default pipeline)
        summary, notes = {"folds": 1}, []
    else:
        import datasets

        from stages.dataset.folds import cv_labels, folds_summary

        tokenized = datasets.load_from_disk(params.paths.tokenized)
        names = tokenized["train"].features["label"].names
        summary, notes = folds_summary(cv_labels(tokenized), names, params.split)
    for note in notes:
        print(f"note: {note}")
    write_json(Path(params.paths.cv) / SUMMARY_FILE, summary, sort_keys=False)
    what = (f"{params.split.folds} stratified folds of {summary['rows']} rows" if params.split.folds > 1
            else "off (split.folds: 1)")
    print(f"cv_split: cross-validation {what} -> {params.paths.cv}/{SUMMARY_FILE}")


if __name__ == "__main__":
    main()
