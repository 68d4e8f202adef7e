"""train stage: fine-tune AutoModelForSequenceClassification with the Trainer.

Dynamic padding (DataCollatorWithPadding), length-grouped batches, bf16 where the hardware has it.
The model is saved with id2label/label2id from the split's ClassLabel, as safetensors, so it loads
anywhere with plain transformers.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import datasets
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                          TrainingArguments, set_seed)

from stages.errors import stage_entry
from stages.hardware import resolve_device, resolve_precision
from stages.metrics import make_compute_metrics
from stages.outputs import atomic_dir
from stages.params import TrainParams, load_params


def label_maps(names: list[str]) -> tuple[dict[int, str], dict[str, int]]:
    return dict(enumerate(names)), {name: i for i, name in enumerate(names)}


def training_arguments(train: TrainParams, output_dir: str) -> TrainingArguments:
    device = resolve_device("auto")
    dtype = resolve_precision(train.precision, device, "train.precision")
    return TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=train.epochs,
        max_steps=train.max_steps,
        learning_rate=train.learning_rate,
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=train.eval_batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps,
        lr_scheduler_type=train.lr_scheduler_type,
        warmup_steps=train.warmup_ratio,
        weight_decay=train.weight_decay,
        seed=train.seed,
        data_seed=train.seed,
        bf16=dtype is not None and str(dtype) == "torch.bfloat16",
        fp16=dtype is not None and str(dtype) == "torch.float16",
        train_sampling_strategy="group_by_length",
        eval_strategy="epoch",
        save_strategy="no",
        logging_strategy="epoch",
        report_to="none",
        use_cpu=device.type == "cpu",
        disable_tqdm=False,
    )


def build_trainer(tokenized: datasets.DatasetDict, model_dir: str, train: TrainParams, output_dir: str) -> Trainer:
    names = tokenized["train"].features["label"].names
    id2label, label2id = label_maps(names)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    # Seed before the model exists: the classification head is randomly initialised.
    set_seed(train.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=len(names), id2label=id2label, label2id=label2id)
    columns = ["input_ids", "attention_mask", "label", "length"] + (
        ["token_type_ids"] if "token_type_ids" in tokenized["train"].column_names else [])
    return Trainer(
        model=model,
        args=training_arguments(train, output_dir),
        train_dataset=tokenized["train"].select_columns(columns),
        eval_dataset=tokenized["valid"].select_columns(columns),
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=make_compute_metrics(len(names)),
    )


def save_model(trainer: Trainer, out_dir: str) -> None:
    """save_pretrained (safetensors), not trainer.save_model: the latter also pickles training_args.bin."""
    with atomic_dir(out_dir) as tmp:
        trainer.model.save_pretrained(str(tmp), safe_serialization=True)
        trainer.processing_class.save_pretrained(str(tmp))


@stage_entry
def main() -> None:
    params = load_params()
    tokenized = datasets.load_from_disk(params.paths.tokenized)
    work_dir = Path(params.paths.train_dir)
    shutil.rmtree(work_dir, ignore_errors=True)
    trainer = build_trainer(tokenized, params.paths.base_model, params.train, str(work_dir))
    trainer.train()
    save_model(trainer, params.paths.model)
    final = trainer.evaluate()
    print(f"train: valid macro-F1 {final['eval_macro_f1']:.4f}, accuracy {final['eval_accuracy']:.4f} "
          f"-> {params.paths.model}")


if __name__ == "__main__":
    main()
