"""params.yaml validation: one source of defaults, the committed file, and messages for typos and bad values."""
from __future__ import annotations

import pytest
import yaml
from pydantic import BaseModel

from stages.common.errors import UserError
from stages.common.params import (
    Params,
    TrainParams,
    load_params,
    parse_params,
    project_params,
    project_raw,
)
from tests.conftest import REPO, deep_update


def schema_fields(model: type[BaseModel] = Params, prefix: str = ""):
    for name, field in model.model_fields.items():
        yield prefix + name, field
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from schema_fields(field.annotation, f"{prefix}{name}.")


def test_schema_holds_no_defaults_only_descriptions():
    """params.yaml is the one place values live: a second set of defaults in the schema could disagree."""
    fields = list(schema_fields())
    assert len(fields) > 80
    with_default = [key for key, field in fields if not field.is_required()]
    assert not with_default, f"schema fields with a default (put the value in params.yaml): {with_default}"
    undocumented = [key for key, field in fields if not field.description]
    assert not undocumented, f"schema fields without a description: {undocumented}"


def test_committed_params_file_is_valid():
    params = load_params(REPO / "params.yaml")
    assert params.train.class_weights == project_raw()["train"]["class_weights"]


def test_a_deleted_key_is_an_error_not_a_silent_default(tmp_path):
    raw = project_raw()
    del raw["train"]["learning_rate"]
    with pytest.raises(UserError, match=r"missing key 'train.learning_rate'") as err:
        parse_params(raw)
    assert "\n" not in str(err.value)


def test_sections_from_project_are_the_params_file_values():
    raw = project_raw()
    assert TrainParams.from_project() == project_params().train
    assert TrainParams.from_project(epochs=2).epochs == 2
    assert TrainParams.from_project().weight_decay == raw["train"]["weight_decay"]


def test_auto_learning_rate_depends_on_the_model_and_a_number_is_kept():
    from stages.common.params import AUTO_LEARNING_RATE

    assert project_params({"train": {"learning_rate": "auto"}}).train.learning_rate == AUTO_LEARNING_RATE["builtin"]
    hub = project_params({"train": {"learning_rate": "auto"}, "model": {"name": "tohoku-nlp/bert-base-japanese-v3"}})
    assert hub.train.learning_rate == AUTO_LEARNING_RATE["pretrained"] < AUTO_LEARNING_RATE["builtin"]
    assert project_params({"train": {"learning_rate": 0.002}}).train.learning_rate == 0.002
    # YAML reads 1e-4 (no dot) as a string; it is the number users mean
    assert parse_params(deep_update(project_raw(), yaml.safe_load("train: {learning_rate: 1e-4}"))).train.learning_rate == 1e-4
    with pytest.raises(UserError, match=r"train.learning_rate: must be auto or a finite number > 0"):
        project_params({"train": {"learning_rate": "fast"}})


@pytest.mark.parametrize("raw, fragment", [
    ({"trian": {}}, "did you mean 'train'"),
    ({"embed": {"poolin": "cls"}}, "did you mean 'embed.pooling'"),
    ({"train": {"epochs": 0}}, "train.epochs"),
    ({"train": {"epochs": float("inf")}}, "train.epochs: must be a finite number"),
    ({"train": {"learning_rate": float("inf")}}, "train.learning_rate: must be auto or a finite number"),
    ({"split": {"valid_size": float("nan")}}, "split.valid_size: must be a finite number"),
    ({"model": {"builtin": {"hidden_size": 30, "num_attention_heads": 4}}}, "must divide hidden_size"),
    ({"data": {"label_names": ["a", "a"]}}, "distinct"),
    ({"data": {"on_conflict": "merge"}}, "'error', 'drop' or 'keep'"),
    ({"train": {"lr_scheduler_type": "cosine_annealing"}}, "cosine_with_min_lr"),
])
def test_bad_params_name_the_key_and_the_fix(raw, fragment):
    with pytest.raises(UserError, match="params.yaml") as err:
        parse_params(deep_update(project_raw(), raw))
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_valid_scheduler_accepted():
    assert project_params({"train": {"lr_scheduler_type": "cosine"}}).train.lr_scheduler_type == "cosine"


def test_window_bounds_bind_only_under_the_strategy_that_reads_them():
    """A short max_length with truncate must not trip over the default stride (a sliding_window setting)."""
    short = {"tokenize": {"max_length": 16, "stride": 32, "head_tokens": 40}}
    assert project_params(deep_update(short, {"tokenize": {"long_text": "truncate"}})).tokenize.max_length == 16
    with pytest.raises(UserError, match="stride"):
        project_params(deep_update(short, {"tokenize": {"long_text": "sliding_window"}}))
    with pytest.raises(UserError, match="head_tokens"):
        project_params(deep_update(short, {"tokenize": {"long_text": "head_tail", "stride": 0}}))
