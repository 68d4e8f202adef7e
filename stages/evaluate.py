"""evaluate stage: score the fine-tuned model once on valid (and a labelled test file), with the baselines.

Writes metrics, plots, per-text predictions and report.md (stages/evaluation/evaluator.py lists the files).
"""
from __future__ import annotations

from stages.common.errors import stage_entry
from stages.common.params import load_params
from stages.common.paths import check_outputs
from stages.evaluation.evaluator import evaluate


@stage_entry
def main() -> None:
    params = load_params()
    check_outputs(params, "evaluate")
    metrics = evaluate(params)
    valid = metrics["valid"]
    print(f"evaluate: valid macro-F1 {valid['macro_f1']:.4f} (TF-IDF {metrics['tfidf']['valid']['macro_f1']:.4f}, "
          f"linear probe {metrics['probe']['valid']['macro_f1']:.4f}, kNN {metrics['knn']['valid']['macro_f1']:.4f}), "
          f"ECE {valid['ece']:.3f}; report: {params.paths.eval}/report.md, metrics: {params.paths.eval}/metrics.json")


if __name__ == "__main__":
    main()
