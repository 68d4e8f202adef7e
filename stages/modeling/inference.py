"""Class probabilities from a fine-tuned model over token-id sequences (evaluate and predict share it)."""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from stages.common import threads
from stages.modeling.batching import pad_batch, sorted_batches


def predict_proba(model: PreTrainedModel, sequences: list[list[int]], batch_size: int, device: torch.device,
                  dtype: torch.dtype | None = None, desc: str = "predict",
                  token_type_ids: list[list[int]] | None = None) -> np.ndarray:
    """Softmax probabilities, shape (len(sequences), num_labels), rows in input order; for a regression model
    (config.problem_type "regression") its raw outputs, the predicted values, shape (len(sequences), 1); for a
    multi-label model ("multi_label_classification") one sigmoid probability per label.
    `token_type_ids`: the segments of sentence pairs (stages/dataset/pairs.py), padded with 0 like the ids."""
    regression = model.config.problem_type == "regression"
    multi_label = model.config.problem_type == "multi_label_classification"
    model = model.to(device).eval()
    probabilities = np.zeros((len(sequences), model.config.num_labels), dtype=np.float32)
    pad_id = model.config.pad_token_id or 0
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else torch.autocast(device.type, enabled=False)
    with torch.inference_mode(), autocast, tqdm(total=len(sequences), desc=desc, unit="text", mininterval=2) as bar:
        for rows in sorted_batches([len(s) for s in sequences], batch_size):
            threads.refresh()  # concurrent pipeline runs share the cores (stages/common/threads.py)
            ids, mask = pad_batch([sequences[i] for i in rows], pad_id)
            segments = {} if token_type_ids is None else {
                "token_type_ids": pad_batch([token_type_ids[i] for i in rows], 0)[0].to(device)}
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), **segments).logits.float()
            probabilities[rows] = (logits if regression else torch.sigmoid(logits) if multi_label
                                   else torch.softmax(logits, dim=-1)).cpu().numpy()
            bar.update(len(rows))
    return probabilities


PROBABILITY_DIGITS = 6  # every file that shows probabilities (predictions, submission, predict output)


def probability_columns(probabilities: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """`p_<class>` columns, rounded the same way wherever they are written, so files agree digit for digit."""
    # float64 before rounding: a rounded float32 prints as 0.03782900050282478 in JSON.
    rounded = np.asarray(probabilities, dtype=np.float64).round(PROBABILITY_DIGITS)
    return {f"p_{name}": rounded[:, i] for i, name in enumerate(names)}
