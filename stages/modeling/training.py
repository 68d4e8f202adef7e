"""Fine-tune AutoModelForSequenceClassification with the Trainer.

Speed: dynamic padding (DataCollatorWithPadding), length-grouped batches, bf16 autocast where the
hardware has it, fused AdamW, SDPA attention. Quality: early stopping on a chosen metric with the best
model restored at the end, optional class-balanced loss, seeds set before the model exists.
Interruption: the Trainer's own checkpoints, under a key of deps + params, marked complete once saved
and resumed by the next `dvc repro` (checkpointing.py). Several processes: `train.nproc > 1` re-executes
this module under torchrun.
Training curves: DVCLive through transformers' DVCLiveCallback, into `paths.train_log`.

The model is saved with id2label/label2id from the split's ClassLabel, as safetensors, so it loads
anywhere with plain transformers.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import NamedTuple, Optional

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.integrations import DVCLiveCallback
from transformers.utils import logging as hf_logging
from transformers.trainer_pt_utils import (
    LengthGroupedSampler,
    get_length_grouped_indices,
)

from stages.common import threads
from stages.common.codedeps import ROOT, code_files
from stages.common.errors import UserError
from stages.common.hardware import resolve_device, resolve_precision
from stages.common.outputs import atomic_dir
from stages.common.params import PathParams, TrainParams, resolve_metric
from stages.dataset.windows import LongText
from stages.dataset import multi_label
from stages.evaluation.metrics import PREDICTED_CLASSES, make_compute_metrics, positive_index
from stages.evaluation.multi_label import MULTI_LABEL_THRESHOLD, choose_threshold, make_multi_label_compute_metrics, sigmoid
from stages.evaluation.regression import (
    LOWER_IS_BETTER,
    make_regression_compute_metrics,
    write_classification_curve_placeholders,
)
from stages.modeling import checkpointing as ckpt
from stages.modeling.model_dir import drop_load_time_keys

# Trainer log entries that vary from run to run (wall-clock) or repeat a per-epoch value as an aggregate:
# kept out of the DVCLive files so reruns write the same bytes.
logger = logging.getLogger(__name__)

UNSTABLE_LOG_KEYS = ("runtime", "per_second", "total_flos", "train_loss")


SELECTION_SPLIT = "dev"


def label_maps(names: list[str]) -> tuple[dict[int, str], dict[str, int]]:
    return dict(enumerate(names)), {name: i for i, name in enumerate(names)}


def class_weights_for(labels: np.ndarray, n_classes: int, scheme: str = "balanced") -> torch.Tensor:
    """n_samples / (n_classes * count) per class, as sklearn's class_weight='balanced'; with scheme "sqrt", its
    square root: rare classes still count more, but a class of 3 % no longer weighs 11x, which on small data
    let some seeds predict it for nearly a quarter of all texts (docs/results.md, 2026-11-27 session 7)."""
    counts = np.bincount(np.asarray(labels), minlength=n_classes).astype(np.float64)
    if (counts == 0).any():
        missing = [i for i in range(n_classes) if counts[i] == 0]
        raise UserError(f"train.class_weights: {scheme}: classes {missing} have no training rows; "
                        "use class_weights: none or add rows of those classes")
    weights = counts.sum() / (n_classes * counts)
    return torch.tensor(np.sqrt(weights) if scheme == "sqrt" else weights, dtype=torch.float32)


class EpochLengthGroupedSampler(LengthGroupedSampler):
    """transformers' length-grouped order (random mega-batches, each sorted by length), drawn from
    `seed + epoch` instead of the global RNG, so a run resumed mid-training sees the same batches."""

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # called by the Trainer / accelerate at each epoch start
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


class TrainingCurves(DVCLiveCallback):
    """transformers' DVCLive integration, with three project rules:

    - no `dvc.yaml` of its own (the train stage declares the directory once) and no DVC experiment of its own;
    - no `log_params(TrainingArguments)`: `dvc exp show` lists only params.yaml's params;
    - one row per logging step (train and eval logs of the same step share it), x = optimizer step,
      without wall-clock values, and replayed from the Trainer state after a resume, so the files of a
      resumed run equal those of an uninterrupted one.
    """

    def __init__(self, log_dir: str | Path):
        super().__init__(live=None, log_model=False)
        self.log_dir = str(log_dir)
        self._logged: set[tuple[str, int]] = set()

    def setup(self, args, state, model):
        from dvclive import Live

        self._initialized = True
        if state.is_world_process_zero and self.live is None:
            self.live = Live(self.log_dir, dvcyaml=None, save_dvc_exp=False, report=None)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if not self._initialized:
            self.setup(args, state, model)
        if state.is_world_process_zero:
            for entry in state.log_history:  # non-empty only when resuming: earlier steps' rows
                self._log({k: v for k, v in entry.items() if k != "step"}, int(entry["step"]))

    def on_log(self, args, state, control, model=None, logs=None, **kwargs):
        if not self._initialized:
            self.setup(args, state, model)
        if state.is_world_process_zero:
            self._log(logs or {}, state.global_step)

    def _log(self, logs: dict, step: int) -> None:
        from dvclive.plots import Metric
        from dvclive.utils import standardize_metric_name

        self.live.step = step
        for key, value in sorted(logs.items()):  # sorted, as in the Trainer state that a resume replays
            name = standardize_metric_name(key, "dvclive.huggingface")
            if "/" not in name:  # loss, learning_rate, grad_norm, epoch: training-side values
                name = f"train/{name}"
            if any(part in key for part in UNSTABLE_LOG_KEYS) or (name, step) in self._logged:
                continue
            if Metric.could_log(value):
                self.live.log_metric(name, round(float(value), 8))
                self._logged.add((name, step))
        self.live.make_summary()


class SharedCores(TrainerCallback):
    """Concurrent pipeline runs share the cores (stages/common/threads.py): re-check this run's share between
    steps and evaluation batches, from the main thread that runs them."""

    def on_step_begin(self, args, state, control, **kwargs):
        threads.refresh()

    def on_prediction_step(self, args, state, control, **kwargs):
        threads.refresh()


class PatienceOnceLearning(EarlyStoppingCallback):
    """Early stopping that counts only evaluations where the model gives the dev texts more than one class.

    A model trained from scratch can sit at the constant answer (every text the majority class) for several
    epochs before it starts to separate the classes. Counting those epochs stopped JCoLA training seeds 45 and
    47 there at the default patience of 3 (docs/results.md, session 9). A run that leaves the constant answer
    resets the counter at its first better evaluation, so this changes only runs that would have stopped on it.
    Regression and multi-label evaluations carry no class count and follow the plain rule."""

    def on_evaluate(self, args, state, control, metrics, **kwargs):
        if metrics.get(f"eval_{PREDICTED_CLASSES}", 2) <= 1:
            return
        super().on_evaluate(args, state, control, metrics, **kwargs)


class TrainingSpeed(TrainerCallback):
    """Examples per second of this process's trainer.train() (evaluations and checkpoints included), for the
    train stage's end-of-run line. Examples: the epochs trained here (a resumed run counts from where it
    resumed) times the train split's rows, so an epoch is its rows however the ranks share it out."""

    def __init__(self, rows: int):
        self.rows, self.started, self.first_epoch = rows, 0.0, 0.0
        self.examples, self.seconds = 0, 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started, self.first_epoch = time.perf_counter(), state.epoch or 0.0

    def on_train_end(self, args, state, control, **kwargs):
        self.seconds = time.perf_counter() - self.started
        self.examples = round(((state.epoch or 0.0) - self.first_epoch) * self.rows)

    def summary(self) -> str:
        rate = self.examples / self.seconds if self.seconds > 0 else 0.0
        return f"{self.examples} examples in {self.seconds:.1f} s = {rate:.1f} examples/s"


class ProjectTrainer(Trainer):
    """Trainer with class-weighted loss and a resumable length-grouped sampler."""

    def __init__(self, *args, class_weights: Optional[torch.Tensor] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.class_weights = class_weights

    # ---- loss (the Trainer's documented hook for subclasses) ----
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.class_weights is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        if self.class_weights.device != labels.device:  # once: a copy per step would be a host-device sync on GPU
            self.class_weights = self.class_weights.to(labels.device)
        outputs = model(**inputs)
        # Weighted mean (PyTorch's definition); the Trainer divides by the accumulation steps as usual.
        loss = F.cross_entropy(outputs.logits.float(), labels, weight=self.class_weights)
        return (loss, outputs) if return_outputs else loss

    # ---- batches ----
    # Private hook, kept for exact resume (tests/test_train.py pins its signature): the Trainer's own
    # LengthGroupedSampler draws each epoch's order from the global torch RNG when the epoch starts, but a
    # resumed run restores the RNG state saved mid-epoch, so it would replay the interrupted epoch in another
    # order. This sampler draws the order from `data_seed + epoch` (set_epoch), the same after any resume.
    def _get_train_sampler(self, train_dataset=None):
        # self.train_dataset still has the "length" column that _remove_unused_columns drops from `train_dataset`.
        source = self.train_dataset
        if (self.args.train_sampling_strategy == "group_by_length"
                and "length" in getattr(source, "column_names", ())):
            # `[:]`: a list. datasets 5 returns a lazy Column whose every `[i]` is a table lookup (~50 us), and
            # the sampler sorts by `lengths[i]` each epoch: 16 lookups per step (bench/train.py --overhead).
            return EpochLengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                             source["length"][:], self.args.data_seed)
        return super()._get_train_sampler(train_dataset)


def is_regression(split: datasets.Dataset) -> bool:
    """data.task regression: the split stage stores a float label instead of a ClassLabel."""
    return isinstance(split.features["label"], datasets.Value)


def training_arguments(train: TrainParams, output_dir: str, device: Optional[torch.device] = None,
                       regression: bool = False, multi: bool = False) -> TrainingArguments:
    device = device or resolve_device("auto")
    task = "regression" if regression else "multi_label" if multi else "single_label"
    metric = resolve_metric(train.metric_for_best_model, task)
    dtype = resolve_precision(train.precision, device, "train.precision")
    evaluating = train.eval_strategy != "no"
    keep_best = evaluating and train.save_strategy != "no"
    return TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=train.epochs,
        max_steps=train.max_steps,
        learning_rate=train.learning_rate,
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=train.eval_batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps,
        lr_scheduler_type=train.lr_scheduler_type,
        warmup_steps=train.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps in transformers 5
        weight_decay=train.weight_decay,
        seed=train.seed,
        data_seed=train.seed,
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        # One fused kernel over all parameters instead of per-tensor ops: the optimizer step is a large
        # share of a step on CPU with short texts.
        optim="adamw_torch_fused",
        train_sampling_strategy="group_by_length" if train.group_by_length else "random",
        length_column_name="length",
        eval_strategy=train.eval_strategy,
        eval_steps=train.eval_steps,
        save_strategy=train.save_strategy,
        save_steps=train.save_steps,
        save_total_limit=1,  # the latest checkpoint (to resume) and the best one (to restore at the end)
        logging_strategy=train.eval_strategy if evaluating else "epoch",
        logging_steps=train.eval_steps,
        load_best_model_at_end=keep_best,
        metric_for_best_model=metric if evaluating else None,
        greater_is_better=metric != "loss" and metric not in LOWER_IS_BETTER,
        report_to="none",  # DVCLive comes in as the TrainingCurves callback (see its docstring)
        use_cpu=device.type == "cpu",
        dataloader_pin_memory=device.type == "cuda",
        # Sequence classification does not take num_items_in_batch: skip its per-step all-reduce under DDP.
        average_tokens_across_devices=False,
        ddp_find_unused_parameters=False,
        disable_tqdm=False,
    )


def unexpected_load_keys(info: dict, base_prefix: str) -> list[str]:
    """Keys of a from_pretrained loading report that are not the expected new-head ones.

    Expected: a classification head (and pooler) that the base checkpoint lacks, so they start random, and
    pretraining heads (e.g. the masked-LM head `cls.*`) that classification drops. Anything else, such as
    an encoder weight missing from the checkpoint or a size mismatch, is a real problem to show.
    """
    def in_encoder(key: str) -> bool:
        return key.startswith(f"{base_prefix}.") and not key.startswith(f"{base_prefix}.pooler.")

    missing = [f"missing: {k}" for k in sorted(info.get("missing_keys", ())) if in_encoder(k)]
    unused = [f"unused: {k}" for k in sorted(info.get("unexpected_keys", ())) if in_encoder(k)]
    mismatched = [f"size mismatch: {k[0] if isinstance(k, tuple) else k}" for k in info.get("mismatched_keys", ())]
    return missing + unused + mismatched


def load_for_classification(model_dir: str, id2label: dict[int, str], label2id: dict[str, int],
                            problem_type: Optional[str] = None):
    """The base model with a new classification head. transformers prints a LOAD REPORT warning listing the
    head as "MISSING, newly initialized" on every such load: expected here, so it is silenced for this call
    only, and whatever else the report holds is shown as one warning."""
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    # A regression head (problem_type "regression"): one output, mean-squared-error loss (transformers' own).
    head = {"problem_type": problem_type} if problem_type else {}
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            model_dir, num_labels=len(id2label), id2label=id2label, label2id=label2id, attn_implementation="sdpa",
            output_loading_info=True, **head)
    finally:
        hf_logging.set_verbosity(verbosity)
    surprising = unexpected_load_keys(info, model.base_model_prefix)
    if surprising:
        logger.warning("%s: weights that did not load as expected (%d): %s", model_dir, len(surprising),
                       "; ".join(surprising[:20]) + (" ..." if len(surprising) > 20 else ""))
    return model


def start_at_mean(model: torch.nn.Module, mean: float) -> bool:
    """A new regression head predicts about 0 at first: scores far from 0 (a 1-5 rating) then cost many steps of
    MSE before the model learns anything but their level. Its output bias starts at the training mean instead
    (the head is the last one-output Linear layer: `classifier` in BERT, `classifier.out_proj` in RoBERTa).
    False when no such layer is found (the head then starts as transformers made it)."""
    heads = [module for module in model.modules() if isinstance(module, torch.nn.Linear) and module.out_features == 1]
    if not heads or heads[-1].bias is None:
        return False
    with torch.no_grad():
        heads[-1].bias.fill_(mean)
    return True


def build_trainer(tokenized: datasets.DatasetDict, model_dir: str, train: TrainParams, output_dir: str,
                  log_dir: Optional[str] = None, device: Optional[torch.device] = None,
                  positive_label: Optional[str] = None) -> ProjectTrainer:
    """`positive_label` (evaluate.positive_label) is the class whose F1 `metric_for_best_model: f1` selects on,
    the same class the evaluate stage reports."""
    regression = is_regression(tokenized["train"])
    multi = multi_label.is_multi_label(tokenized["train"])  # data.task multi_label: sigmoid per label, BCE loss
    names = (["score"] if regression else multi_label.names_of(tokenized["train"]) if multi
             else tokenized["train"].features["label"].names)
    positive = 0 if regression or multi else positive_index(names, positive_label)
    id2label, label2id = label_maps(names)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    args = training_arguments(train, output_dir, device, regression, multi)
    # Seed before the model exists: the classification head is randomly initialised.
    set_seed(train.seed)
    model = load_for_classification(model_dir, id2label, label2id, "regression" if regression else
                                    "multi_label_classification" if multi else None)
    if regression:
        start_at_mean(model, float(np.mean(tokenized["train"]["label"])))
    if multi:
        tokenized = multi_hot_labels(tokenized, len(names))
    columns = ["input_ids", "attention_mask", "label", "length"] + (
        ["token_type_ids"] if "token_type_ids" in tokenized["train"].column_names else [])
    callbacks = [ckpt.CompleteMarker(), SharedCores()]
    if train.early_stopping_patience > 0:
        callbacks.append(PatienceOnceLearning(early_stopping_patience=train.early_stopping_patience))
    if log_dir is not None:
        callbacks.append(TrainingCurves(log_dir))
    weighted = train.class_weights != "none"
    if regression and weighted:
        logger.warning(f"train.class_weights: {train.class_weights} does not apply to data.task regression (no "
                       "classes): plain mean-squared-error loss")
    if multi and weighted:
        logger.warning(f"train.class_weights: {train.class_weights} does not apply to data.task multi_label (not "
                       "implemented; the dev-chosen threshold offsets rare labels): plain binary cross-entropy loss")
    weights = (class_weights_for(np.asarray(tokenized["train"]["label"]), len(names), train.class_weights)
               if weighted and not regression and not multi else None)
    evaluating = train.eval_strategy != "no"
    return ProjectTrainer(
        model=model,
        args=args,
        train_dataset=tokenized["train"].select_columns(columns),
        # Selection (early stopping, the checkpoint kept) sees the dev split only; valid is scored by evaluate.
        eval_dataset=tokenized[SELECTION_SPLIT].select_columns(columns) if evaluating else None,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=(make_regression_compute_metrics() if regression else make_multi_label_compute_metrics()
                         if multi else make_compute_metrics(len(names), positive)),
        callbacks=callbacks,
        class_weights=weights,
    )


def multi_hot_labels(tokenized: datasets.DatasetDict, n_labels: int) -> datasets.DatasetDict:
    """The labelled splits with `label` as multi-hot float32 vectors: the BCEWithLogits target the collator passes."""
    out = {}
    for name, part in tokenized.items():
        if "label" not in part.column_names:
            out[name] = part
            continue
        hot = multi_label.multi_hot(part["label"][:], n_labels)
        out[name] = part.remove_columns("label").add_column(
            "label", hot.tolist(), feature=datasets.List(datasets.Value("float32")))
    return datasets.DatasetDict(out)


def record_threshold(trainer: Trainer, tokenized: datasets.DatasetDict, metric: str,
                     separator: Optional[str]) -> Optional[float]:
    """data.task multi_label: the decision threshold chosen on dev (stages/evaluation/multi_label.py), recorded
    in the model's config with the label separator, for evaluate, submit and predict. None for other tasks or
    without a dev split (then 0.5 is used)."""
    if not multi_label.is_multi_label(tokenized["train"]):
        return None
    config = trainer.model.config
    config.label_separator = separator or "|"
    threshold = 0.5
    if SELECTION_SPLIT in tokenized and len(tokenized[SELECTION_SPLIT]):
        dev = multi_hot_labels(tokenized, len(config.id2label))[SELECTION_SPLIT]
        columns = [c for c in ("input_ids", "attention_mask", "token_type_ids", "label") if c in dev.column_names]
        output = trainer.predict(dev.select_columns(columns), metric_key_prefix="threshold")
        logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
        threshold = choose_threshold(np.asarray(dev["label"][:]) > 0.5, sigmoid(logits), metric)
    setattr(config, MULTI_LABEL_THRESHOLD, threshold)
    return threshold


def save_model(trainer: Trainer, out_dir: str, long_text: Optional[LongText] = None,
               text_pair_column: Optional[str] = None) -> None:
    """save_pretrained (safetensors), not trainer.save_model: the latter also pickles training_args.bin.
    The tokenizer config loses the keys that record how this process loaded it (HF_HUB_OFFLINE), so the
    output's bytes do not depend on the shell that ran the stage. `long_text` (head_tail, sliding_window) goes
    into config.json for the predict command, as does `text_pair_column` (sentence pairs)."""
    if long_text is not None:
        long_text.record(trainer.model.config)
    if text_pair_column:
        trainer.model.config.text_pair_column = text_pair_column
    with atomic_dir(out_dir) as tmp:
        trainer.model.save_pretrained(str(tmp))
        trainer.processing_class.save_pretrained(str(tmp))
        drop_load_time_keys(tmp)


def run_key(paths: PathParams, train: TrainParams, positive_label: Optional[str] = None) -> str:
    # The code the stage runs, its data deps and its params: any change starts a fresh run directory.
    code = [ROOT / f for f in code_files("stages.train")]
    params = {**train.model_dump(), "evaluate.positive_label": positive_label}
    return ckpt.checkpoint_key([*code, paths.tokenized, paths.base_model], params)


def best_eval(trainer: Trainer) -> Optional[dict]:
    """The eval log entry of the model kept at the end (the best one when keeping the best)."""
    evals = [e for e in trainer.state.log_history if "eval_loss" in e]
    if not evals:
        return None
    best_step = trainer.state.best_global_step if trainer.args.load_best_model_at_end else None
    return next((e for e in evals if e["step"] == best_step), evals[-1])


class TrainResult(NamedTuple):
    kept: Optional[dict]  # the eval log entry of the model kept (None without evaluation)
    speed: TrainingSpeed


def train_and_save(paths: PathParams, train: TrainParams, positive_label: Optional[str] = None,
                   long_text: Optional[LongText] = None, text_pair_column: Optional[str] = None,
                   label_separator: Optional[str] = None) -> TrainResult:
    """Train (resuming a matching interrupted run), save the model to paths.model; returns the kept eval entry
    and the training speed."""
    tokenized = datasets.load_from_disk(paths.tokenized)
    key = run_key(paths, train, positive_label)
    checkpoint_root = Path(paths.train_dir)
    run_dir = checkpoint_root / key
    main_process = int(os.environ.get("RANK", "0")) == 0
    if main_process:  # before the Trainer creates run_dir; other ranks never create or delete anything here
        ckpt.check_train_dir(checkpoint_root)
        ckpt.start_run(checkpoint_root, key)
    trainer = build_trainer(tokenized, paths.base_model, train, str(run_dir), paths.train_log,
                            positive_label=positive_label)
    speed = TrainingSpeed(len(tokenized["train"]))
    trainer.add_callback(speed)
    if trainer.is_world_process_zero():
        ckpt.remove_other_runs(checkpoint_root, keep=key)
        ckpt.remove_incomplete_checkpoints(run_dir)
    trainer.accelerator.wait_for_everyone()
    resume = ckpt.latest_complete_checkpoint(run_dir)
    if resume is not None and trainer.is_world_process_zero():
        print(f"train: resuming from {resume} (same deps and params as the interrupted run)", flush=True)
    trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    kept = best_eval(trainer)
    threshold = record_threshold(trainer, tokenized, train.metric_for_best_model, label_separator)
    if threshold is not None and kept is not None:
        kept = {**kept, "threshold": threshold}
    if trainer.is_world_process_zero():
        save_model(trainer, paths.model, long_text, text_pair_column)
        if is_regression(tokenized["train"]) or multi_label.is_multi_label(tokenized["train"]):
            write_classification_curve_placeholders(paths.train_log)
        # Finished: the checkpoints cannot be resumed any more (DVC caches the result instead).
        ckpt.remove_other_runs(checkpoint_root, keep="")
    trainer.accelerator.wait_for_everyone()
    return TrainResult(kept, speed)
