"""Two costs of CPU fine-tuning that do not scale with the text length, made smaller.

Profiled on the 2-core AMX CPU with a BERT-base-shaped model at batch 16 (bench/train.py):

- Dropout masks: `torch.bernoulli_` draws one Mersenne-Twister number per element, serially, and took
  ~12% of a step at 46 tokens. `HashDropout` draws one seed from the torch RNG per call and expands it with
  the splitmix64 finaliser into 16-bit lanes, vectorised over int64 words (about 3x faster). Same keep
  probability (to 1/65536), same inverted scaling, still reproducible from `set_seed` and resumable (the
  seed comes from the torch RNG state that checkpoints save).
- Gradient clipping: `clip_grad_norm_` computes the norm tensor by tensor and then multiplies every
  gradient by the clip factor, a full extra pass over 110M floats. `fp32_grad_norm` sums BLAS dot products,
  and `defer_clip_to_fused_adamw` hands the factor to fused AdamW as its `grad_scale` (the kernel divides
  each gradient by it while it reads it anyway), so the multiply pass disappears.
"""
from __future__ import annotations

import math
from typing import Iterable, Optional

import torch
from torch import nn

# splitmix64 constants as signed int64 (torch has no uint64 arithmetic).
_GOLDEN = 0x9E3779B97F4A7C15 - (1 << 64)
_MIX1 = 0xBF58476D1CE4E5B9 - (1 << 64)
_MIX2 = 0x94D049BB133111EB - (1 << 64)


def _shift_right_logical(words: torch.Tensor, bits: int) -> torch.Tensor:
    return (words >> bits) & ((1 << (64 - bits)) - 1)


def hash_keep_mask(shape: torch.Size, p: float, device: torch.device, seed: int) -> torch.Tensor:
    """Bool mask, each element kept with probability 1 - p (p rounded to 1/65536), from one 62-bit seed."""
    numel = math.prod(shape)
    words = torch.arange((numel + 3) // 4, dtype=torch.int64, device=device).mul_(_GOLDEN).add_(seed)
    words ^= _shift_right_logical(words, 30)
    words.mul_(_MIX1)
    words ^= _shift_right_logical(words, 27)
    words.mul_(_MIX2)
    words ^= _shift_right_logical(words, 31)
    lanes = words.view(torch.int16)[:numel].view(shape)  # four uniform 16-bit lanes per word
    return lanes >= drop_threshold(p)


def drop_threshold(p: float) -> int:
    return -32768 + round(p * 65536)


def kept_fraction(p: float) -> float:
    return 1.0 - (drop_threshold(p) + 32768) / 65536


class _MaskedScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return x.mul(keep).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return grad.mul(keep).mul_(ctx.scale), None, None


class HashDropout(nn.Dropout):
    """nn.Dropout with a cheaper mask generator (see the module docstring); eval mode is the identity."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p >= 1.0:
            return x * 0.0
        seed = int(torch.randint(0, 1 << 62, (1,)).item())
        keep = hash_keep_mask(x.shape, self.p, x.device, seed)
        return _MaskedScale.apply(x, keep, 1.0 / kept_fraction(self.p))


def use_hash_dropout(model: nn.Module) -> int:
    """Swap every plain nn.Dropout of `model` for HashDropout with the same p; returns how many."""
    swapped = 0
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, HashDropout(child.p, child.inplace))
                swapped += 1
    return swapped


def fp32_grad_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """L2 norm over all gradients (fp32), as a 0-d tensor: BLAS dot per tensor, summed in fp64."""
    squares = [torch.dot(g.reshape(-1), g.reshape(-1)).double() for g in grads]
    return torch.stack(squares).sum().sqrt().float()


def fused_adamw(optimizer) -> Optional[torch.optim.Optimizer]:
    """The torch fused AdamW inside `optimizer` (accelerate wraps it), or None."""
    inner = getattr(optimizer, "optimizer", optimizer)
    if isinstance(inner, torch.optim.AdamW) and all(group.get("fused") for group in inner.param_groups):
        return inner
    return None


def defer_clip_to_fused_adamw(optimizer: torch.optim.Optimizer, params: Iterable[nn.Parameter],
                              max_norm: float) -> torch.Tensor:
    """clip_grad_norm_(params, max_norm) without touching the gradients: the factor goes to the next
    fused AdamW step as grad_scale. Returns the pre-clip norm, like clip_grad_norm_."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = fp32_grad_norm(grads)
    # clip_grad_norm_ multiplies by max_norm / (norm + 1e-6) when that is below 1; the kernel divides by grad_scale.
    # Clamped at 1 (dividing by 1.0 is exact) rather than tested in Python: no device sync on a GPU.
    optimizer.grad_scale = torch.clamp((norm + 1e-6) / max_norm, min=1.0)
    return norm


def fused_clip_applies(optimizer, grads_dtype: torch.dtype, has_scaler: bool) -> bool:
    """True for plain fused AdamW over fp32 gradients without an fp16 GradScaler (which owns grad_scale)."""
    return fused_adamw(optimizer) is not None and grads_dtype == torch.float32 and not has_scaler
