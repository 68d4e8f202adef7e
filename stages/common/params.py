"""Load and validate params.yaml once, at load time.

params.yaml holds every value: it is the one place defaults live. This schema declares each key's type,
allowed range and help text, and no second set of defaults: a key missing from params.yaml is an error,
not a silent change of behaviour. Unknown keys (typos), bad values and non-finite numbers become one-line
`UserError`s that name the key and say what is allowed. Code that needs params without a params.yaml of
its own (tests, benchmarks) starts from the project's file with `project_params(overrides)`.
"""
from __future__ import annotations

import copy
import difflib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from stages.common.errors import UserError

PARAMS_FILE = "params.yaml"
PROJECT_PARAMS = Path(__file__).resolve().parents[2] / PARAMS_FILE  # the file shipped with the project
BUILTIN_MODEL = "builtin"


class Section(BaseModel):
    # extra="forbid" turns a typo into an error instead of a silently ignored knob.
    # allow_inf_nan=False: `.inf` or `.nan` in YAML is a float, but no knob here can work with one.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @classmethod
    def from_project(cls, **overrides: Any):
        """This section as the project's params.yaml sets it, with `overrides` applied (tests, benchmarks)."""
        raw: Any = project_raw()
        for part in _section_path(cls):
            raw = raw[part]
        return cls.model_validate(deep_update(raw, overrides))


class DataParams(Section):
    train_csv: str = Field(description="Labelled CSV/TSV of training texts.")
    test_csv: Optional[str] = Field(description="Optional held-out CSV/TSV (labelled or not).")
    text_column: str = Field(description="Column holding the texts.")
    text_pair_column: Optional[str] = Field(
        description="Column holding the second text of a sentence pair (entailment, similarity, query-document "
        "relevance); null = one text per row. With a pair, the model reads `[CLS] text [SEP] text_pair [SEP]` and "
        "duplicates / conflicts are judged on the (text, text_pair) pair.")
    task: Literal["single_label", "regression", "multi_label"] = Field(
        description="single_label: one class per row (data.label_column holds class names). regression: "
        "data.label_column holds a number per row (e.g. a similarity score); the model predicts that number, "
        "scored by Pearson, Spearman, MSE and MAE. multi_label: any number of labels per row (none included), "
        "in data.label_column joined by data.label_separator, or as 0/1 columns (data.label_columns).")
    label_column: str = Field(description="Column holding the labels.")
    id_column: str = Field(description="Id column of an unlabelled test CSV (row number if absent).")
    label_names: Optional[list[str]] = Field(
        description="Class names in index order; default: the sorted distinct labels.")
    label_separator: str = Field(
        min_length=1, description="data.task multi_label: the separator of the labels in one data.label_column "
        "cell (`anger|joy`; an empty cell is a row with no label).")
    label_columns: Optional[list[str]] = Field(
        description="data.task multi_label: one 0/1 column per label instead of data.label_column (the column "
        "names are the label names); null = labels joined in data.label_column.")
    encoding: str = Field(description="'auto' (detect UTF-8/BOM/CP932) or a Python codec name.")
    sep: str = Field(description="Field separator; 'auto' = tab for .tsv/.tab, else comma.")
    on_conflict: Literal["error", "drop", "keep"] = Field(
        description="Same text with different labels: stop, drop those rows, or keep them.")
    on_empty_text: Literal["drop", "error"] = Field(
        description="Empty or whitespace-only texts: drop them (counted) or stop.")
    on_rare_class: Literal["error", "drop"] = Field(
        description="A class with fewer than 2 rows cannot be split stratified: stop, or drop its rows.")

    @field_validator("label_names")
    @classmethod
    def _distinct_names(cls, names: Optional[list[str]]) -> Optional[list[str]]:
        if names is None:
            return None
        names = [str(n) for n in names]
        if len(set(names)) != len(names):
            raise ValueError(f"label names must be distinct, got {names}")
        if len(names) < 2:
            raise ValueError(f"need at least 2 label names, got {names}")
        return names


def fold_ids_for(folds: int) -> list[int]:
    """split.fold_ids that goes with split.folds: no cv_train stage for 1 (the single split only)."""
    return list(range(1, folds + 1)) if folds > 1 else []


class SplitParams(Section):
    valid_size: float = Field(description="Fraction of the train CSV held out for validation, in (0, 1).")
    dev_size: float = Field(description="Fraction of the training rows held out as the dev split: early stopping and the kept "
                            "checkpoint are chosen on dev, so the valid split is only ever scored. In (0, 1).")
    dev_min_per_class: int = Field(ge=1, description="At least this many dev rows per class (never a class's last "
                                   "training row), so a rare class counts in model selection.")
    seed: int = Field(description="Seed of the stratified split (and of the cross-validation folds).")
    folds: int = Field(ge=1, description="1: the single train/dev/valid split only. k > 1: also stratified k-fold "
                       "cross-validation over all labelled rows (stages cv_split, cv_train@1..k, cv_evaluate): "
                       "out-of-fold metrics in paths.cv_eval, and the submission averages the k fold models.")
    fold_ids: list[int] = Field(description="The fold numbers 1..folds, one cv_train stage each (DVC's foreach "
                                "needs the list and cannot count): [] for folds 1, [1, 2, 3] for folds 3.")

    @field_validator("fold_ids")
    @classmethod
    def _fold_list(cls, value: list[int], info: ValidationInfo) -> list[int]:
        folds = info.data.get("folds")
        if folds is None:  # folds itself is invalid: its own error is reported
            return value
        expected = fold_ids_for(folds)
        if value != expected:
            raise ValueError(f"must be {expected} for split.folds {folds} (DVC makes one cv_train stage per "
                             f"entry); write fold_ids: {expected} under split in params.yaml")
        return value

    @field_validator("valid_size", "dev_size")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0.0 < value < 1.0:
            raise ValueError(f"must be a fraction strictly between 0 and 1, got {value}")
        return value


class BuiltinModelParams(Section):
    vocab_size: int = Field(ge=200, description="WordPiece vocabulary size (upper bound).")
    hidden_size: int = Field(ge=8, description="Transformer width.")
    num_hidden_layers: int = Field(ge=1, description="Transformer depth.")
    num_attention_heads: int = Field(ge=1, description="Attention heads (must divide hidden_size).")
    intermediate_size: int = Field(ge=8, description="Feed-forward width.")
    max_position_embeddings: int = Field(ge=16, description="Longest sequence the model accepts.")
    pretrain_batch_size: int = Field(ge=1, description="Masked-LM pretraining batch size.")
    pretrain_learning_rate: float = Field(gt=0, description="Masked-LM pretraining peak LR.")
    mlm_probability: float = Field(gt=0, lt=1, description="Share of tokens (masking: token) or of MeCab words "
                                   "(masking: whole_word) masked in pretraining.")
    masking: Literal["whole_word", "token"] = Field(
        description="whole_word: all WordPiece pieces of a MeCab word are masked together (as in "
        "bert-base-japanese-v3); token: each piece on its own. A fresh mask every step either way.")
    pretrain_lr_schedule: Literal["linear", "cosine"] = Field(
        description="Decay of the pretraining LR to 0 over model.pretrain_steps, after the warmup.")
    pretrain_warmup_ratio: float = Field(ge=0, lt=1, description="Share of the pretraining steps with linear LR warmup.")
    cls_objective: Literal["bag_of_words", "none"] = Field(
        description="bag_of_words: in pretraining, the [CLS] vector also predicts the word pieces of its text (through "
        "the masked-LM head), so the vector the classifier reads summarises the text from the first fine-tuning step; "
        "none: masked LM only.")
    pretrain_group_by_length: bool = Field(
        description="Pretraining batches of texts of similar length (shuffled groups of 50 batches sorted by length, "
        "then the batches shuffled): less padding, the same texts per pass. false: plain random batches.")
    word_vectors: Literal["chive", "none"] = Field(
        description="chive: start the word embeddings from chiVe vectors (Works Applications, Apache-2.0; read "
        "from the ja-ginza 5.3.0 wheel: `pip install --no-deps ja-ginza==5.3.0`), projected to hidden_size; "
        "none: random initialisation.")
    seed: int = Field(description="Seed of vocabulary/weight initialisation and pretraining.")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> "BuiltinModelParams":
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must divide hidden_size ({self.hidden_size})")
        return self


class ModelParams(Section):
    name: str = Field(description="'builtin' (offline default), a hub id, or a local directory.")
    revision: Optional[str] = Field(description="Hub revision (branch, tag or commit) for a hub id.")
    trust_remote_code: bool = Field(description="Allow model code from the hub (off: security).")
    pretrain_steps: int = Field(ge=0, description="Masked-LM steps for the builtin model (its pretraining budget: "
                                "steps x model.builtin.pretrain_batch_size texts).")
    pretrain_test_texts: bool = Field(
        description="Also pretrain the builtin model on the texts of data.test_csv (never its labels). The valid and "
        "dev texts are never used.")
    pretrain_corpus: Optional[str] = Field(
        description="Optional UTF-8 text file of extra unlabelled texts for the builtin model's pretraining, one text "
        "per line (blank lines skipped; lines equal to a valid or dev text are left out). Uncomment its line under "
        "base_model.deps in dvc.yaml so edits to it rerun the pipeline.")
    builtin: BuiltinModelParams = Field(description="Architecture and pretraining of the builtin model (used when name is builtin).")


class TokenizeParams(Section):
    max_length: int = Field(ge=8, description="Longer texts are truncated to this many tokens (see long_text).")
    long_text: Literal["truncate", "head_tail", "sliding_window"] = Field(
        description="Texts longer than max_length. truncate: their first tokens. head_tail: their first "
        "head_tokens and last tokens in one sequence. sliding_window: overlapping windows, one row each; training "
        "gives every window its document's label, and evaluate, submit and predict pool the windows' "
        "probabilities into one row per document (window_pooling). Recorded in the model's config.json.")
    stride: int = Field(ge=0, description="sliding_window: tokens shared by consecutive windows; each window starts "
                        "(max_length - special tokens - stride) tokens after the previous one. Less than max_length "
                        "minus the special tokens.")
    head_tokens: Optional[int] = Field(
        ge=0, description="head_tail: tokens kept from the start of a long text, the rest of max_length (less the "
        "special tokens) from its end; null: a quarter of them (Sun et al. 2019: the first 128 and last 382 at 512).")
    window_pooling: Literal["mean", "max"] = Field(
        description="sliding_window: a document's probabilities from its windows': mean, or each class's max "
        "renormalised to sum to 1.")

    @model_validator(mode="after")
    def _fits_max_length(self) -> "TokenizeParams":
        # The tokenize stage checks the exact bound, max_length less the tokenizer's special tokens. Each bound
        # binds only under the strategy that reads it: truncate with a short max_length keeps the default stride.
        if self.long_text == "sliding_window" and self.stride >= self.max_length:
            raise ValueError(f"stride ({self.stride}) must be less than max_length ({self.max_length}) minus the "
                             f"special tokens")
        if self.long_text == "head_tail" and self.head_tokens is not None and self.head_tokens > self.max_length:
            raise ValueError(f"head_tokens ({self.head_tokens}) must be at most max_length ({self.max_length}) "
                             f"minus the special tokens")
        return self


Precision = Literal["auto", "fp32", "bf16", "fp16"]
Device = Literal["auto", "cpu", "cuda"]


class EmbedParams(Section):
    pooling: Literal["cls", "mean", "pooler"] = Field(description="Sentence vector from the encoder.")
    normalize: bool = Field(description="L2-normalise the vectors.")
    batch_size: int = Field(ge=1, description="At most this many rows (texts) per forward pass.")
    max_tokens: int = Field(
        ge=64, description="At most this many tokens per forward pass; for BERT models also the fixed "
        "row block of every matrix multiply (what makes a text's vector independent of its batch).")
    precision: Precision = Field(description="auto: bf16 on AMX / AVX512-BF16 CPUs, fp32 on GPUs and other CPUs.")
    device: Device = Field(description="auto: CUDA when present, else CPU.")
    cache: bool = Field(description="Reuse vectors of texts embedded before (per-text cache); "
                        "`python -m stages.embed --no-cache` turns it off for one run.")
    cache_dir: str = Field(description="Directory of the vector cache (outside DVC outputs, git-ignored).")
    cache_max_mb: int = Field(ge=1, description="Size bound of the vector cache; least recently used vectors go first.")


def _scheduler_names() -> list[str]:
    from transformers import SchedulerType

    return [s.value for s in SchedulerType]


# train.learning_rate: auto. The builtin model is small and pretrained briefly: at 1e-4 it was still underfitting
# after 5 epochs on chABSA (valid macro-F1 0.69; 5e-4: 0.71), but at 5e-4 JCoLA's training never left the
# uniform prediction (seeds 42 and 43; docs/results.md) and 1e-3 did the same on chABSA: 2e-4 in between. A
# pretrained BERT-base needs the usual 5e-5 (a builtin-sized LR would wreck its pretrained weights).
AUTO_LEARNING_RATE = {"builtin": 2e-4, "pretrained": 5e-5}


class TrainParams(Section):
    epochs: float = Field(gt=0, description="Training epochs.")
    max_steps: int = Field(description="If > 0, stop after this many optimizer steps (overrides epochs).")
    learning_rate: Literal["auto"] | PositiveFloat = Field(
        description=f"Peak learning rate; auto: {AUTO_LEARNING_RATE['builtin']:g} for the builtin model, "
        f"{AUTO_LEARNING_RATE['pretrained']:g} for a pretrained one (hub id or local directory).")
    batch_size: int = Field(ge=1, description="Training batch size per device.")
    eval_batch_size: int = Field(ge=1, description="Evaluation batch size per device.")
    gradient_accumulation_steps: int = Field(ge=1, description="Batches per optimizer step.")
    lr_scheduler_type: str = Field(description="A transformers.SchedulerType value.")
    warmup_ratio: float = Field(ge=0, lt=1, description="Share of steps with linear warmup.")
    weight_decay: float = Field(ge=0, description="AdamW weight decay.")
    seed: int = Field(description="Seed set before the classification head is created.")
    precision: Precision = Field(description="auto: bf16 where supported, fp16 on older GPUs, else fp32.")
    group_by_length: bool = Field(
        description="Batches of similar lengths (random mega-batches sorted by length): less padding.")
    eval_strategy: Literal["epoch", "steps", "no"] = Field(description="When to score the dev split (the selection split; valid is never seen in training).")
    eval_steps: int = Field(ge=1, description="Optimizer steps between evaluations when eval_strategy is steps.")
    save_strategy: Literal["epoch", "steps", "no"] = Field(
        description="When to write a resumable checkpoint; must equal eval_strategy unless 'no'.")
    save_steps: int = Field(ge=1, description="Optimizer steps between checkpoints (a multiple of eval_steps).")
    early_stopping_patience: int = Field(
        ge=0, description="Stop after this many evaluations without improvement; 0 = never stop early. "
        "Evaluations where the model gives every dev text the same class do not count.")
    metric_for_best_model: Literal[
        "auto", "macro_f1", "accuracy", "f1", "weighted_f1", "macro_precision", "macro_recall", "precision", "recall",
        "pearson", "spearman", "mse", "mae", "micro_f1", "samples_f1", "loss"] = Field(
        description="Dev-split metric for early stopping and the model kept at the end; auto: macro_f1 for "
        "data.task single_label, spearman for regression, micro_f1 for multi_label. mse, mae and loss are "
        "minimised, the others maximised.")
    class_weights: Literal["none", "balanced", "sqrt"] = Field(
        description="balanced: cross-entropy weighted by n / (classes * count) for imbalanced data; sqrt: the "
        "square root of those weights (rare classes count, less strongly).")
    nproc: int = Field(ge=1, description="Processes (DDP under torchrun): CPU processes or GPUs on this node.")

    @field_validator("max_steps")
    @classmethod
    def _steps(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError(f"must be -1 (train for `epochs`) or a positive number of steps, got {value}")
        return value

    @model_validator(mode="after")
    def _consistent_schedule(self) -> "TrainParams":
        if self.early_stopping_patience > 0 and self.eval_strategy == "no":
            raise ValueError("early_stopping_patience > 0 needs eval_strategy epoch or steps "
                             "(or set early_stopping_patience: 0)")
        if self.early_stopping_patience > 0 and self.save_strategy == "no":
            raise ValueError("early_stopping_patience > 0 needs save_strategy equal to eval_strategy: "
                             "the best model is restored from its checkpoint")
        if self.eval_strategy != "no" and self.save_strategy != "no":
            if self.save_strategy != self.eval_strategy:
                raise ValueError(f"save_strategy ({self.save_strategy}) must equal eval_strategy "
                                 f"({self.eval_strategy}) so the best model has a checkpoint, or be 'no'")
            if self.eval_strategy == "steps" and self.save_steps % self.eval_steps:
                raise ValueError(f"save_steps ({self.save_steps}) must be a multiple of eval_steps ({self.eval_steps})")
        return self

    @field_validator("lr_scheduler_type")
    @classmethod
    def _known_scheduler(cls, value: str) -> str:
        allowed = _scheduler_names()
        if value not in allowed:
            raise ValueError(f"unknown scheduler {value!r}; allowed: {', '.join(allowed)}")
        return value


    @field_validator("learning_rate", mode="before")
    @classmethod
    def _auto_or_positive(cls, value: Any) -> Any:
        if value == "auto":
            return value
        if isinstance(value, str):  # YAML reads `1e-4` (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf"):
            return float(value)
        raise ValueError("must be auto or a finite number > 0 (e.g. 0.0005)")

    def for_model(self, model_name: str) -> "TrainParams":
        """This section with `learning_rate: auto` replaced by the number for `model_name` (model.name)."""
        if self.learning_rate != "auto":
            return self
        kind = "builtin" if model_name == "builtin" else "pretrained"
        return self.model_copy(update={"learning_rate": AUTO_LEARNING_RATE[kind]})

    @classmethod
    def from_project(cls, **overrides: Any) -> "TrainParams":
        raw = project_raw()
        train = super().from_project(**overrides).for_model(raw["model"]["name"])
        return train.model_copy(update={"metric_for_best_model": resolve_metric(train.metric_for_best_model,
                                                                                raw["data"]["task"])})

CLASSIFICATION_METRICS = ("macro_f1", "accuracy", "f1", "weighted_f1", "macro_precision", "macro_recall",
                          "precision", "recall")
REGRESSION_METRICS = ("pearson", "spearman", "mse", "mae")
MULTI_LABEL_METRICS = ("micro_f1", "macro_f1", "samples_f1")
AUTO_METRIC = {"single_label": "macro_f1", "regression": "spearman", "multi_label": "micro_f1"}
TASK_METRICS = {"single_label": CLASSIFICATION_METRICS, "regression": REGRESSION_METRICS,
                "multi_label": MULTI_LABEL_METRICS}


def resolve_metric(metric: str, task: str) -> str:
    """train.metric_for_best_model with `auto` replaced for data.task; a metric of the other kind of task refused."""
    if metric == "auto":
        return AUTO_METRIC[task]
    allowed = TASK_METRICS[task]
    if metric != "loss" and metric not in allowed:
        raise ValueError(f"train.metric_for_best_model: {metric} does not apply to data.task {task}; use auto, loss "
                         f"or one of {', '.join(allowed)}")
    return metric


class EvaluateParams(Section):
    positive_label: Optional[str] = Field(
        description="Positive class of a binary task (F1, ROC-AUC, AP); default: the second label name.")
    calibration_bins: int = Field(ge=2, le=100, description="Equal-width confidence bins of the ECE and reliability diagram.")
    embedding_map: Literal["pca", "tsne"] = Field(description="2-D projection of the embed stage's vectors.")
    map_max_points: int = Field(ge=10, description="Points drawn on the embedding map (a fixed random subset beyond it).")
    report_errors: int = Field(ge=0, description="Most confident wrong predictions listed in the report.")
    blend_tfidf: bool = Field(
        description="Also score w x fine-tuned + (1 - w) x TF-IDF probabilities as `blend.*`, with w chosen on the dev "
        "split (never valid); the fine-tuned model's own scores are unchanged.")
    seed: int = Field(description="Seed of the map's subset and t-SNE.")


class ProbeParams(Section):
    max_iter: int = Field(ge=1, description="Iterations of the logistic regression on all train vectors.")


class MtebParams(Section):
    n_experiments: int = Field(ge=1, description="Repetitions of the few-shot probe (MTEB default 10).")
    samples_per_label: int = Field(ge=1, description="Train vectors drawn per class in each repetition (MTEB default 8).")
    max_iter: int = Field(ge=1, description="Logistic regression iterations (MTEB default 100).")


class KnnParams(Section):
    k: int = Field(ge=1, description="Neighbours (cosine distance) voting on each valid text.")


class TfidfParams(Section):
    word_ngram_max: int = Field(ge=1, le=5, description="Longest MeCab word n-gram (1 = words only).")
    char_ngram_max: int = Field(ge=0, le=6, description="Longest character n-gram (0 = no character features).")
    c: float = Field(gt=0, description="Inverse regularisation strength C of the logistic regression.")
    max_iter: int = Field(ge=1, description="Logistic regression iterations.")


class BaselinesParams(Section):
    seed: int = Field(description="Seed of the few-shot sampling and the logistic regressions.")
    class_weight: Literal["none", "balanced"] = Field(
        description="Class weights of the probe and TF-IDF logistic regressions (sklearn's class_weight; the MTEB "
        "protocol stays unweighted). balanced is TF-IDF's stronger setting on imbalanced data: the reference the "
        "fine-tuned model is judged against.")
    probe: ProbeParams = Field(description="Linear probe on the embed stage's vectors.")
    mteb: MtebParams = Field(description="MTEB classification protocol on the vectors.")
    knn: KnnParams = Field(description="k-nearest-neighbours on the vectors.")
    tfidf: TfidfParams = Field(description="TF-IDF + logistic regression on MeCab words and characters.")


LICENSE_ID = re.compile(r"[a-z0-9][a-z0-9.+-]*")
# The Hub's repo ids: `name` (the token owner's namespace) or `owner/name`; letters, digits, `-`, `_`, `.`.
HUB_REPO_ID = re.compile(r"(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*")


class PackageParams(Section):
    intended_use: Optional[str] = Field(
        description="'Intended use' text of the model card (data/release/README.md); null = a generic text.")
    limitations: Optional[str] = Field(
        description="'Limitations' text of the model card; null = a generic text.")
    license: str = Field(
        description="The model card's `license:`, a Hugging Face Hub license id (apache-2.0, mit, cc-by-sa-4.0, ...); "
                    "`other` when the training data's terms are not settled.")
    dataset_name: Optional[str] = Field(
        description="The training data's name in the model card (`datasets:` and model-index), e.g. its Hub dataset "
                    "id; null = the file name of data.train_csv.")
    onnx: bool = Field(
        description="Also write <paths.release>/onnx/model.onnx (inputs as the release's tokenizer returns them, "
                    "dynamic batch and sequence axes; outputs logits and probabilities) and onnx/check.json, after "
                    "checking ONNX Runtime's probabilities against PyTorch's (max abs diff <= 1e-4). Needs "
                    "`pip install '.[onnx]'`.")
    push_to_hub: bool = Field(
        description="After writing the release, upload it to the Hugging Face Hub repo package.hub_repo_id "
                    "(created if missing). Token: HF_TOKEN or `hf auth login`. A side effect DVC does not track: "
                    "`dvc repro -f package` pushes again.")
    hub_repo_id: Optional[str] = Field(
        description="Hub model repo to push to, `owner/name` (or `name` in the token owner's namespace); "
                    "required when push_to_hub is true.")
    hub_private: bool = Field(description="Create the Hub repo as private (an existing repo keeps its visibility).")

    @field_validator("hub_repo_id")
    @classmethod
    def _hub_repo_id(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and (not HUB_REPO_ID.fullmatch(value) or len(value) > 96):
            raise ValueError("not a Hub repo id; use owner/name (letters, digits, '-', '_', '.')")
        return value

    @model_validator(mode="after")
    def _push_needs_repo(self) -> "PackageParams":
        if self.push_to_hub and self.hub_repo_id is None:
            raise ValueError("push_to_hub is true but hub_repo_id is null; set package.hub_repo_id to the Hub repo "
                             "to push to (owner/name), or set package.push_to_hub: false")
        return self

    @field_validator("license")
    @classmethod
    def _license_id(cls, value: str) -> str:
        if not LICENSE_ID.fullmatch(value):
            raise ValueError(f"{value!r} is not a license id; use a lowercase Hugging Face Hub id such as "
                             "apache-2.0, mit or cc-by-4.0, or other")
        return value


class PathParams(Section):
    split: str = Field(description="split stage: DatasetDict of train/valid (/test) plus summary.json.")
    base_model: str = Field(description="base_model stage: the base model directory.")
    model_summary: str = Field(description="base_model stage: JSON facts about the base model.")
    tokenized: str = Field(description="tokenize stage: token ids of every split.")
    tokenize_report: str = Field(description="tokenize stage: truncation and [UNK] rates (JSON).")
    embeddings: str = Field(description="embed stage: one .npy of vectors per split.")
    model: str = Field(description="train stage: the fine-tuned model directory.")
    train_dir: str = Field(description="train stage: resumable checkpoints (not a DVC output), one folder per deps+params key.")
    train_log: str = Field(description="train stage: DVCLive training curves.")
    eval: str = Field(description="evaluate stage: metrics, plots, predictions and report.md.")
    submission: str = Field(description="submit stage: predictions for an unlabelled data.test_csv (header only without one).")
    release: str = Field(description="package stage: the model with its model card (the dvc.yaml artifact).")
    baselines: str = Field(description="baselines stage: a folder with metrics.json (scores) and predictions.csv (TF-IDF's label per text).")
    cv: str = Field(description="cv_split and cv_train stages (split.folds > 1): folds.json (rows per fold) and one "
                    "fold_<i> folder per fold (held-out and test probabilities, training curves).")
    cv_eval: str = Field(description="cv_evaluate stage: out-of-fold metrics.json, per_fold.json and oof_predictions.csv.")
    cv_train_dir: str = Field(description="cv_train stages: resumable checkpoints (not a DVC output), one folder per fold.")


class Params(Section):
    data: DataParams = Field(description="The input CSV/TSV files and how to read them.")
    split: SplitParams = Field(description="The stratified train/valid split.")
    model: ModelParams = Field(description="The base model.")
    tokenize: TokenizeParams = Field(description="Tokenization.")
    embed: EmbedParams = Field(description="Sentence vectors of the embed stage.")
    train: TrainParams = Field(description="Fine-tuning with the Trainer.")
    evaluate: EvaluateParams = Field(description="Scoring and the report.")
    package: PackageParams = Field(description="The release directory: its model card, the optional ONNX "
                                   "export and the optional Hub push.")
    baselines: BaselinesParams = Field(description="Classical and frozen-embedding baselines scored on the same split.")
    paths: PathParams = Field(description="Where each stage writes its outputs (inside the project).")

    @model_validator(mode="after")
    def _resolve_auto_learning_rate(self) -> "Params":
        self.train = self.train.for_model(self.model.name)
        return self

    @model_validator(mode="after")
    def _resolve_task(self) -> "Params":
        metric = resolve_metric(self.train.metric_for_best_model, self.data.task)
        self.train = self.train.model_copy(update={"metric_for_best_model": metric})
        if self.split.folds > 1 and (self.data.task != "single_label" or self.data.text_pair_column):
            raise ValueError("split.folds > 1 (cross-validation) supports single-text single_label tasks only; "
                             "set split.folds: 1 and split.fold_ids: [] for sentence pairs, regression or multi_label")
        if self.tokenize.long_text != "truncate" and self.data.text_pair_column:
            raise ValueError(f"tokenize.long_text {self.tokenize.long_text} cuts one text per row; with "
                             f"data.text_pair_column the pair is truncated (longest text first): set "
                             f"tokenize.long_text: truncate")
        if self.data.task != "multi_label" and self.data.label_columns:
            raise ValueError("data.label_columns (one 0/1 column per label) needs data.task: multi_label; set it, "
                             "or set data.label_columns: null")
        if self.tokenize.long_text == "sliding_window" and self.data.task == "multi_label":
            raise ValueError("tokenize.long_text sliding_window pools probabilities that sum to 1 over windows; with "
                             "data.task multi_label use head_tail or truncate")
        if self.tokenize.long_text == "sliding_window" and self.data.task == "regression":
            raise ValueError("tokenize.long_text sliding_window pools class probabilities over windows; with "
                             "data.task regression use head_tail or truncate")
        return self

    @model_validator(mode="after")
    def _windows_without_folds(self) -> "Params":
        if self.tokenize.long_text == "sliding_window" and self.split.folds > 1:
            raise ValueError("tokenize.long_text sliding_window makes several rows per document, which the k-fold "
                             "stages do not pool: use head_tail or truncate with split.folds > 1, or set split.folds 1")
        return self


def _fields_at(loc: tuple) -> list[str]:
    """Valid keys of the section that `loc` (without its last element) points to."""
    model: Any = Params
    for part in loc[:-1]:
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        model = field.annotation
    return list(model.model_fields) if hasattr(model, "model_fields") else []


def _describe(error: dict, source: str) -> str:
    loc = tuple(str(p) for p in error["loc"])
    key = ".".join(loc)
    if error["type"] == "missing":
        return (f"{source}: missing key '{key}'; every key must be set (the project's params.yaml lists each "
                f"one with its documented value: copy it from there)")
    if error["type"] == "finite_number":
        return f"{source}: {key}: must be a finite number (got {error.get('input')!r})"
    if error["type"] == "extra_forbidden":
        valid = _fields_at(loc)
        close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.5)
        hint = f"did you mean '{'.'.join(loc[:-1] + (close[0],))}'?" if close else ""
        section = ".".join(loc[:-1]) or "top level"
        return (f"{source}: unknown key '{key}' {hint} "
                f"(valid keys in {section}: {', '.join(valid)})")
    message = error["msg"].removeprefix("Value error, ")
    if isinstance(error.get("input"), dict):  # a check across several keys of a section (or sections)
        return f"{source}: {key}: {message}" if key else f"{source}: {message}"
    return f"{source}: {key}: {message} (got {error.get('input')!r})"


def parse_params(raw: Any, source: str = PARAMS_FILE) -> Params:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a mapping of sections (data, split, model, ...), got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise UserError(_describe(err.errors()[0], source)) from None


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: params file not found; run from the project root (where dvc.yaml is)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}:{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    return parse_params(raw, str(path))


def deep_update(base: Any, update: dict) -> Any:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_update(merged[key], value)
        else:
            merged[key] = value
    return merged


@lru_cache(maxsize=1)
def _project_raw_cached() -> str:
    return PROJECT_PARAMS.read_text(encoding="utf-8")


def project_raw() -> dict:
    """The project's params.yaml as a plain (fresh) dict."""
    return yaml.safe_load(_project_raw_cached())


def project_params(overrides: Optional[dict] = None) -> Params:
    """The project's params.yaml with nested `overrides` applied, validated."""
    return parse_params(deep_update(project_raw(), overrides or {}), str(PROJECT_PARAMS))


def _section_path(section: type) -> tuple[str, ...]:
    """Where a section class sits in params.yaml, e.g. BuiltinModelParams -> ('model', 'builtin')."""
    def walk(model: type, prefix: tuple[str, ...]):
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, Section):
                if annotation is section:
                    return prefix + (name,)
                found = walk(annotation, prefix + (name,))
                if found:
                    return found
        return None

    found = walk(Params, ())
    if found is None:
        raise TypeError(f"{section.__name__} is not a section of Params")
    return found


# --- Params reference (docs/params.md) -------------------------------------------------------------------
# Generated from this schema (types, ranges, descriptions) and params.yaml (values), so the reference has no
# hand-written copy of either; tests/test_docs.py fails when docs/params.md differs from this output.

def _type_text(annotation: Any) -> str:
    import typing

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{value}`" for value in args)
    if origin is typing.Union and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        return f"{_type_text(rest[0])} or `null`"
    if origin is typing.Union:
        return " or ".join(_type_text(arg) for arg in args)
    if origin is typing.Annotated:  # e.g. PositiveFloat: the type with its bounds
        return " ".join([_type_text(args[0]), *_bounds(args[1:])])
    if origin is list:
        return f"list of {_type_text(args[0])}"
    return getattr(annotation, "__name__", str(annotation))


def _bounds(metadata: Any) -> list[str]:
    """'>= 1', '< 1', ... for the annotated-types constraints (Ge, Gt, Le, Lt) in `metadata`."""
    symbols = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    return [f"{symbol} {getattr(item, name)}" for item in metadata
            for name, symbol in symbols.items() if getattr(item, name, None) is not None]


def _range_text(field: Any) -> str:
    return ", ".join(_bounds(field.metadata))


def _value_text(value: Any) -> str:
    import json

    return f"`{json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def params_reference_markdown() -> str:
    """docs/params.md: every key of params.yaml with its type, allowed range, value and meaning."""
    raw = project_raw()
    lines = ["# Params reference", "",
             "Generated by `python -m stages.common.params --markdown > docs/params.md` from the schema in",
             "`stages/common/params.py` (types, ranges, meanings) and `params.yaml` (values); do not edit by hand.",
             "Every key must be set in `params.yaml`: there are no hidden defaults. Change a value there, or for one",
             "experiment with `dvc exp run -S key=value`.", ""]

    def rows(model: type, values: dict, prefix: str):
        for name, field in model.model_fields.items():
            annotation = field.annotation
            key = f"{prefix}{name}"
            if isinstance(annotation, type) and issubclass(annotation, Section):
                yield from rows(annotation, values[name], f"{key}.")
                continue
            yield (f"| `{key}` | {_type_text(annotation)} | {_range_text(field)} | {_value_text(values[name])} "
                   f"| {_cell(field.description or '')} |")

    for name, field in Params.model_fields.items():
        lines += [f"## {name}", "", _cell(field.description or ""), "",
                  "| key | type | range | value in params.yaml | meaning |", "|---|---|---|---|---|"]
        lines += list(rows(field.annotation, raw[name], f"{name}."))
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    cli = argparse.ArgumentParser(prog="python -m stages.common.params",
                                  description="Validate params.yaml, or print the params reference.")
    cli.add_argument("--markdown", action="store_true", help="print docs/params.md (the reference) to stdout")
    if cli.parse_args().markdown:
        print(params_reference_markdown(), end="")
    else:
        load_params()
        print(f"{PARAMS_FILE}: valid")
