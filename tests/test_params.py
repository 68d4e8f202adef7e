"""params.yaml validation: defaults, the committed file, and messages for typos and bad values."""
from __future__ import annotations

import pytest
import yaml

from stages.errors import UserError
from stages.params import Params, load_params, parse_params
from tests.conftest import REPO


def test_committed_params_file_is_valid_and_complete():
    params = load_params(REPO / "params.yaml")
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    # every declared section and key appears in the committed file, so the README table is the whole story
    for section, fields in Params.model_fields.items():
        assert section in raw
        declared = set(type(getattr(params, section)).model_fields)
        assert declared == set(raw[section]), section


@pytest.mark.parametrize("raw, fragment", [
    ({"trian": {}}, "did you mean 'train'"),
    ({"embed": {"poolin": "cls"}}, "did you mean 'embed.pooling'"),
    ({"train": {"epochs": 0}}, "train.epochs"),
    ({"model": {"builtin": {"hidden_size": 30, "num_attention_heads": 4}}}, "must divide hidden_size"),
    ({"data": {"label_names": ["a", "a"]}}, "distinct"),
    ({"data": {"on_conflict": "merge"}}, "'error', 'drop' or 'keep'"),
    ({"train": {"lr_scheduler_type": "cosine_annealing"}}, "cosine_with_min_lr"),
])
def test_bad_params_name_the_key_and_the_fix(raw, fragment):
    with pytest.raises(UserError, match="params.yaml") as err:
        parse_params(raw)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_valid_scheduler_accepted():
    assert parse_params({"train": {"lr_scheduler_type": "cosine"}}).train.lr_scheduler_type == "cosine"
