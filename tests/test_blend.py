"""The blend of the fine-tuned model with TF-IDF (stages/evaluation/blend.py): weight chosen on dev only."""
from __future__ import annotations

import numpy as np

from stages.evaluation.blend import MODEL_WEIGHTS, blend_metrics, blended, choose_model_weight
from stages.evaluation.metrics import classification_scores


def one_hot(indices, n: int = 3) -> np.ndarray:
    return np.eye(n)[np.asarray(indices)]


GOLD = np.array([0, 1, 2] * 10)


def test_the_side_that_is_right_on_dev_gets_the_weight():
    wrong = (GOLD + 1) % 3
    # model right, TF-IDF confidently wrong: the model must outweigh it (w > 0.5); the smallest such w is 0.55
    assert choose_model_weight(GOLD, one_hot(GOLD), one_hot(wrong), 3) == 0.55
    # the other way round: TF-IDF must outweigh the model
    assert choose_model_weight(GOLD, one_hot(wrong), one_hot(GOLD), 3) == 0.45


def test_complementary_models_blend_to_better_than_either():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, size=300)
    # each side knows the truth on its own half of the texts and guesses elsewhere
    model = np.where((np.arange(300) < 150)[:, None], 0.6 * one_hot(gold) + 0.4 / 3,
                     rng.dirichlet(np.ones(3), size=300))
    tfidf = np.where((np.arange(300) >= 150)[:, None], 0.6 * one_hot(gold) + 0.4 / 3,
                     rng.dirichlet(np.ones(3), size=300))
    weight = choose_model_weight(gold, model, tfidf, 3)
    assert weight in MODEL_WEIGHTS and 0 < weight < 1

    def f1(p):
        return classification_scores(gold, p.argmax(axis=1), 3)["macro_f1"]

    assert f1(blended(model, tfidf, weight)) > max(f1(model), f1(tfidf)) + 0.1


def test_metrics_are_those_of_the_blended_predictions_with_intervals():
    rng = np.random.default_rng(1)
    model, tfidf = rng.dirichlet(np.ones(3), size=30), rng.dirichlet(np.ones(3), size=30)
    result = blend_metrics(0.3, {"valid": (GOLD, model, tfidf)}, 3, positive=1)
    expected = classification_scores(GOLD, (0.3 * model + 0.7 * tfidf).argmax(axis=1), 3)
    valid = result["valid"]
    assert result["model_weight"] == 0.3
    assert valid["macro_f1"] == expected["macro_f1"] and valid["accuracy"] == expected["accuracy"]
    for key in ("macro_f1", "accuracy"):
        assert valid[f"{key}_ci95_low"] <= valid[key] <= valid[f"{key}_ci95_high"]
