"""base_model stage: resolve `model.name` into a local, tracked directory.

- `builtin`: build a small Japanese BERT offline from the train split (stages/modeling/builtin.py);
- a local directory: copy its safetensors weights, config and tokenizer files;
- anything else: a Hugging Face hub id, downloaded with the hub API at `model.revision`.
Downstream stages read only this directory, never a mutable hub name.
"""
from __future__ import annotations

from stages.common.errors import stage_entry
from stages.common.outputs import write_json
from stages.common.params import load_params
from stages.common.paths import check_outputs
from stages.modeling.base import resolve_base_model


@stage_entry
def main() -> None:
    params = load_params()
    check_outputs(params, "base_model")
    summary = resolve_base_model(params.model, params.paths.split, params.paths.base_model)
    write_json(params.paths.model_summary, summary)
    print(f"base_model: {summary['source']} ({summary['model_type']}, {summary['num_hidden_layers']} layers, "
          f"hidden {summary['hidden_size']}, vocab {summary['vocab_size']}, {summary['tokenizer_class']}) "
          f"-> {params.paths.base_model}")

if __name__ == "__main__":
    main()
