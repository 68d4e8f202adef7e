"""The train and embed stages' model loads: transformers' LOAD REPORT for the expected new classification head is
silenced, a real loading problem is still shown."""
from __future__ import annotations

import logging

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import BertConfig, BertForMaskedLM

from stages.modeling.encoder import load_encoder
from stages.modeling.training import load_for_classification

LABELS = ({0: "a", 1: "b"}, {"a": 0, "b": 1})


@pytest.fixture()
def masked_lm_dir(tmp_path):
    """A tiny BERT saved as the builtin model is: masked-LM head, no pooler, no classifier."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    BertForMaskedLM(config).save_pretrained(tmp_path)
    return tmp_path


def test_expected_new_head_loads_without_a_report(masked_lm_dir, capsys, caplog):
    caplog.set_level(logging.INFO)
    level = logging.getLogger("transformers.modeling_utils").getEffectiveLevel()
    model = load_for_classification(str(masked_lm_dir), *LABELS)
    printed = capsys.readouterr()
    shown = printed.out + printed.err + caplog.text
    assert "LOAD REPORT" not in shown and "classifier.weight" not in shown, shown
    assert model.config.id2label == LABELS[0] and model.classifier.out_features == 2
    # transformers' own level is back after the call: the silencing is for that load only.
    assert logging.getLogger("transformers.modeling_utils").getEffectiveLevel() == level


def test_an_encoder_weight_missing_from_the_checkpoint_is_still_shown(masked_lm_dir, caplog):
    weights = masked_lm_dir / "model.safetensors"
    tensors = load_file(weights)
    dropped = "bert.encoder.layer.0.output.dense.weight"
    del tensors[dropped]
    save_file(tensors, weights, metadata={"format": "pt"})
    with caplog.at_level(logging.WARNING, logger="stages.modeling.training"):
        load_for_classification(str(masked_lm_dir), *LABELS)
    assert f"missing: {dropped}" in caplog.text
    assert "classifier" not in caplog.text  # the expected head is not listed with it


def test_encoder_load_drops_the_pretraining_head_without_a_report_and_shows_a_missing_weight(masked_lm_dir, capsys,
                                                                                              caplog):
    caplog.set_level(logging.INFO)
    load_encoder(str(masked_lm_dir), "cls", torch.device("cpu"))  # drops cls.*, no pooler in the checkpoint
    printed = capsys.readouterr()
    shown = printed.out + printed.err + caplog.text
    assert "LOAD REPORT" not in shown and "cls.predictions" not in shown and "pooler" not in shown, shown
    weights = masked_lm_dir / "model.safetensors"
    tensors = load_file(weights)
    del tensors["bert.encoder.layer.0.output.dense.weight"]
    save_file(tensors, weights, metadata={"format": "pt"})
    with caplog.at_level(logging.WARNING, logger="stages.modeling.encoder"):
        load_encoder(str(masked_lm_dir), "cls", torch.device("cpu"))
    assert "missing: encoder.layer.0.output.dense.weight" in caplog.text and "pooler" not in caplog.text
