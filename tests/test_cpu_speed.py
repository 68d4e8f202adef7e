"""stages/cpu_speed.py: the cheaper dropout masks and the clipping folded into fused AdamW must keep the
semantics of nn.Dropout and clip_grad_norm_ exactly where it matters."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from stages.modeling.cpu_speed import (
    HashDropout,
    defer_clip_to_fused_adamw,
    fused_adamw,
    fused_clip_applies,
    hash_keep_mask,
    kept_fraction,
    use_hash_dropout,
)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_keep_mask_keeps_one_minus_p_and_depends_on_the_seed(p):
    shape = torch.Size([400, 1000])
    keep = hash_keep_mask(shape, p, torch.device("cpu"), seed=7)
    assert keep.shape == shape and keep.dtype == torch.bool
    # 400k Bernoulli draws: the standard error of the mean is below 0.001.
    assert abs(keep.float().mean().item() - (1 - p)) < 0.004
    assert torch.equal(keep, hash_keep_mask(shape, p, torch.device("cpu"), seed=7))
    other = hash_keep_mask(shape, p, torch.device("cpu"), seed=8)
    # Independent masks agree on about p^2 + (1-p)^2 of the elements, not on all.
    assert abs((keep == other).float().mean().item() - (p * p + (1 - p) ** 2)) < 0.004
    # Neighbouring elements are not correlated (each int64 word feeds four elements).
    flat = keep.flatten().float()
    correlation = torch.corrcoef(torch.stack([flat[:-1], flat[1:]]))[0, 1].item()
    assert abs(correlation) < 0.01


def test_hash_dropout_scales_kept_values_and_routes_gradients_through_the_same_mask():
    torch.manual_seed(0)
    dropout = HashDropout(0.1)
    x = torch.randn(64, 128, requires_grad=True)
    y = dropout(x)
    kept = y != 0
    assert 0.85 < kept.float().mean().item() < 0.95
    torch.testing.assert_close(y[kept], x[kept] / kept_fraction(0.1))
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / kept_fraction(0.1))
    dropout.eval()
    assert dropout(x) is x


def test_hash_dropout_is_reproducible_from_the_torch_seed():
    dropout = HashDropout(0.2)
    x = torch.ones(32, 32)
    torch.manual_seed(3)
    first = dropout(x)
    torch.manual_seed(3)
    assert torch.equal(first, dropout(x))
    assert not torch.equal(first, dropout(x))  # the next call draws a new seed


def test_use_hash_dropout_swaps_every_dropout_of_a_real_bert():
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=3)
    model = BertForSequenceClassification(config)
    plain = sum(type(m) is nn.Dropout for m in model.modules())
    assert plain > 0
    assert use_hash_dropout(model) == plain
    assert not any(type(m) is nn.Dropout for m in model.modules())
    assert all(m.p == pytest.approx(0.1) for m in model.modules() if isinstance(m, HashDropout))
    model.train()
    out = model(input_ids=torch.randint(0, 100, (4, 9)), labels=torch.tensor([0, 1, 2, 0]))
    out.loss.backward()
    assert all(p.grad is not None for p in model.classifier.parameters())


def test_clip_folded_into_fused_adamw_matches_clip_grad_norm_then_step():
    torch.manual_seed(0)
    reference = nn.Sequential(nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 3))
    folded = copy.deepcopy(reference)
    opt_ref = torch.optim.AdamW(reference.parameters(), lr=1e-2, fused=True)
    opt_folded = torch.optim.AdamW(folded.parameters(), lr=1e-2, fused=True)
    x = torch.randn(16, 32)
    for scale in (100.0, 0.001, 50.0):  # clipped, not clipped, clipped
        for model in (reference, folded):
            (model(x * scale) ** 2).sum().backward()
        norm_ref = torch.nn.utils.clip_grad_norm_(reference.parameters(), 1.0)
        norm_folded = defer_clip_to_fused_adamw(opt_folded, folded.parameters(), 1.0)
        torch.testing.assert_close(norm_folded, norm_ref, rtol=1e-5, atol=0)
        opt_ref.step()
        opt_folded.step()
        opt_ref.zero_grad()
        opt_folded.zero_grad()
        for a, b in zip(reference.parameters(), folded.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_fused_clip_only_applies_to_fused_adamw_on_fp32_grads_without_a_scaler():
    params = [nn.Parameter(torch.ones(3))]
    fused = torch.optim.AdamW(params, fused=True)
    assert fused_adamw(fused) is fused
    assert fused_clip_applies(fused, torch.float32, has_scaler=False)
    assert not fused_clip_applies(fused, torch.float32, has_scaler=True)
    assert not fused_clip_applies(fused, torch.bfloat16, has_scaler=False)
    assert not fused_clip_applies(torch.optim.AdamW(params, foreach=True), torch.float32, has_scaler=False)
    assert not fused_clip_applies(torch.optim.SGD(params, lr=0.1), torch.float32, has_scaler=False)
