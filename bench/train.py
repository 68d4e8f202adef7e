"""Training speed (and quality) of the project's train stage against the configuration users usually copy.

Speed, in one process, same data, same BERT-base-shaped model (12 layers, hidden 768, 12 heads, vocab 32,000,
random weights), batch 16, a fixed number of timed optimizer steps after warm-up steps:
  (a) "usual": every batch padded to max_length=77, fp32, random batches (plain Trainer);
  (b) "project": stages.train.build_trainer with the default params (dynamic padding, length-grouped
      batches, bf16 autocast where the hardware has it, fused AdamW, SDPA attention);
  (plain, with --plain) a plain Trainer with dynamic padding + bf16 + group_by_length, for reference.
All see the same token ids (builtin tokenizer recipe trained on the texts, truncated at 77 tokens).

Fairness: length-grouped batches come in mega-batches sorted longest first (the longest batch of all is
moved to the front), so timing some steps after a warm-up would time an arbitrary slice of the length mix.
(b) and plain therefore train one whole epoch over a random sample of 16 * steps rows and are timed from
the first step to the last, warm-up costs included; every row is seen once by each. Every (a) batch has
the same shape (77 tokens), so (a) is timed over --baseline-steps steps after 2 warm-up steps.

Quality (--quality): on chABSA, the builtin default model (base_model stage) fine-tuned with (a) and with
(b) for the same epochs and seeds; prints the valid macro-F1 of both.

Overhead (--overhead): per-step time of the project's Trainer (build_trainer exactly as the train stage
builds it: callbacks, DVCLive curves, class-weighted loss, length-grouped sampler; dev evaluation and
checkpoints off) against a plain Trainer with default TrainingArguments, on a 1-layer, hidden-64 BERT over
rows of random ids of one length: the model's arithmetic is small and the same for both, so what differs is
host work per step. One epoch each, timed from its start, alternating; prints `ratio project / plain`.

Builtin (--builtin): examples/s of the same two on the builtin default model (params.yaml's model.builtin
sizes, random weights) for each of --sets, one epoch of 16 * --builtin-steps rows.

    python -m bench.train                       # speed on JCoLA and chABSA (../shared/data), else the sample
    python -m bench.train --device cuda         # on a GPU
    python -m bench.train --quality --no-speed  # the quality comparison only
    python -m bench.train --overhead --repeats 5 --threads 1
    python -m bench.train --builtin --sets jcola chabsa toxic --repeats 3
    python -m bench.train --profile 30 --device cuda  # torch.profiler tables of (b) and the plain Trainer

A cheaper CPU dropout mask (HashDropout) and gradient clipping folded into fused AdamW used to be part of (b).
Measured on the default builtin model (commit 8882662, `python -m bench.train --builtin --repeats 4
--pretrain-steps 12 --threads 1`: on vs off interleaved in one process, JCoLA / chABSA / ja_toxic), they gained
0.97-1.07x examples per CPU-second in fine-tuning and pretraining, below the 10 % that would pay for their code,
and were removed.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers import logging as hf_logging

from stages.common.hardware import resolve_device  # noqa: E402
from stages.common.params import TrainParams  # noqa: E402
from stages.modeling.builtin import save_tokenizer, segment, train_wordpiece_vocab  # noqa: E402
from stages.modeling.training import build_trainer  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
SETS = {"jcola": "jcola_acceptability", "chabsa": "chabsa_sentiment", "toxic": "ja_toxic_inspection"}
PAD_TO = 77
BATCH = 16


def dataset_csv(name: str) -> Path:
    path = SHARED / SETS[name] / "data.csv"
    return path if path.is_file() else REPO / "data/sample/train.csv"


def sync() -> None:
    """Wait for queued GPU work: on CUDA the host runs ahead of the device, so a clock read without it would stop
    before the last steps' kernels ran."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class StepTimer(TrainerCallback):
    """Wall time of optimizer steps warmup+1 .. warmup+steps (warmup 0: from the start of the first epoch, so
    the sampler's order and the first batch, fetched before the first step begins, are counted). The GPU is
    synchronised at both ends; `marks` holds the host clock at each step's end, for the per-step spread."""

    def __init__(self, warmup: int, steps: int):
        self.warmup, self.steps, self.start, self.seconds = warmup, steps, None, None
        self.start_cpu, self.cpu_seconds = None, None  # this process's CPU time over the same steps
        self.marks: list[float] = []

    def on_epoch_begin(self, args, state, control, **kwargs):
        if self.warmup == 0 and self.start is None:
            sync()
            self.start, self.start_cpu = time.perf_counter(), time.process_time()

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.warmup and self.warmup > 0:
            sync()
            self.start, self.start_cpu = time.perf_counter(), time.process_time()
        elif state.global_step == self.warmup + self.steps:
            sync()
            self.seconds = time.perf_counter() - self.start
            self.cpu_seconds = time.process_time() - self.start_cpu
        if self.start is not None and self.warmup < state.global_step <= self.warmup + self.steps:
            self.marks.append(time.perf_counter())

    def spread(self) -> str:
        """First timed step (start-up costs land there) and the median of the others, in ms."""
        steps = np.diff([self.start, *self.marks]) * 1000
        return f"first step {steps[0]:.0f} ms, median step {np.median(steps[1:]):.1f} ms" if len(steps) > 1 else ""


def tokenized_set(csv: Path, workdir: Path, limit: int) -> tuple[datasets.DatasetDict, Path]:
    frame = pd.read_csv(csv).dropna()
    frame = frame.sample(n=min(limit, len(frame)), random_state=0)
    names = sorted(frame["label"].astype(str).unique())
    tok_dir = workdir / "tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = save_tokenizer(train_wordpiece_vocab(segment(frame["text"].tolist()), 32000), tok_dir, 512)
    encoded = tokenizer(frame["text"].tolist(), truncation=True, max_length=PAD_TO)
    rows = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"], "length": [len(i) for i in encoded["input_ids"]],
            "label": [names.index(str(v)) for v in frame["label"]]}
    features = datasets.Features({"input_ids": datasets.Sequence(datasets.Value("int32")),
                                  "attention_mask": datasets.Sequence(datasets.Value("int8")),
                                  "length": datasets.Value("int32"), "label": datasets.ClassLabel(names=names)})
    data = datasets.Dataset.from_dict(rows, features=features)
    return datasets.DatasetDict({"train": data, "valid": data.select(range(min(64, len(data))))}), tok_dir


def base_shaped_model_dir(tok_dir: Path, n_labels: int) -> Path:
    """Random BERT-base-shaped weights saved next to the tokenizer, so build_trainer loads it like any model."""
    config = BertConfig(vocab_size=32000, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                        intermediate_size=3072, num_labels=n_labels)
    set_seed(0)
    BertForSequenceClassification(config).save_pretrained(str(tok_dir))
    return tok_dir


def usual_args(out: str, max_steps: int, device: torch.device, bf16: bool, grouped: bool, **extra) -> TrainingArguments:
    settings = dict(output_dir=out, max_steps=max_steps, per_device_train_batch_size=BATCH,
                    learning_rate=5e-5, bf16=bf16, use_cpu=device.type == "cpu", report_to="none",
                    save_strategy="no", eval_strategy="no", logging_strategy="no", disable_tqdm=True,
                    train_sampling_strategy="group_by_length" if grouped else "random", seed=42)
    return TrainingArguments(**{**settings, **extra})


def time_usual(data, model_dir, tokenizer, steps, warmup, device, padded: bool, bf16: bool, grouped: bool) -> StepTimer:
    set_seed(42)
    model = BertForSequenceClassification.from_pretrained(str(model_dir), attn_implementation="sdpa")
    collator = (DataCollatorWithPadding(tokenizer, padding="max_length", max_length=PAD_TO) if padded
                else DataCollatorWithPadding(tokenizer))
    timer = StepTimer(warmup, steps)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(model=model, args=usual_args(out, warmup + steps, device, bf16, grouped),
                          train_dataset=data["train"].remove_columns([] if grouped else ["length"]),
                          data_collator=collator, processing_class=tokenizer, callbacks=[timer])
        trainer.train()
    return timer


def time_project(data, model_dir, steps, warmup, device, **overrides) -> StepTimer:
    train = TrainParams.from_project(**{**dict(max_steps=warmup + steps, batch_size=BATCH, eval_strategy="no",
                                               save_strategy="no", early_stopping_patience=0, learning_rate=5e-5),
                                        **overrides})
    timer = StepTimer(warmup, steps)
    with tempfile.TemporaryDirectory() as out:
        trainer = build_trainer(data, str(model_dir), train, out, device=device)
        trainer.add_callback(timer)
        trainer.args.disable_tqdm = True
        trainer.train()
    return timer


# ---- per-step host overhead (--overhead) and the builtin model (--builtin) -------------------------------

def project_run(data, model_dir: Path, steps: int, warmup: int, device: torch.device, **overrides) -> StepTimer:
    """The train stage's Trainer as train_and_save builds it: build_trainer with params.yaml's train section
    (class-weighted loss, length-grouped sampler, fused AdamW, precision auto, tqdm bar, COMPLETE-marker and
    SharedCores callbacks, DVCLive curves into a log folder), registered in a core-sharing registry of its own
    (so SharedCores does its real re-checks without changing the share of other processes on this machine).
    Only max_steps and the dev-set evaluation / checkpoints are overridden: those run after the last timed
    step and a plain Trainer has no counterpart of them."""
    from stages.common import threads

    train = TrainParams.from_project(**{**dict(max_steps=warmup + steps, eval_strategy="no", save_strategy="no",
                                               early_stopping_patience=0), **overrides})
    timer = StepTimer(warmup, steps)
    with tempfile.TemporaryDirectory() as out:
        registry = Path(out) / "running"
        registry.mkdir()
        share = threads.CoreShare(registry, fixed=None)
        share.register()
        threads.ACTIVE = share
        try:
            share.apply()
            trainer = build_trainer(data, str(model_dir), train, f"{out}/run", log_dir=f"{out}/curves", device=device)
            trainer.add_callback(timer)
            trainer.train()
        finally:
            threads.ACTIVE = None
            share.unregister()
            share.restore()
    return timer


def project_precision(device: torch.device) -> str:
    from stages.common.hardware import resolve_precision

    dtype = resolve_precision(TrainParams.from_project().precision, device)
    return "fp32" if dtype is None else str(dtype).removeprefix("torch.")


def plain_run(data, model_dir: Path, steps: int, warmup: int, device: torch.device) -> StepTimer:
    """A plain Trainer with default TrainingArguments (fp32, random batches, the default optimizer, logging
    every 500 steps), the same rows and DataCollatorWithPadding. disable_tqdm=False is the default at
    transformers' default verbosity (this script lowers it to hide load reports), so both show a bar."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    set_seed(42)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(model_dir), num_labels=data["train"].features["label"].num_classes)
    timer = StepTimer(warmup, steps)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, max_steps=warmup + steps, per_device_train_batch_size=BATCH,
                                 use_cpu=device.type == "cpu", disable_tqdm=False)
        trainer = Trainer(model=model, args=args, train_dataset=data["train"], processing_class=tokenizer,
                          data_collator=DataCollatorWithPadding(tokenizer), callbacks=[timer])
        trainer.train()
    return timer


def random_id_set(tokenizer, rows: int, length: int, n_classes: int, seed: int = 0) -> datasets.DatasetDict:
    """`rows` sequences of `length` random ids ([CLS] ... [SEP]): every batch has the same shape, so the two
    configurations do the same arithmetic whatever order their samplers pick."""
    rng = np.random.default_rng(seed)
    body = rng.integers(len(tokenizer.all_special_ids), len(tokenizer), size=(rows, length - 2))
    ids = [[tokenizer.cls_token_id, *row, tokenizer.sep_token_id] for row in body.tolist()]
    names = [f"class{i}" for i in range(n_classes)]
    features = datasets.Features({"input_ids": datasets.Sequence(datasets.Value("int32")),
                                  "attention_mask": datasets.Sequence(datasets.Value("int8")),
                                  "length": datasets.Value("int32"), "label": datasets.ClassLabel(names=names)})
    data = datasets.Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * length] * rows,
                                       "length": [length] * rows,
                                       "label": rng.integers(0, n_classes, size=rows).tolist()}, features=features)
    return datasets.DatasetDict({"train": data})


def overhead(args, device: torch.device) -> None:
    """Per-step time of the project's Trainer against a plain one on a 1-layer, hidden-64 BERT, where the
    model's arithmetic is negligible: what differs is host work per step."""
    rows = BATCH * args.overhead_steps  # one epoch, timed from its start (StepTimer)
    with tempfile.TemporaryDirectory() as work:
        tok_dir = Path(work) / "tiny"
        tok_dir.mkdir()
        texts = pd.read_csv(REPO / "data/sample/train.csv")["text"].dropna().astype(str).tolist()
        tokenizer = save_tokenizer(train_wordpiece_vocab(segment(texts), 2000), tok_dir, 512)
        config = BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=128, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                            num_labels=3)
        set_seed(0)
        BertForSequenceClassification(config).save_pretrained(str(tok_dir))
        data = random_id_set(tokenizer, rows, args.overhead_length, 3)
        print(f"overhead: BERT 1 layer, hidden 64, {args.overhead_steps} timed steps of {BATCH} x "
              f"{args.overhead_length} random ids = one epoch, device {device}, "
              f"{torch.get_num_threads()} threads, {args.repeats} alternating repeats; project precision "
              f"{project_precision(device)}, plain fp32", flush=True)
        ms = {"project": [], "plain": []}
        for repeat in range(args.repeats):
            for name, run in (("project", project_run), ("plain", plain_run)):
                timer = run(data, tok_dir, args.overhead_steps, 0, device)
                ms[name].append(1000 * timer.seconds / args.overhead_steps)
            print(f"  run {repeat + 1}: project {ms['project'][-1]:.2f} ms/step, plain {ms['plain'][-1]:.2f} ms/step",
                  flush=True)
        project, plain = float(np.median(ms["project"])), float(np.median(ms["plain"]))
        print(f"overhead: project {project:.2f} ms/step, plain {plain:.2f} ms/step (medians): "
              f"ratio project / plain = {project / plain:.2f}x", flush=True)


def warm_up(configs: dict, device: torch.device) -> None:
    """On a GPU, one untimed run of each configuration first: CUDA loads each kernel on its first use and the
    libraries pick kernels per new shape and dtype, a one-off cost per process (seconds) that a long training
    pays once, but that in a one-epoch timing lands on whichever configuration happens to run first."""
    if device.type == "cuda":
        for run in configs.values():
            run()


def builtin(args, device: torch.device) -> None:
    """examples/s of the project's default against a plain Trainer on the builtin default model (params.yaml's
    model.builtin sizes, random weights: pretraining changes the values, not the speed), one epoch each over
    the same 16 * steps rows tokenized by its tokenizer at tokenize.max_length, timed from the first step."""
    from stages.common.params import BuiltinModelParams, TokenizeParams
    from stages.modeling.builtin import build_builtin

    size, max_length = BuiltinModelParams.from_project(), TokenizeParams.from_project().max_length
    for name in args.sets:
        csv = dataset_csv(name)
        frame = pd.read_csv(csv).dropna(subset=["text", "label"])
        steps = min(args.builtin_steps, len(frame) // BATCH)
        frame = frame.sample(n=BATCH * steps, random_state=0)
        with tempfile.TemporaryDirectory() as work:
            model_dir = Path(work) / "base_model"
            model_dir.mkdir()
            build_builtin(frame["text"].astype(str).tolist(), model_dir, size, steps=0)
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
            encoded = tokenizer(frame["text"].astype(str).tolist(), truncation=True, max_length=max_length)
            names = sorted(frame["label"].astype(str).unique())
            features = datasets.Features({"input_ids": datasets.Sequence(datasets.Value("int32")),
                                          "attention_mask": datasets.Sequence(datasets.Value("int8")),
                                          "length": datasets.Value("int32"),
                                          "label": datasets.ClassLabel(names=names)})
            data = datasets.DatasetDict({"train": datasets.Dataset.from_dict(
                {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                 "length": [len(i) for i in encoded["input_ids"]],
                 "label": [names.index(str(v)) for v in frame["label"]]}, features=features)})
            lengths = np.asarray(data["train"]["length"])
            print(f"builtin {name}: {csv} ({len(lengths)} rows, mean {lengths.mean():.1f} tokens); model "
                  f"{size.num_hidden_layers} layers, hidden {size.hidden_size}; one epoch of {steps} steps of {BATCH}, "
                  f"device {device}, {torch.get_num_threads()} threads; project precision {project_precision(device)}, "
                  f"plain fp32", flush=True)
            configs = {"project": lambda: project_run(data, model_dir, steps, 0, device)}
            if args.fp32:
                configs["project_fp32"] = lambda: project_run(data, model_dir, steps, 0, device, precision="fp32")
            configs["plain"] = lambda: plain_run(data, model_dir, steps, 0, device)
            warm_up(configs, device)
            runs = {key: [] for key in configs}
            for repeat in range(args.repeats):
                for key, run in configs.items():
                    runs[key].append(steps * BATCH / run().seconds)
                print(f"  run {repeat + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in runs.items()) + " examples/s",
                      flush=True)
            if args.fp32:
                print(f"builtin {name}: project with train.precision fp32 {float(np.median(runs['project_fp32'])):.1f} "
                      "examples/s", flush=True)
            project, plain = float(np.median(runs["project"])), float(np.median(runs["plain"]))
            print(f"builtin {name}: project {project:.1f} examples/s, plain {plain:.1f} examples/s: "
                  f"ratio project / plain = {project / plain:.2f}x", flush=True)


def speed(args, device: torch.device) -> None:
    warmup, rows = 0, BATCH * args.steps  # one whole epoch, timed from its first step (module docstring)
    for name in args.sets:
        csv = dataset_csv(name)
        with tempfile.TemporaryDirectory() as work:
            data, tok_dir = tokenized_set(csv, Path(work), rows)
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
            model_dir = base_shaped_model_dir(tok_dir, data["train"].features["label"].num_classes)
            lengths = np.asarray(data["train"]["length"])
            print(f"{name}: {csv} ({len(lengths)} rows, mean {lengths.mean():.1f} tokens, "
                  f"{(lengths >= PAD_TO).mean():.0%} at the {PAD_TO} cap); {args.steps} timed steps of {BATCH} "
                  f"= one epoch ((a): {args.baseline_steps} after 2), "
                  f"device {device}, {torch.get_num_threads()} threads", flush=True)
            configs = {"a": lambda: time_usual(data, model_dir, tokenizer, args.baseline_steps, 2, device, True,
                                               False, False),
                       "b": lambda: time_project(data, model_dir, args.steps, warmup, device)}
            if args.fp32:
                configs["b_fp32"] = lambda: time_project(data, model_dir, args.steps, warmup, device, precision="fp32")
            if args.plain:
                configs["plain"] = lambda: time_usual(data, model_dir, tokenizer, args.steps, warmup, device, False,
                                                      device.type in ("cuda", "cpu"), True)
            warm_up(configs, device)
            runs, spreads = {key: [] for key in configs}, {}
            for repeat in range(args.repeats):  # interleaved, so drifting machine load hits all alike
                timers = {key: run() for key, run in configs.items()}
                for key, timer in timers.items():
                    runs[key].append(timer.steps * BATCH / timer.seconds)
                    spreads[key] = timer.spread()
                print(f"  run {repeat + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in runs.items() if v)
                      + " examples/s (" + "; ".join(f"{k}: {v}" for k, v in spreads.items()) + ")", flush=True)
            usual, project = float(np.median(runs["a"])), float(np.median(runs["b"]))
            how = f"median of {args.repeats}" if args.repeats > 1 else "one run"
            print(f"  (a) padded to {PAD_TO}, fp32, random batches: {usual:.2f} examples/s ({how})", flush=True)
            print(f"  (b) project default:                   {project:.2f} examples/s", flush=True)
            if args.fp32:
                print(f"  (b) with train.precision fp32:         {float(np.median(runs['b_fp32'])):.2f} examples/s",
                      flush=True)
            if args.plain:
                plain = float(np.median(runs["plain"]))
                print(f"  plain Trainer, dynamic pad + bf16 + group_by_length: {plain:.2f} examples/s "
                      f"(ratio {plain / usual:.2f}x; (b)/plain {project / plain:.2f}x)", flush=True)
            print(f"{name}: ratio (b)/(a) = {project / usual:.2f}x", flush=True)


def profile(args, device: torch.device) -> None:
    """Where a step's time goes: torch.profiler over one epoch of --profile steps of (b) and of the plain
    Trainer (dynamic padding, group_by_length, bf16 on a GPU) on the first of --sets, after one unprofiled
    warm-up run of each; the top operators by self host time and by device time. On an H100, 40 steps of the
    BERT-base shape took over 80 s to tabulate (2026-11-27): give it a few minutes."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sort = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    with tempfile.TemporaryDirectory() as work:
        data, tok_dir = tokenized_set(dataset_csv(args.sets[0]), Path(work), BATCH * args.profile)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
        model_dir = base_shaped_model_dir(tok_dir, data["train"].features["label"].num_classes)
        for name, run in (("(b) project", lambda: time_project(data, model_dir, args.profile, 0, device)),
                          ("plain", lambda: time_usual(data, model_dir, tokenizer, args.profile, 0, device, False,
                                                       device.type == "cuda", True))):
            run()
            with torch_profile(activities=activities) as prof:
                timer = run()
            print(f"profile {name}, {args.sets[0]}, {args.profile} steps: {timer.steps * BATCH / timer.seconds:.1f} "
                  f"examples/s ({timer.spread()})", flush=True)
            for key in ("self_cpu_time_total", sort) if sort != "self_cpu_time_total" else (sort,):
                print(prof.key_averages().table(sort_by=key, row_limit=18, max_name_column_width=60), flush=True)


def same_loss_as_project(train: TrainParams, labels, n_classes: int):
    """(a) gets the project's loss (class-weighted when the default says so): (a) and (b) then differ only
    in padding, precision, batch order and the CPU kernels, which is what the comparison is about."""
    if train.class_weights == "none":
        return None
    from stages.modeling.training import class_weights_for

    weights = class_weights_for(np.asarray(labels), n_classes, train.class_weights)

    def loss(outputs, labels, num_items_in_batch=None):
        return torch.nn.functional.cross_entropy(outputs.logits.float(), labels, weight=weights.to(labels.device))

    return loss


def quality(args) -> None:
    """chABSA with the builtin default model and params.yaml as committed: (a) vs (b), same seeds, epochs,
    evaluation and early stopping; valid macro-F1 of the model each keeps."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        EarlyStoppingCallback,
    )

    from stages.common.params import load_params
    from stages.dataset.splitting import make_splits, save_split
    from stages.dataset.tokenizing import tokenize_all
    from stages.evaluation.metrics import make_compute_metrics
    from stages.modeling.base import resolve_base_model

    csv = dataset_csv("chabsa")
    committed = load_params(REPO / "params.yaml")
    defaults = committed.train
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        data_params = committed.data.model_copy(update={"train_csv": str(csv)})
        dataset_dict, summary, _ = make_splits(data_params, committed.split)
        save_split(dataset_dict, summary, work / "split")
        resolve_base_model(committed.model, str(work / "split"), str(work / "base_model"))
        tokenizer = AutoTokenizer.from_pretrained(str(work / "base_model"))
        tokenized, _ = tokenize_all(datasets.load_from_disk(str(work / "split")), tokenizer,
                                    committed.tokenize.max_length)
        names = tokenized["train"].features["label"].names
        columns = ["input_ids", "attention_mask", "label"]
        cut = tokenized.map(lambda row: {k: row[k][:PAD_TO] for k in columns[:2]})
        results = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            # (a): tokens cut and padded to 77, fp32, random batches; the project's schedule, epochs, seed,
            # loss, per-epoch evaluation and early stopping with the best model kept.
            set_seed(seed)
            model = AutoModelForSequenceClassification.from_pretrained(
                str(work / "base_model"), num_labels=len(names))
            a_args = usual_args(str(work / "a"), -1, torch.device("cpu"), False, False,
                                eval_strategy="epoch", save_strategy="epoch", save_total_limit=1,
                                load_best_model_at_end=True, metric_for_best_model="macro_f1",
                                greater_is_better=True, save_only_model=True)
            for key in ("num_train_epochs", "learning_rate", "weight_decay", "lr_scheduler_type"):
                setattr(a_args, key, getattr(defaults, {"num_train_epochs": "epochs"}.get(key, key)))
            a_args.warmup_steps = defaults.warmup_ratio
            a_args.seed = a_args.data_seed = seed
            usual = Trainer(model=model, args=a_args, train_dataset=cut["train"].select_columns(columns),
                            eval_dataset=cut["valid"].select_columns(columns), processing_class=tokenizer,
                            data_collator=DataCollatorWithPadding(tokenizer, padding="max_length", max_length=PAD_TO),
                            compute_metrics=make_compute_metrics(len(names), 1),
                            compute_loss_func=same_loss_as_project(defaults, tokenized["train"]["label"], len(names)),
                            callbacks=[EarlyStoppingCallback(defaults.early_stopping_patience)]
                            if defaults.early_stopping_patience else None)
            started = time.perf_counter()
            usual.train()
            seconds_a = time.perf_counter() - started
            f1_a = usual.evaluate()["eval_macro_f1"]
            # (b): the train stage exactly as `dvc repro` runs it with the committed params.
            project = build_trainer(tokenized, str(work / "base_model"), defaults.model_copy(update={"seed": seed}),
                                    str(work / "b"))
            started = time.perf_counter()
            project.train()
            seconds_b = time.perf_counter() - started
            f1_b = project.evaluate()["eval_macro_f1"]
            results.append((f1_a, f1_b))
            print(f"quality seed {seed}: chABSA valid macro-F1 (a) {f1_a:.4f}  (b) {f1_b:.4f}  "
                  f"difference {f1_b - f1_a:+.4f}; training (a) {seconds_a:.0f} s, (b) {seconds_b:.0f} s", flush=True)
        mean_a, mean_b = np.mean(results, axis=0)
        print(f"quality: chABSA valid macro-F1 over {args.seeds} seed(s): (a) {mean_a:.4f}  (b) {mean_b:.4f}  "
              f"difference {mean_b - mean_a:+.4f} (params.yaml: {defaults.epochs:g} epochs, early stopping "
              f"patience {defaults.early_stopping_patience}, class_weights {defaults.class_weights}; "
              f"model {committed.model.name})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="timed optimizer steps of (b) and plain: one epoch of 16 * steps rows")
    parser.add_argument("--baseline-steps", type=int, default=6, help="timed optimizer steps of (a), after 2")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repeats; medians are reported")
    parser.add_argument("--sets", nargs="+", default=["jcola", "chabsa"], choices=list(SETS))
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's choice); 1 is steadier on a shared machine")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--plain", action="store_true", help="also time a plain Trainer with dynamic pad + bf16")
    parser.add_argument("--quality", action="store_true", help="also compare chABSA macro-F1 of (a) and (b)")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed part")
    parser.add_argument("--overhead", action="store_true",
                        help="per-step host overhead: project vs plain Trainer on a 1-layer, hidden-64 BERT")
    parser.add_argument("--overhead-steps", type=int, default=200,
                        help="steps of --overhead: one epoch of 16 * steps rows, timed from its start")
    parser.add_argument("--overhead-length", type=int, default=32, help="tokens per row of --overhead")
    parser.add_argument("--builtin", action="store_true",
                        help="examples/s, project default vs plain Trainer, on the builtin default model (--sets)")
    parser.add_argument("--builtin-steps", type=int, default=25,
                        help="steps of --builtin: one epoch of 16 * steps rows (fewer if the set is smaller)")
    parser.add_argument("--fp32", action="store_true",
                        help="also time (b) with train.precision fp32 (separates autocast's cost from the rest)")
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS",
                        help="profile STEPS steps of (b) and of the plain Trainer (torch.profiler tables)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds for --quality (mean reported)")
    parser.add_argument("--first-seed", type=int, default=42, help="first of the --quality seeds")
    args = parser.parse_args()
    hf_logging.set_verbosity_error()
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.overhead:
        overhead(args, device)
    if args.builtin:
        builtin(args, device)
    if args.profile:
        profile(args, device)
    if not (args.no_speed or args.overhead or args.builtin or args.profile):  # the other modes run alone unless asked
        speed(args, device)
    if args.quality:
        quality(args)


if __name__ == "__main__":
    main()
