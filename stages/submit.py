"""submit stage: predictions for the unlabelled test file, as a competition-style submission CSV.

Columns: `data.id_column`, `data.label_column` (the predicted class name), then `p_<class>` for every
class. The file always exists, because DVC requires declared outputs: without an unlabelled test set
(`data.test_csv` unset, or a test file that has labels and is scored by the evaluate stage instead) it
holds the header line only. Probabilities come from `stages.modeling.inference.predict_proba` on the tokenize
stage's ids, exactly as in the evaluate stage; with split.folds > 1, the mean of the fold models' probabilities.
"""
from __future__ import annotations

from stages.common.errors import stage_entry
from stages.common.params import load_params
from stages.common.paths import check_outputs
from stages.common.threads import shares_cores
from stages.modeling.fold_ensemble import make_cv_submission
from stages.modeling.submission import make_submission, write_submission


@stage_entry
@shares_cores
def main() -> None:
    params = load_params()
    check_outputs(params, "submit")
    if params.split.folds > 1:  # k-fold: the fold models' average (docs/evaluation.md, "Cross-validation")
        frame, what = make_cv_submission(params)
    else:
        frame, what = make_submission(params.paths, params.data, params.train.eval_batch_size)
    write_submission(frame, params.paths.submission)
    print(f"submit: {what} -> {params.paths.submission}")


if __name__ == "__main__":
    main()
