"""The short summary that ends `dvc repro` and `make repro`: the headline number, how sure it is, whether it
beats TF-IDF (a paired test on the same texts), calibration, and where the files are. Read from the files the
evaluate and baselines stages wrote, so `python -m stages.evaluate --summary` prints it again at no cost."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from stages.common.errors import UserError
from stages.common.params import Params
from stages.evaluation.baselines import METRICS_FILE as BASELINE_METRICS
from stages.evaluation.evaluator import METRICS_FILE, PREDICTIONS_FILE
from stages.evaluation.significance import paired_difference


def _paired_vs_tfidf(predictions: Path):
    if not predictions.is_file():
        return None
    frame = pd.read_csv(predictions, dtype=str, keep_default_na=False)
    rows = frame[(frame["split"] == "valid") & (frame["gold"] != "")]
    if "tfidf_predicted" not in rows.columns or rows.empty:
        return None
    names = sorted(set(rows["gold"]) | set(rows["predicted"]) | set(rows["tfidf_predicted"]))
    index = {name: i for i, name in enumerate(names)}

    def encode(column: str) -> np.ndarray:
        return rows[column].map(index).to_numpy()

    return paired_difference(encode("gold"), encode("tfidf_predicted"), encode("predicted"), len(names))


def summary_lines(params: Params) -> list[str]:
    eval_dir = Path(params.paths.eval)
    metrics_file = eval_dir / METRICS_FILE
    if not metrics_file.is_file():
        raise UserError(f"{metrics_file}: not found; run `dvc repro` first")
    metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    valid = metrics["valid"]
    if "micro_f1" in valid:  # data.task multi_label
        return [f"valid micro-F1 {valid['micro_f1']:.4f} (95% CI {valid['micro_f1_ci95_low']:.4f}–"
                f"{valid['micro_f1_ci95_high']:.4f}), macro-F1 {valid['macro_f1']:.4f}, samples-F1 "
                f"{valid['samples_f1']:.4f} at threshold {valid['threshold']:.2f} (chosen on dev)",
                f"report:  {eval_dir / 'report.md'}",
                f"metrics: {metrics_file}  (compare runs: python -m stages.compare, dvc exp show)"]
    if "macro_f1" not in valid:  # data.task regression
        return [f"valid Spearman {valid['spearman']:.4f} (95% CI {valid['spearman_ci95_low']:.4f}–"
                f"{valid['spearman_ci95_high']:.4f}), Pearson {valid['pearson']:.4f}, MSE {valid['mse']:.4f}, "
                f"MAE {valid['mae']:.4f}", f"report:  {eval_dir / 'report.md'}",
                f"metrics: {metrics_file}  (compare runs: python -m stages.compare, dvc exp show)"]
    lines = [f"valid macro-F1 {valid['macro_f1']:.4f} (95% CI {valid['macro_f1_ci95_low']:.4f}–"
             f"{valid['macro_f1_ci95_high']:.4f}), accuracy {valid['accuracy']:.4f}, ECE {valid['ece']:.3f}"]
    baselines_file = Path(params.paths.baselines) / BASELINE_METRICS
    tfidf = json.loads(baselines_file.read_text(encoding="utf-8")).get("tfidf", {}).get("valid") \
        if baselines_file.is_file() else None
    diff = _paired_vs_tfidf(eval_dir / PREDICTIONS_FILE)
    if tfidf and diff is not None:
        ci = f"paired 95% CI {diff.low:+.4f} to {diff.high:+.4f}"
        if not diff.detectable:
            words = f"not detectably different from TF-IDF ({tfidf['macro_f1']:.4f}; {ci})"
        elif diff.difference > 0:
            words = f"better than TF-IDF ({tfidf['macro_f1']:.4f}) by {diff.difference:.4f} ({ci})"
        else:
            words = f"worse than TF-IDF ({tfidf['macro_f1']:.4f}) by {-diff.difference:.4f} ({ci})"
        lines.append(f"the fine-tuned model is {words}")
    blend = metrics.get("blend", {})
    if "valid" in blend:
        lines.append(f"blend with TF-IDF (model weight {blend['model_weight']:.2f}, chosen on dev): valid macro-F1 "
                     f"{blend['valid']['macro_f1']:.4f} ({blend['valid']['macro_f1_ci95_low']:.4f}–"
                     f"{blend['valid']['macro_f1_ci95_high']:.4f})")
    lines += [f"report:  {eval_dir / 'report.md'}",
              f"metrics: {metrics_file}  (compare runs: python -m stages.compare, dvc exp show)",
              f"model:   {params.paths.release}  (written by the package stage; ja-textclf-predict {params.paths.release} 'テキスト')"]
    return lines
