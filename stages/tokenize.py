"""tokenize stage: the base model's tokenizer over every split (no padding on disk), with a truncation report."""
from __future__ import annotations

import datasets
from transformers import AutoTokenizer

from stages.common.errors import stage_entry
from stages.common.outputs import write_json
from stages.common.params import BUILTIN_MODEL, load_params
from stages.common.paths import check_outputs
from stages.common.threads import shares_cores
from stages.dataset.japanese import preparation_notes
from stages.dataset.storage import save_dataset
from stages.dataset.tokenizing import check_max_length, tokenize_all
from stages.dataset.windows import LongText


@stage_entry
@shares_cores
def main() -> None:
    params = load_params()
    check_outputs(params, "tokenize")
    check_max_length(params.tokenize.max_length, params.paths.base_model, params.model.name == BUILTIN_MODEL)
    tokenizer = AutoTokenizer.from_pretrained(params.paths.base_model)
    dataset_dict = datasets.load_from_disk(params.paths.split)
    tokenized, report = tokenize_all(dataset_dict, tokenizer, params.tokenize.max_length,
                                     LongText.from_params(params.tokenize))
    save_dataset(tokenized, params.paths.tokenized)
    write_json(params.paths.tokenize_report, report)
    for name, facts in report.items():
        for note in preparation_notes(facts, name):
            print(f"note: {note}")
        print(f"tokenize: {name}: {facts['texts']} texts, {facts['mean_tokens']} tokens on average, "
              f"truncated {facts['truncated_rate']:.1%}, [UNK] {facts['unk_rate']:.2%}")
        if "strategy" in facts:
            print(f"tokenize: {name}: {facts['long_documents']} texts longer than {params.tokenize.max_length} tokens "
                  f"({facts['strategy']}): {facts['windows']} rows")


if __name__ == "__main__":
    main()
