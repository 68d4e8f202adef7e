"""cv_evaluate stage: out-of-fold scores of the k-fold cross-validation (split.folds > 1).

metrics.json (a DVC metric): `cv.oof_macro_f1` with its 95% interval, `cv.oof_accuracy`, and the per-fold mean
and standard deviation; per_fold.json: each fold's held-out scores; oof_predictions.csv: every cv row's
out-of-fold prediction. With split.folds 1: `cv.folds: 1`, no scores, a header-only CSV, and no heavy import,
so the default pipeline pays next to nothing for this stage.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from stages.common.errors import stage_entry
from stages.common.outputs import write_json, write_text
from stages.common.params import Params, load_params
from stages.common.paths import check_outputs
from stages.common.spreadsheet import neutralise_cell

OOF_FILE = "oof_predictions.csv"
OOF_COLUMNS = ["row", "fold", "text", "gold", "predicted"]  # then p_<class>: evaluation/cross_validation.oof_frame


def cross_validate(params: Params, out: Path) -> tuple[dict, list]:
    import datasets

    from stages.common.outputs import write_csv
    from stages.common.spreadsheet import spreadsheet_safe
    from stages.dataset.folds import cv_dataset, cv_labels
    from stages.evaluation.cross_validation import cv_metrics, oof_frame, out_of_fold
    from stages.evaluation.metrics import positive_index

    split = datasets.load_from_disk(params.paths.split)
    names = split["train"].features["label"].names
    gold = cv_labels(split)
    fold_of_row, probabilities = out_of_fold(params.paths.cv, params.split.fold_ids, len(gold), len(names))
    positive = positive_index(names, params.evaluate.positive_label)
    metrics, per_fold = cv_metrics(gold, probabilities, fold_of_row, len(names), positive)
    frame = oof_frame(cv_dataset(split)["text"], gold, fold_of_row, probabilities, names)
    write_csv(spreadsheet_safe(frame), out / OOF_FILE)
    return metrics, per_fold


@stage_entry
def main() -> None:
    params = load_params()
    check_outputs(params, "cv_evaluate")
    out = Path(params.paths.cv_eval)
    if params.split.folds == 1:
        names = json.loads((Path(params.paths.split) / "summary.json").read_text(encoding="utf-8"))["label_names"]
        header = io.StringIO()  # the columns a k-fold run writes, as pandas would quote them
        csv.writer(header, lineterminator="\n").writerow(
            [neutralise_cell(c) for c in OOF_COLUMNS + [f"p_{name}" for name in names]])
        write_text(out / OOF_FILE, header.getvalue())
        metrics, per_fold = {"folds": 1}, []
    else:
        metrics, per_fold = cross_validate(params, out)
    write_json(out / "per_fold.json", per_fold)
    write_json(out / "metrics.json", {"cv": metrics}, sort_keys=False)
    if params.split.folds == 1:
        print("cv_evaluate: cross-validation off (split.folds: 1)")
    else:
        print(f"cv_evaluate: out-of-fold macro-F1 {metrics['oof_macro_f1']:.4f} (95% CI "
              f"{metrics['oof_macro_f1_ci95_low']:.4f}..{metrics['oof_macro_f1_ci95_high']:.4f}) over "
              f"{metrics['rows']} rows; per fold {metrics['fold_macro_f1_mean']:.4f} +/- "
              f"{metrics['fold_macro_f1_std']:.4f} -> {out}")


if __name__ == "__main__":
    main()
