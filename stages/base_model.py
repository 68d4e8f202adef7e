"""base_model stage: resolve `model.name` into a local, tracked directory.

- `builtin`: build a small Japanese BERT offline (stages/modeling/builtin.py), pretrained on the train split's
  texts, data.test_csv's texts and model.pretrain_corpus (stages/modeling/pretraining_texts.py), never on valid
  or dev texts;
- a local directory: copy its safetensors weights, config and tokenizer files;
- anything else: a Hugging Face hub id, downloaded with the hub API at `model.revision`.
Downstream stages read only this directory, never a mutable hub name.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from stages.common.errors import stage_entry
from stages.common.outputs import write_json
from stages.common.params import BUILTIN_MODEL, load_params
from stages.common.paths import check_outputs
from stages.common.threads import shares_cores
from stages.modeling.base import resolve_base_model


def pretrain_corpus_tracked(dvc_yaml: Path = Path("dvc.yaml")) -> bool:
    """Whether dvc.yaml lists model.pretrain_corpus as a dep of base_model (DVC cannot make that dep conditional)."""
    if not dvc_yaml.is_file():
        return True
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")).get("stages", {})
    return any("pretrain_corpus" in str(dep) for dep in stages.get("base_model", {}).get("deps", []))


@stage_entry
@shares_cores
def main() -> None:
    params = load_params()
    check_outputs(params, "base_model")
    if params.model.name == BUILTIN_MODEL and params.model.pretrain_corpus and not pretrain_corpus_tracked():
        print("warning: model.pretrain_corpus is set but not a dep of the base_model stage in dvc.yaml, so edits to "
              "that file will not rerun the pipeline; uncomment its line under base_model.deps")
    summary = resolve_base_model(params.model, params.paths.split, params.paths.base_model)
    write_json(params.paths.model_summary, summary)
    print(f"base_model: {summary['source']} ({summary['model_type']}, {summary['num_hidden_layers']} layers, "
          f"hidden {summary['hidden_size']}, vocab {summary['vocab_size']}, {summary['tokenizer_class']}) "
          f"-> {params.paths.base_model}")

if __name__ == "__main__":
    main()
