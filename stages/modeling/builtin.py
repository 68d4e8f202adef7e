"""The offline default model: a small Japanese BERT built from the training texts.

Same recipe as tohoku-nlp/bert-base-japanese-v3, scaled down: MeCab word segmentation (fugashi with
the unidic-lite dictionary), a WordPiece vocabulary over those words, then masked-LM pretraining with
whole-word masking (all pieces of a MeCab word masked together). Optionally the word embeddings start from
chiVe word vectors (stages/modeling/word_vectors.py), so the model knows words beyond the user's texts.
The result is saved as a plain `BertJapaneseTokenizer` + `BertForMaskedLM`, so it loads with
`AutoTokenizer.from_pretrained` / `AutoModel.from_pretrained` and no code of ours.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertJapaneseTokenizer,
    DataCollatorForLanguageModeling,
)

from stages.common import threads
from stages.common.params import BuiltinModelParams
from stages.dataset import japanese
from stages.dataset.japanese import MECAB_KWARGS, segment

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece_vocab(words: Sequence[Sequence[str]], vocab_size: int) -> list[str]:
    """WordPiece vocabulary (special tokens first) covering every character of `words`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    alphabet = sorted({ch for sentence in words for word in sentence for ch in word})
    # The trainer assigns ids to "##x" pieces in Rust HashMap order (random per process), and merge ties
    # are broken by id, so the vocabulary would differ run to run. Declaring every "##x" up front as a
    # special token fixes all ids before training, which makes the result deterministic.
    continuation = [f"##{ch}" for ch in alphabet]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordPieceTrainer(
        # Each character needs a word-initial and a "##" form; never let the size cap drop characters.
        vocab_size=max(vocab_size, 2 * len(alphabet) + len(SPECIAL_TOKENS)),
        special_tokens=SPECIAL_TOKENS + continuation,
        # The trainer's alphabet limit would silently turn rare kanji into [UNK]: keep every character.
        limit_alphabet=len(alphabet) + 1,
        initial_alphabet=alphabet,
        continuing_subword_prefix="##",
        show_progress=False,
    )
    tokenizer.train_from_iterator((" ".join(sentence) for sentence in words), trainer=trainer)
    vocab = tokenizer.get_vocab()
    fixed = set(SPECIAL_TOKENS) | set(continuation) | set(alphabet)
    learned = [token for token in sorted(vocab, key=vocab.__getitem__) if token not in fixed]
    # Conventional BERT order: specials, characters, "##" characters, then merged pieces.
    return SPECIAL_TOKENS + alphabet + continuation + learned


def save_tokenizer(vocab: list[str], out_dir: Path, model_max_length: int) -> BertJapaneseTokenizer:
    vocab_file = out_dir / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertJapaneseTokenizer(
        vocab_file=str(vocab_file),
        do_lower_case=False,
        word_tokenizer_type="mecab",
        subword_tokenizer_type="wordpiece",
        mecab_kwargs=dict(MECAB_KWARGS),
        model_max_length=model_max_length,
    )
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def build_model(size: BuiltinModelParams, vocab_size: int, tokenizer: BertJapaneseTokenizer) -> BertForMaskedLM:
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=size.hidden_size,
        num_hidden_layers=size.num_hidden_layers,
        num_attention_heads=size.num_attention_heads,
        intermediate_size=size.intermediate_size,
        max_position_embeddings=size.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(size.seed)
    return BertForMaskedLM(config)


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def masked_lm_loss(model: BertForMaskedLM, batch: dict) -> torch.Tensor:
    """BertForMaskedLM's loss, with the vocabulary head applied to the masked positions only: the other
    ~85 % of positions have label -100 and do not enter the loss, but their vocab-sized logits were the
    largest matmul and softmax of a step."""
    labels = batch["labels"]
    hidden = model.bert(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"),
                        token_type_ids=batch.get("token_type_ids")).last_hidden_state
    masked = labels != -100
    logits = model.cls(hidden[masked])
    return torch.nn.functional.cross_entropy(logits.float(), labels[masked])


def masked_lm_and_cls_loss(model: BertForMaskedLM, batch: dict, special_ids: torch.Tensor) -> torch.Tensor:
    """Masked-LM loss plus a bag-of-words loss on [CLS]: the [CLS] vector, through the same (tied) masked-LM head,
    predicts every word piece of its text (cross-entropy against the text's own piece distribution).

    Masked-LM never trains the [CLS] output, yet it is the vector BertForSequenceClassification classifies; after a
    short pretraining it barely depends on the text, and fine-tuning sat at the uniform-prediction loss for epochs
    (chABSA) or never left it. Trained to summarise the words, it gives the classifier a start much like TF-IDF's."""
    labels = batch["labels"]
    attention = batch["attention_mask"]
    hidden = model.bert(input_ids=batch["input_ids"], attention_mask=attention,
                        token_type_ids=batch.get("token_type_ids")).last_hidden_state
    masked = labels != -100
    mlm = torch.nn.functional.cross_entropy(model.cls(hidden[masked]).float(), labels[masked])
    original = torch.where(masked, labels, batch["input_ids"])  # the text's pieces before masking
    words = attention.bool() & ~torch.isin(original, special_ids.to(original.device))
    log_probs = torch.log_softmax(model.cls(hidden[:, 0]).float(), dim=-1)
    picked = log_probs.gather(1, original) * words
    bag = -(picked.sum(dim=1) / words.sum(dim=1).clamp(min=1)).mean()
    return mlm + bag


def init_word_embeddings(model: BertForMaskedLM, vocab: Sequence[str], words: Sequence[Sequence[str]],
                         seed: int) -> dict:
    """Overwrite the word-embedding rows chiVe tells something about (the MLM output layer is tied to them)."""
    from stages.modeling.word_vectors import chive_vocab_dir, embedding_rows, load_chive

    vocab_dir = chive_vocab_dir()
    vectors = load_chive(vocab_dir)
    weight = model.get_input_embeddings().weight
    rows, stats = embedding_rows(vocab, (word for sentence in words for word in sentence), vectors,
                                 weight.shape[1], model.config.initializer_range, seed, SPECIAL_TOKENS)
    if rows:
        ids = sorted(rows)
        with torch.no_grad():
            weight[torch.tensor(ids)] = torch.from_numpy(np.stack([rows[i] for i in ids])).to(weight.dtype)
    return {"word_vectors": "chive (ja-ginza 5.3.0)",
            "word_vectors_sha256": hashlib.sha256((vocab_dir / "vectors").read_bytes()).hexdigest(),
            "word_vectors_rows": {"from_word": stats["direct"], "from_containing_words": stats["from_words"],
                                  "random": stats["none"] + len(SPECIAL_TOKENS)}}


def whole_word_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor, continuation: torch.Tensor,
                    special_ids: torch.Tensor, probability: float, mask_id: int, vocab_size: int,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) with whole MeCab words masked: each word is chosen with `probability` and then all of its
    pieces (the word-initial one and the "##" ones after it) are predicted; of those, 80 % become [MASK], 10 % a
    random piece, 10 % stay (BERT's rule, per piece). A fresh draw on every call: dynamic masking.

    transformers' DataCollatorForLanguageModeling(whole_word_mask=True) finds words from a fast tokenizer's
    offset mapping, which BertJapaneseTokenizer (a Python tokenizer) has not, and turns random replacement off;
    here words come from the "##" marks of the WordPiece vocabulary (`continuation`, per vocabulary id)."""
    maskable = attention_mask.bool() & ~torch.isin(input_ids, special_ids)
    starts = maskable & ~continuation[input_ids]
    word_ids = torch.cumsum(starts.long(), dim=1)  # the word each piece belongs to (1, 2, ...; 0 before the first)
    chosen_start = starts & (torch.rand(input_ids.shape, generator=generator) < probability)
    if not chosen_start.any():  # a step needs at least one prediction: take the first word of the batch
        first = starts.flatten().nonzero()[:1]
        chosen_start.view(-1)[first] = True
    chosen_word = torch.zeros(input_ids.shape[0], input_ids.shape[1] + 1, dtype=torch.bool)
    # Only word starts write their word's slot; every other position writes slot 0, which no piece reads back.
    chosen_word.scatter_(1, torch.where(starts, word_ids, 0), chosen_start)
    chosen_word[:, 0] = False
    masked = chosen_word.gather(1, word_ids) & maskable
    labels = torch.where(masked, input_ids, -100)
    draw = torch.rand(input_ids.shape, generator=generator)
    inputs = input_ids.clone()
    inputs[masked & (draw < 0.8)] = mask_id
    replaced = masked & (draw >= 0.8) & (draw < 0.9)
    inputs[replaced] = torch.randint(vocab_size, input_ids.shape, generator=generator)[replaced]
    return inputs, labels


def pad_batch(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, :len(ids)] = 1
    return input_ids, attention_mask


class WholeWordMasker:
    """Batches of a tokenizer's ids -> masked-LM batches with whole-word masking (see `whole_word_mask`)."""

    def __init__(self, tokenizer: BertJapaneseTokenizer, probability: float, seed: int) -> None:
        vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        self.continuation = torch.tensor([token.startswith("##") for token in vocab])
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)))
        self.tokenizer = tokenizer
        self.probability = probability
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, examples: list[dict]) -> dict:
        input_ids, attention_mask = pad_batch([e["input_ids"] for e in examples], self.tokenizer.pad_token_id)
        inputs, labels = whole_word_mask(input_ids, attention_mask, self.continuation, self.special_ids,
                                         self.probability, self.tokenizer.mask_token_id, len(self.tokenizer),
                                         self.generator)
        return {"input_ids": inputs, "attention_mask": attention_mask, "labels": labels}


def pretrain_lr_factor(steps: int, warmup_ratio: float, shape: str):
    """The LR multiplier of each pretraining step: linear warmup from 1/warmup (not transformers' 0: the first step
    of a short budget is not wasted), then linear or cosine decay to 0."""
    warmup = max(1, round(warmup_ratio * steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return max(0.0, 1 - progress) if shape == "linear" else 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def pretraining_order(lengths: Sequence[int], batch_size: int, group_by_length: bool,
                      generator: torch.Generator) -> list[int]:
    """One pass over the texts, as consecutive batches of `batch_size` indices. Grouped: a random permutation cut
    into groups of 50 batches, each group sorted by length and cut into batches, then the batches shuffled, so a
    batch pads to a length close to its texts' own (random batches padded 2.4x on chABSA) while the order of
    lengths stays random."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    if not group_by_length:
        return order
    group = 50 * batch_size
    batches = []
    for start in range(0, len(order), group):
        ranked = sorted(order[start:start + group], key=lambda i: lengths[i], reverse=True)
        batches += [ranked[i:i + batch_size] for i in range(0, len(ranked), batch_size)]
    return [i for b in torch.randperm(len(batches), generator=generator).tolist() for i in batches[b]]


def pretrain_mlm(model: BertForMaskedLM, tokenizer: BertJapaneseTokenizer, texts: list[str], steps: int,
                 size: BuiltinModelParams, max_length: int,
                 autocast_dtype: torch.dtype | None = None) -> float | None:
    """Masked-LM pretraining for `steps` steps; returns the mean loss of the last tenth of the steps (None
    without steps: the summary writes null, as JSON has no NaN)."""
    if steps == 0:
        return None
    encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    lengths = [len(ids) for ids in encoded]
    if size.masking == "whole_word":
        collator = WholeWordMasker(tokenizer, size.mlm_probability, size.seed)
    else:
        collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=size.mlm_probability, seed=size.seed)
    generator = torch.Generator().manual_seed(size.seed)
    special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=size.pretrain_learning_rate, weight_decay=0.01,
                                  fused=True)
    device = next(model.parameters()).device
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, pretrain_lr_factor(steps, size.pretrain_warmup_ratio, size.pretrain_lr_schedule))
    model.train()
    losses: list[float] = []
    order: list[int] = []
    for _ in tqdm(range(steps), desc="pretrain builtin BERT (masked LM)", unit="step"):
        threads.refresh()  # concurrent pipeline runs share the cores (stages/common/threads.py)
        if len(order) < size.pretrain_batch_size:
            order += pretraining_order(lengths, size.pretrain_batch_size, size.pretrain_group_by_length, generator)
        batch_ids, order = order[:size.pretrain_batch_size], order[size.pretrain_batch_size:]
        batch = collator([{"input_ids": encoded[i]} for i in batch_ids])
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast_context(device, autocast_dtype):
            loss = (masked_lm_and_cls_loss(model, batch, special_ids) if size.cls_objective == "bag_of_words"
                    else masked_lm_loss(model, batch))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    tail = losses[-max(1, steps // 10):]
    return sum(tail) / len(tail)


def build_builtin(texts: list[str], out_dir: Path, size: BuiltinModelParams, steps: int,
                  autocast_dtype: torch.dtype | None = None) -> dict:
    """Build tokenizer + pretrained model into `out_dir` from the pretraining `texts`; returns facts for the summary."""
    if size.word_vectors == "chive":
        from stages.modeling.word_vectors import chive_vocab_dir

        chive_vocab_dir()  # a missing wheel stops here, before minutes of segmentation
    texts, _ = japanese.prepare_texts(texts)  # MeCab reads them twice below (vocabulary, pretraining ids)
    words = segment(tqdm(texts, desc="MeCab segmentation", unit="text", mininterval=2))
    vocab = train_wordpiece_vocab(words, size.vocab_size)
    tokenizer = save_tokenizer(vocab, out_dir, size.max_position_embeddings)
    model = build_model(size, len(vocab), tokenizer)
    facts: dict = {"word_vectors": "none"}
    if size.word_vectors == "chive":
        facts = init_word_embeddings(model, vocab, words, size.seed)
    loss = pretrain_mlm(model, tokenizer, texts, steps, size, size.max_position_embeddings, autocast_dtype)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    return {"pretrain_final_loss": None if loss is None else round(loss, 4), "pretrain_texts": len(texts),
            "pretrain_steps": steps, "masking": size.masking, "cls_objective": size.cls_objective, **facts}
