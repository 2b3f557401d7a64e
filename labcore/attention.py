"""Multi-head self-attention: the explicit math the course asks for, beside the fused kernel.

Both paths share the same parameters (the course's layout): ``qkv`` = Linear(dim, 3*dim) whose
output rows are [all queries | all keys | all values] (the layout of
``torch.nn.MultiheadAttention.in_proj_weight``), and ``proj`` = Linear(dim, dim).

``check_attention(module)`` compares any attention module (yours!) with
``torch.nn.MultiheadAttention`` holding the same weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


class MultiHeadAttention(nn.Module):
    """Self-attention over a sequence: (B, N, dim) -> (B, N, dim).

    ``fused=False`` runs the explicit math (and can return the attention weights);
    ``fused=True`` calls ``F.scaled_dot_product_attention`` on the same q, k, v.
    """

    def __init__(self, dim: int = 768, num_heads: int = 16, attn_drop: float = 0.1, fused: bool = False):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads          # d_k
        self.fused = fused
        self.qkv = nn.Linear(dim, 3 * dim)        # W_q, W_k, W_v stacked: one matmul for all three
        self.attn_drop = nn.Dropout(attn_drop)    # dropout on the attention weights
        self.proj = nn.Linear(dim, dim)           # output projection after concatenating heads

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        B, N, C = x.shape                                                   # x: (B, N, dim)
        qkv = self.qkv(x)                                                   # (B, N, 3*dim)
        qkv = qkv.view(B, N, 3, self.num_heads, self.head_dim)              # (B, N, 3, H, d_k)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)                      # each (B, H, N, d_k)

        if self.fused and not return_attention:
            drop = self.attn_drop.p if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)   # (B, H, N, d_k)
            weights = None
        else:
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)     # (B, H, N, N)
            weights = scores.softmax(dim=-1)                                # (B, H, N, N), rows sum to 1
            out = self.attn_drop(weights) @ v                               # (B, H, N, d_k)

        out = out.transpose(1, 2).reshape(B, N, C)                          # (B, N, dim): heads concatenated
        out = self.proj(out)                                                # (B, N, dim)
        return (out, weights) if return_attention else out


# ----------------------------------------------------------------------------- checking a module

@dataclass
class AttentionCheck:
    passed: bool
    max_error: float
    tolerance: float
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return self.message


def _linear_weights(module: nn.Module, names: tuple[str, ...]) -> nn.Linear | None:
    for name in names:
        layer = getattr(module, name, None)
        if isinstance(layer, nn.Linear):
            return layer
    return None


def copy_into_torch_mha(module: nn.Module, num_heads: int) -> nn.MultiheadAttention:
    """A ``torch.nn.MultiheadAttention`` (batch_first) holding the weights of ``module``.

    ``module`` names its projections either ``qkv`` (fused) or ``query``/``key``/``value`` (or
    ``q``/``k``/``v``), and ``proj`` (or ``out``/``out_proj``), all ``nn.Linear`` with bias."""
    out = _linear_weights(module, ("proj", "out", "out_proj"))
    fused = _linear_weights(module, ("qkv",))
    separate = [_linear_weights(module, pair) for pair in (("query", "q"), ("key", "k"), ("value", "v"))]
    if out is None or (fused is None and None in separate):
        names = ", ".join(n for n, _ in module.named_children()) or "none"
        raise ValueError("check_attention: expected nn.Linear layers named 'qkv' (or 'query'/'key'/'value') "
                         f"and 'proj' (or 'out'); this module has children: {names}")
    dim = out.out_features
    weight = fused.weight if fused is not None else torch.cat([l.weight for l in separate])
    layers = [fused] if fused is not None else separate
    if any(l.bias is None for l in layers + [out]):
        raise ValueError("check_attention: the projections must have a bias (as in the course's layout)")
    bias = torch.cat([l.bias for l in layers])
    ref = nn.MultiheadAttention(dim, num_heads, dropout=0.0, bias=True, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(weight)
        ref.in_proj_bias.copy_(bias)
        ref.out_proj.weight.copy_(out.weight)
        ref.out_proj.bias.copy_(out.bias)
    return ref


def check_attention(module: nn.Module, num_heads: int | None = None, batch: int = 2, tokens: int = 16,
                    tolerance: float = 1e-5, seed: int = 0, verbose: bool = True) -> AttentionCheck:
    """Compare ``module`` (B, N, dim) -> (B, N, dim) with ``torch.nn.MultiheadAttention`` holding
    the same weights, in eval mode (dropout off), on a random input. Prints one line and returns
    an ``AttentionCheck`` (truthy when it passed)."""
    num_heads = num_heads or getattr(module, "num_heads", None)
    if num_heads is None:
        raise ValueError("check_attention: pass num_heads= (the module has no .num_heads attribute)")
    ref = copy_into_torch_mha(module, num_heads)
    was_training = module.training
    module.eval()
    try:
        x = torch.randn(batch, tokens, ref.embed_dim, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            got = module(x)
            got = got[0] if isinstance(got, tuple) else got
            want, _ = ref(x, x, x, need_weights=False)
    finally:
        module.train(was_training)
    if got.shape != want.shape:
        result = AttentionCheck(False, float("inf"), tolerance,
                                f"FAIL  output shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    else:
        err = (got.float() - want).abs().max().item()
        ok = err <= tolerance
        result = AttentionCheck(ok, err, tolerance,
                                f"{'PASS' if ok else 'FAIL'}  max |yours - torch.nn.MultiheadAttention| = "
                                f"{err:.2e} (tolerance {tolerance:.0e}; dim {ref.embed_dim}, {num_heads} heads)")
    if verbose:
        print(result.message)
    return result
