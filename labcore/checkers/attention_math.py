"""Exercise 2's explicit math with the classic mistakes as switches, and the comparison with
``torch.nn.MultiheadAttention`` that names the mistakes reproducing a wrong output."""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from labcore.checkers.attention_weights import Layout, bias, copy_into_torch_mha, layout
from labcore.checkers.report import describe, fail, ok

_QKV, _SPLIT = "attention.qkv_split", "attention.head_split"

_SWITCHES = {
    "order": ("qkv", {"kqv": _QKV, "qvk": _QKV, "per_head": _QKV}),
    "scale": ("sqrt_d_k", {"none": "attention.no_scaling", "sqrt_dim": "attention.scale_by_dim",
                           "d_k": "attention.wrong_scale", "times": "attention.wrong_scale"}),
    "causal": (False, {True: "attention.causal_mask"}),
    "softmax_dim": (-1, {-2: "attention.softmax_axis", 1: "attention.softmax_axis", 0: "attention.softmax_axis"}),
    "split": ("heads", {"reshape": _SPLIT, "tokens": _SPLIT}),
    "merge": (True, {False: _SPLIT}),
    "use_proj": (True, {False: "attention.no_output_projection"}),
}


def explicit_attention(x: torch.Tensor, lay: Layout, heads: int, order="qkv", scale="sqrt_d_k", causal=False,
                       softmax_dim=-1, split="heads", merge=True, use_proj=True) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d_k)) V per head, heads merged, projected: (B, N, dim) -> (B, N, dim).
    The keyword switches turn on one classic mistake each (``_SWITCHES``)."""
    B, N, C = x.shape
    d = C // heads
    qkv = F.linear(x, lay.qkv_weight, lay.qkv_bias)                            # (B, N, 3C)
    if order == "per_head":                                                    # read as (B, N, H, 3, d)
        q, k, v = (t.reshape(B, N, C) for t in qkv.view(B, N, heads, 3, d).unbind(3))  # each (B, N, C)
    else:
        thirds = dict(zip("qkv", qkv.chunk(3, dim=-1)))                        # each (B, N, C)
        q, k, v = (thirds[name] for name in order)

    def to_heads(t):  # (B, N, C) -> (B, H, N, d); the wrong ways mix tokens and channels, or attend over heads
        if split == "heads":
            return t.view(B, N, heads, d).transpose(1, 2)                     # (B, H, N, d)
        return t.reshape(B, heads, N, d) if split == "reshape" else t.view(B, N, heads, d)

    q, k, v = to_heads(q), to_heads(k), to_heads(v)
    scores = q @ k.transpose(-2, -1)                                           # (B, H, N, N)
    scores = scores / ({"sqrt_d_k": math.sqrt(d), "sqrt_dim": math.sqrt(C), "none": 1.0, "d_k": d,
                        "times": 1 / math.sqrt(d)}[scale] if isinstance(scale, str) else scale)   # or a number
    if causal:
        n = scores.shape[-1]
        scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))  # (B, H, N, N)
    out = scores.softmax(dim=softmax_dim) @ v                                  # (B, H, N, d)
    merged = out.transpose(1, 2) if split != "tokens" and merge else out       # (B, N, H, d) when right
    merged = merged.reshape(B, N, C)                                           # (B, N, C)
    return F.linear(merged, lay.proj.weight, bias(lay.proj)) if use_proj else merged


def _variants(has_proj: bool, heads: int, dim: int, most: int = 3):
    """(mistake ids, keyword switches, heads): every combination of at most ``most`` wrong
    switches, fewest first, then the other head counts with everything else right (scaled by
    their own d_k, or by the d_k that ``heads`` heads would have)."""
    names = list(_SWITCHES)
    combos = []
    for values in itertools.product(*[[_SWITCHES[n][0], *_SWITCHES[n][1]] for n in names]):
        kwargs = dict(zip(names, values))
        wrong = [n for n in names if kwargs[n] != _SWITCHES[n][0]]
        if len(wrong) > most + (not has_proj) or kwargs["use_proj"] and not has_proj:
            continue
        if kwargs["split"] == "tokens" and not kwargs["merge"]:               # the same as merge=True there
            continue
        combos.append((list(dict.fromkeys(_SWITCHES[n][1][kwargs[n]] for n in wrong)), kwargs, heads))
    combos.sort(key=lambda c: len(c[0]))
    others = [h for h in range(1, dim + 1) if dim % h == 0 and h != heads]
    return combos + [(["attention.num_heads"], {"use_proj": has_proj, "scale": scale}, h) for h in others
                     for scale in ("sqrt_d_k", math.sqrt(dim // heads))]


def diagnose(x, lay: Layout, heads: int, out: torch.Tensor, tol: float) -> tuple[list[str], int]:
    """The ids of the first variant of the explicit math that reproduces ``out``, and its heads."""
    for ids, kwargs, h in _variants(lay.proj is not None, heads, x.shape[-1]):
        if ids and (explicit_attention(x, lay, h, **kwargs) - out).abs().max().item() <= max(tol, 1e-5):
            return ids, h
    return ["attention.wrong_output"], heads


def compare(module: nn.Module, heads: int, x, out, tol: float) -> list:
    """``out`` against torch.nn.MultiheadAttention holding the module's weights; the mistakes that
    reproduce it when they differ."""
    lay = layout(module)
    with torch.no_grad():
        want = copy_into_torch_mha(module, heads)(x, x, x, need_weights=False)[0]   # (B, N, dim)
        err = (out - want).abs().max().item()
        detail = (f"max |yours - torch.nn.MultiheadAttention| = {err:.2e} (tolerance {tol:.0e}; dim "
                  f"{x.shape[-1]}, {heads} heads, {describe(x)})")
        if err <= tol:
            return [ok(detail)]
        ids, h = diagnose(x, lay, heads, out, tol)
    if h != heads:
        detail += f"\nyour output is reproduced by the explicit math with {h} heads"
    return [fail(i, detail) for i in ids]
