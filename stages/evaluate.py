"""evaluate stage: metrics, plots and predictions that DVC tracks, plus a linear probe on the embeddings."""
from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from transformers import AutoModelForSequenceClassification

from stages.errors import stage_entry
from stages.hardware import resolve_device
from stages.inference import predict_proba
from stages.metrics import classification_scores, per_class_scores
from stages.outputs import atomic_file, write_json
from stages.params import EvaluateParams, load_params


def rounded(value, digits: int = 6):
    """Round floats so metrics files are stable and readable in `dvc metrics show`."""
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, float):
        return round(value, digits)
    return value


def split_metrics(gold: np.ndarray, probabilities: np.ndarray, names: list[str]) -> dict:
    predicted = probabilities.argmax(axis=1)
    scores = classification_scores(gold, predicted, len(names))
    scores["per_class"] = per_class_scores(gold, predicted, names)
    return scores


def linear_probe(train_vectors: np.ndarray, train_labels: np.ndarray, eval_vectors: np.ndarray,
                 eval_labels: np.ndarray, n_classes: int, max_iter: int, seed: int = 0) -> dict:
    """Logistic regression on frozen sentence vectors: how much the encoder alone separates the classes."""
    probe = LogisticRegression(max_iter=max_iter, random_state=seed)
    probe.fit(train_vectors, train_labels)
    return classification_scores(eval_labels, probe.predict(eval_vectors), n_classes)


def confusion_records(gold: np.ndarray, predicted: np.ndarray, names: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"actual": [names[i] for i in gold], "predicted": [names[i] for i in predicted]})


def predictions_frame(texts: list[str], gold: np.ndarray, probabilities: np.ndarray, names: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({"text": texts, "gold": [names[i] for i in gold],
                          "predicted": [names[i] for i in probabilities.argmax(axis=1)]})
    for i, name in enumerate(names):
        frame[f"p_{name}"] = probabilities[:, i].round(6)
    return frame


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_file(path) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")


def evaluate(paths, evaluate_params: EvaluateParams, eval_batch_size: int) -> dict:
    split = datasets.load_from_disk(paths.split)
    tokenized = datasets.load_from_disk(paths.tokenized)
    names = split["train"].features["label"].names
    model = AutoModelForSequenceClassification.from_pretrained(paths.model)
    device = resolve_device("auto")
    out = Path(paths.eval)
    metrics: dict = {}
    predictions = []
    labelled = [name for name in ("valid", "test") if name in split and "label" in split[name].column_names]
    for name in labelled:
        gold = np.asarray(split[name]["label"])
        probabilities = predict_proba(model, tokenized[name]["input_ids"], eval_batch_size, device, desc=f"predict {name}")
        metrics[name] = split_metrics(gold, probabilities, names)
        if name == "valid":
            write_csv(confusion_records(gold, probabilities.argmax(axis=1), names), out / "confusion.csv")
        frame = predictions_frame(split[name]["text"], gold, probabilities, names)
        predictions.append(frame.assign(split=name))
    write_csv(pd.concat(predictions, ignore_index=True), out / "predictions.csv")
    vectors = {name: np.load(Path(paths.embeddings) / f"{name}.npy") for name in ("train", "valid")}
    metrics["probe"] = {"valid": linear_probe(vectors["train"], np.asarray(split["train"]["label"]), vectors["valid"],
                                              np.asarray(split["valid"]["label"]), len(names),
                                              evaluate_params.probe_max_iter)}
    return rounded(metrics)


@stage_entry
def main() -> None:
    params = load_params()
    metrics = evaluate(params.paths, params.evaluate, params.train.eval_batch_size)
    write_json(Path(params.paths.eval) / "metrics.json", metrics)
    print(f"evaluate: valid macro-F1 {metrics['valid']['macro_f1']:.4f} (linear probe "
          f"{metrics['probe']['valid']['macro_f1']:.4f}); metrics: {params.paths.eval}/metrics.json")


if __name__ == "__main__":
    main()
