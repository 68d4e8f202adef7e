"""baselines stage: what a run must beat, scored on the same split as the model (stages/evaluation/baselines.py).

It does not read the fine-tuned model, so `dvc exp run -S train.*` never reruns it.
"""
from __future__ import annotations

import datasets

from stages.common.errors import stage_entry
from stages.common.outputs import write_csv, write_json
from stages.common.params import load_params
from stages.common.paths import check_outputs
from stages.common.spreadsheet import spreadsheet_safe
from stages.common.threads import shares_cores
from stages.evaluation.baselines import (
    METRICS_FILE,
    PREDICTIONS_FILE,
    PROBABILITIES_FILE,
    predictions_table,
    run_baselines,
    save_tfidf_probabilities,
)
from stages.evaluation import multi_label_baselines, regression_baselines
from stages.evaluation.metrics import rounded


@stage_entry
@shares_cores
def main() -> None:
    params = load_params()
    check_outputs(params, "baselines")
    split = datasets.load_from_disk(params.paths.split)
    if params.data.task == "regression":  # ridge regressions (stages/evaluation/regression_baselines.py)
        scores, tfidf_values, tfidf_rows = regression_baselines.run_regression_baselines(
            split, params.paths.embeddings, params.baselines)
        write_csv(regression_baselines.values_table(tfidf_values), f"{params.paths.baselines}/{PREDICTIONS_FILE}")
        save_tfidf_probabilities(tfidf_rows, f"{params.paths.baselines}/{PROBABILITIES_FILE}")
        write_json(f"{params.paths.baselines}/{METRICS_FILE}", rounded(scores), sort_keys=False)
        print(f"{regression_baselines.summary(scores)} -> {params.paths.baselines}/")
        return
    if params.data.task == "multi_label":  # one-vs-rest logistic regressions (stages/evaluation/multi_label_baselines.py)
        scores, tfidf_labels, tfidf_rows = multi_label_baselines.run_multi_label_baselines(
            split, params.paths.embeddings, params.baselines, params.data.label_separator)
        write_csv(spreadsheet_safe(multi_label_baselines.labels_table(tfidf_labels)),
                  f"{params.paths.baselines}/{PREDICTIONS_FILE}")
        save_tfidf_probabilities(tfidf_rows, f"{params.paths.baselines}/{PROBABILITIES_FILE}")
        write_json(f"{params.paths.baselines}/{METRICS_FILE}", rounded(scores), sort_keys=False)
        print(f"{multi_label_baselines.summary(scores)} -> {params.paths.baselines}/")
        return
    scores, tfidf_predicted, tfidf_probabilities = run_baselines(split, params.paths.embeddings, params.baselines)
    scores = rounded(scores)
    names = split["train"].features["label"].names
    write_csv(spreadsheet_safe(predictions_table(tfidf_predicted, names)), f"{params.paths.baselines}/{PREDICTIONS_FILE}")
    save_tfidf_probabilities(tfidf_probabilities, f"{params.paths.baselines}/{PROBABILITIES_FILE}")
    write_json(f"{params.paths.baselines}/{METRICS_FILE}", scores, sort_keys=False)
    valid = {name: scores[name]["valid"] for name in scores}
    print(f"baselines: valid macro-F1 probe {valid['probe']['macro_f1']:.4f}, "
          f"MTEB protocol {valid['mteb']['macro_f1_mean']:.4f} ± {valid['mteb']['macro_f1_std']:.4f}, "
          f"kNN {valid['knn']['macro_f1']:.4f}, TF-IDF {valid['tfidf']['macro_f1']:.4f} -> {params.paths.baselines}/")


if __name__ == "__main__":
    main()
