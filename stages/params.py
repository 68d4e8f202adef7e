"""Load and validate params.yaml once, at load time.

Every knob of the pipeline is declared here with its type, default and a help text. Unknown keys
(typos) and bad values become one-line `UserError`s that name the key and list what is allowed.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stages.errors import UserError

PARAMS_FILE = "params.yaml"
BUILTIN_MODEL = "builtin"


class Section(BaseModel):
    # extra="forbid" turns a typo into an error instead of a silently ignored knob.
    model_config = ConfigDict(extra="forbid", validate_default=True)


class DataParams(Section):
    train_csv: str = Field("data/sample/train.csv", description="Labelled CSV/TSV of training texts.")
    test_csv: Optional[str] = Field(None, description="Optional held-out CSV/TSV (labelled or not).")
    text_column: str = Field("text", description="Column holding the texts.")
    label_column: str = Field("label", description="Column holding the labels.")
    id_column: str = Field("id", description="Id column of an unlabelled test CSV (row number if absent).")
    label_names: Optional[list[str]] = Field(
        None, description="Class names in index order; default: the sorted distinct labels.")
    encoding: str = Field("auto", description="'auto' (detect UTF-8/BOM/CP932) or a Python codec name.")
    sep: str = Field("auto", description="Field separator; 'auto' = tab for .tsv/.tab, else comma.")
    on_conflict: Literal["error", "drop", "keep"] = Field(
        "error", description="Same text with different labels: stop, drop those rows, or keep them.")
    on_empty_text: Literal["drop", "error"] = Field(
        "drop", description="Empty or whitespace-only texts: drop them (counted) or stop.")
    on_rare_class: Literal["error", "drop"] = Field(
        "error", description="A class with fewer than 2 rows cannot be split stratified: stop, or drop its rows.")

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


class SplitParams(Section):
    valid_size: float = Field(0.2, description="Fraction of the train CSV held out for validation, in (0, 1).")
    seed: int = Field(42, description="Seed of the stratified split.")

    @field_validator("valid_size")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0.0 < value < 1.0:
            raise ValueError(f"must be a fraction strictly between 0 and 1, got {value}")
        return value


class BuiltinModelParams(Section):
    vocab_size: int = Field(8000, ge=200, description="WordPiece vocabulary size (upper bound).")
    hidden_size: int = Field(256, ge=8, description="Transformer width.")
    num_hidden_layers: int = Field(4, ge=1, description="Transformer depth.")
    num_attention_heads: int = Field(4, ge=1, description="Attention heads (must divide hidden_size).")
    intermediate_size: int = Field(1024, ge=8, description="Feed-forward width.")
    max_position_embeddings: int = Field(512, ge=16, description="Longest sequence the model accepts.")
    pretrain_batch_size: int = Field(32, ge=1, description="Masked-LM pretraining batch size.")
    pretrain_learning_rate: float = Field(1e-3, gt=0, description="Masked-LM pretraining peak LR.")
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="Share of tokens masked in pretraining.")
    seed: int = Field(42, description="Seed of vocabulary/weight initialisation and pretraining.")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> "BuiltinModelParams":
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must divide hidden_size ({self.hidden_size})")
        return self


class ModelParams(Section):
    name: str = Field(BUILTIN_MODEL, description="'builtin' (offline default), a hub id, or a local directory.")
    revision: Optional[str] = Field(None, description="Hub revision (branch, tag or commit) for a hub id.")
    trust_remote_code: bool = Field(False, description="Allow model code from the hub (off: security).")
    pretrain_steps: int = Field(300, ge=0, description="Masked-LM steps for the builtin model.")
    builtin: BuiltinModelParams = Field(default_factory=BuiltinModelParams)


class TokenizeParams(Section):
    max_length: int = Field(128, ge=8, description="Longer texts are truncated to this many tokens.")


Precision = Literal["auto", "fp32", "bf16", "fp16"]
Device = Literal["auto", "cpu", "cuda"]


class EmbedParams(Section):
    pooling: Literal["cls", "mean", "pooler"] = Field("cls", description="Sentence vector from the encoder.")
    normalize: bool = Field(False, description="L2-normalise the vectors.")
    batch_size: int = Field(256, ge=1, description="At most this many rows (texts) per forward pass.")
    max_tokens: int = Field(
        2048, ge=64, description="At most this many tokens per forward pass; for BERT models also the fixed "
        "row block of every matrix multiply (what makes a text's vector independent of its batch).")
    precision: Precision = Field("auto", description="auto: bf16 on AMX / AVX512-BF16 CPUs, fp32 on GPUs and other CPUs.")
    device: Device = Field("auto", description="auto: CUDA when present, else CPU.")
    cache: bool = Field(True, description="Reuse vectors of texts embedded before (per-text cache); "
                        "`python -m stages.embed --no-cache` turns it off for one run.")
    cache_dir: str = Field(".cache/embed", description="Directory of the vector cache (outside DVC outputs, git-ignored).")
    cache_max_mb: int = Field(2048, ge=1, description="Size bound of the vector cache; least recently used vectors go first.")


def _scheduler_names() -> list[str]:
    from transformers import SchedulerType

    return [s.value for s in SchedulerType]


class TrainParams(Section):
    epochs: float = Field(3, gt=0, description="Training epochs.")
    max_steps: int = Field(-1, description="If > 0, stop after this many optimizer steps (overrides epochs).")
    learning_rate: float = Field(5e-5, gt=0, description="Peak learning rate.")
    batch_size: int = Field(16, ge=1, description="Training batch size per device.")
    eval_batch_size: int = Field(64, ge=1, description="Evaluation batch size per device.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Batches per optimizer step.")
    lr_scheduler_type: str = Field("linear", description="A transformers.SchedulerType value.")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of steps with linear warmup.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    seed: int = Field(42, description="Seed set before the classification head is created.")
    precision: Precision = Field("auto", description="auto: bf16 where supported, fp16 on older GPUs, else fp32.")
    group_by_length: bool = Field(
        True, description="Batches of similar lengths (random mega-batches sorted by length): less padding.")
    eval_strategy: Literal["epoch", "steps", "no"] = Field("epoch", description="When to score the valid split.")
    eval_steps: int = Field(100, ge=1, description="Optimizer steps between evaluations when eval_strategy is steps.")
    save_strategy: Literal["epoch", "steps", "no"] = Field(
        "epoch", description="When to write a resumable checkpoint; must equal eval_strategy unless 'no'.")
    save_steps: int = Field(100, ge=1, description="Optimizer steps between checkpoints (a multiple of eval_steps).")
    early_stopping_patience: int = Field(
        3, ge=0, description="Stop after this many evaluations without improvement; 0 = never stop early.")
    metric_for_best_model: Literal[
        "macro_f1", "accuracy", "f1", "weighted_f1", "macro_precision", "macro_recall", "precision", "recall",
        "loss"] = Field("macro_f1", description="Validation metric for early stopping and the model kept at the end.")
    class_weights: Literal["none", "balanced"] = Field(
        "none", description="balanced: cross-entropy weighted by n / (classes * count) for imbalanced data.")
    nproc: int = Field(1, ge=1, description="Processes (DDP under torchrun): CPU processes or GPUs on this node.")

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


class EvaluateParams(Section):
    positive_label: Optional[str] = Field(
        None, description="Positive class of a binary task (F1, ROC-AUC, AP); default: the second label name.")
    calibration_bins: int = Field(10, ge=2, le=100, description="Equal-width confidence bins of the ECE and reliability diagram.")
    embedding_map: Literal["pca", "tsne"] = Field("pca", description="2-D projection of the embed stage's vectors.")
    map_max_points: int = Field(3000, ge=10, description="Points drawn on the embedding map (a fixed random subset beyond it).")
    report_errors: int = Field(20, ge=0, description="Most confident wrong predictions listed in the report.")
    seed: int = Field(42, description="Seed of the map's subset and t-SNE.")


class ProbeParams(Section):
    max_iter: int = Field(1000, ge=1, description="Iterations of the logistic regression on all train vectors.")


class MtebParams(Section):
    n_experiments: int = Field(10, ge=1, description="Repetitions of the few-shot probe (MTEB default 10).")
    samples_per_label: int = Field(8, ge=1, description="Train vectors drawn per class in each repetition (MTEB default 8).")
    max_iter: int = Field(100, ge=1, description="Logistic regression iterations (MTEB default 100).")


class KnnParams(Section):
    k: int = Field(5, ge=1, description="Neighbours (cosine distance) voting on each valid text.")


class TfidfParams(Section):
    word_ngram_max: int = Field(2, ge=1, le=5, description="Longest MeCab word n-gram (1 = words only).")
    char_ngram_max: int = Field(3, ge=0, le=6, description="Longest character n-gram (0 = no character features).")
    c: float = Field(10.0, gt=0, description="Inverse regularisation strength C of the logistic regression.")
    max_iter: int = Field(1000, ge=1, description="Logistic regression iterations.")


class BaselinesParams(Section):
    seed: int = Field(42, description="Seed of the few-shot sampling and the logistic regressions.")
    class_weight: Literal["none", "balanced"] = Field(
        "none", description="Class weights of the probe and TF-IDF logistic regressions; set it like "
        "train.class_weights so the comparison is like for like (the MTEB protocol stays unweighted).")
    probe: ProbeParams = Field(default_factory=ProbeParams)
    mteb: MtebParams = Field(default_factory=MtebParams)
    knn: KnnParams = Field(default_factory=KnnParams)
    tfidf: TfidfParams = Field(default_factory=TfidfParams)


class PackageParams(Section):
    intended_use: Optional[str] = Field(
        None, description="'Intended use' text of the model card (data/release/README.md); null = a generic text.")
    limitations: Optional[str] = Field(
        None, description="'Limitations' text of the model card; null = a generic text.")


class PathParams(Section):
    split: str = "data/split"
    base_model: str = "data/base_model"
    model_summary: str = "data/base_model.json"
    tokenized: str = "data/tokenized"
    tokenize_report: str = "data/tokenize_report.json"
    embeddings: str = "data/embeddings"
    model: str = "data/model"
    train_dir: str = "checkpoints/train"
    train_log: str = "data/train_log"
    eval: str = "data/eval"
    submission: str = "data/submission.csv"
    release: str = "data/release"
    baselines: str = "data/baselines.json"


class Params(Section):
    data: DataParams = Field(default_factory=DataParams)
    split: SplitParams = Field(default_factory=SplitParams)
    model: ModelParams = Field(default_factory=ModelParams)
    tokenize: TokenizeParams = Field(default_factory=TokenizeParams)
    embed: EmbedParams = Field(default_factory=EmbedParams)
    train: TrainParams = Field(default_factory=TrainParams)
    evaluate: EvaluateParams = Field(default_factory=EvaluateParams)
    package: PackageParams = Field(default_factory=PackageParams)
    baselines: BaselinesParams = Field(default_factory=BaselinesParams)
    paths: PathParams = Field(default_factory=PathParams)


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
    if error["type"] == "extra_forbidden":
        valid = _fields_at(loc)
        close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.5)
        hint = f"did you mean '{'.'.join(loc[:-1] + (close[0],))}'?" if close else ""
        section = ".".join(loc[:-1]) or "top level"
        return (f"{source}: unknown key '{key}' {hint} "
                f"(valid keys in {section}: {', '.join(valid)})")
    message = error["msg"].removeprefix("Value error, ")
    if isinstance(error.get("input"), dict):  # a check across several keys of a section
        return f"{source}: {key}: {message}"
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
