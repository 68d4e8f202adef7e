"""tokenize stage: AutoTokenizer of the base model over every split, with datasets.map.

No padding on disk: batches are padded dynamically later. Reports the truncation and [UNK] rates.
"""
from __future__ import annotations

import datasets
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from stages.errors import stage_entry
from stages.outputs import atomic_dir, write_json
from stages.params import load_params
from stages.split import normalise_dataset_state


def tokenize_split(split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int) -> datasets.Dataset:
    def encode(batch: dict) -> dict:
        full = tokenizer(batch["text"], truncation=False)["input_ids"]
        encoded = tokenizer(batch["text"], truncation=True, max_length=max_length)
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        encoded["full_length"] = [len(ids) for ids in full]
        return encoded

    # keep_in_memory: never write cache files into the (DVC-tracked) split directory.
    # A fixed fingerprint: the closure cannot be hashed, and a random one would make reruns differ.
    fingerprint = f"{split._fingerprint}-tokenize-{max_length}"
    return split.map(encode, batched=True, batch_size=1000, keep_in_memory=True, desc="tokenize",
                     new_fingerprint=fingerprint)


def token_report(tokenized: datasets.Dataset, unk_id: int | None) -> dict:
    lengths = tokenized["length"]
    full = tokenized["full_length"]
    truncated = sum(f > n for f, n in zip(full, lengths))
    tokens = sum(lengths)
    unknown = 0 if unk_id is None else sum(ids.count(unk_id) for ids in tokenized["input_ids"])
    return {
        "texts": len(lengths),
        "truncated": truncated,
        "truncated_rate": round(truncated / max(1, len(lengths)), 6),
        "unk_rate": round(unknown / max(1, tokens), 6),
        "mean_tokens": round(tokens / max(1, len(lengths)), 3),
        "max_tokens_before_truncation": max(full) if full else 0,
    }


def tokenize_all(dataset_dict: datasets.DatasetDict, tokenizer: PreTrainedTokenizerBase, max_length: int) -> tuple[datasets.DatasetDict, dict]:
    tokenized, report = {}, {}
    for name, split in dataset_dict.items():
        encoded = tokenize_split(split, tokenizer, max_length)
        report[name] = token_report(encoded, tokenizer.unk_token_id)
        tokenized[name] = encoded.remove_columns(["text", "full_length"])
    return datasets.DatasetDict(tokenized), report


@stage_entry
def main() -> None:
    params = load_params()
    tokenizer = AutoTokenizer.from_pretrained(params.paths.base_model)
    dataset_dict = datasets.load_from_disk(params.paths.split)
    tokenized, report = tokenize_all(dataset_dict, tokenizer, params.tokenize.max_length)
    with atomic_dir(params.paths.tokenized) as tmp:
        tokenized.save_to_disk(str(tmp))
        normalise_dataset_state(tmp)
    write_json(params.paths.tokenize_report, report)
    for name, facts in report.items():
        print(f"tokenize: {name}: {facts['texts']} texts, {facts['mean_tokens']} tokens on average, "
              f"truncated {facts['truncated_rate']:.1%}, [UNK] {facts['unk_rate']:.2%}")


if __name__ == "__main__":
    main()
