"""Device and precision choices shared by the stages that run the model."""
from __future__ import annotations

from typing import Optional

import torch

from stages.common.errors import UserError


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' requested but no CUDA GPU is visible; use 'auto' or 'cpu'")
    return torch.device(device)


def cpu_has_fast_bf16() -> bool:
    """AMX or AVX-512-BF16: bf16 matmuls run natively (about 3x fp32 with AMX)."""
    try:
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:  # older torch without the probes
        return False


def resolve_precision(precision: str, device: torch.device, param: str = "precision") -> Optional[torch.dtype]:
    """The autocast dtype for `precision` on `device`, or None for plain fp32."""
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_fast_bf16() else None
    if precision == "fp16" and device.type != "cuda":
        raise UserError(f"{param}: fp16 needs a CUDA GPU; use auto, bf16 or fp32 on CPU")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
