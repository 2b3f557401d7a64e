"""Checker of exercise 1, multi-head self-attention (Vaswani et al. 2017).

What the student writes (the course's naming; ``labcore.course_format`` loads either layout)::

    class MultiHeadAttention(nn.Module):
        def __init__(self, dim, num_heads, attn_drop): ...
            # fused: self.qkv = nn.Linear(dim, 3 * dim)  (rows [all q | all k | all v])
            # or:    self.query, self.key, self.value = nn.Linear(dim, dim) x 3
            # and:   self.proj (or self.out) = nn.Linear(dim, dim)
        def forward(self, x):            # x (B, N, dim) -> (B, N, dim)

``check_attention(MultiHeadAttention)`` (the class: it builds one with dim 32, 4 heads, dropout
0.5) or ``check_attention(module)`` (an instance, with ``.num_heads`` or ``num_heads=``).

The reference is ``torch.nn.MultiheadAttention`` holding the same weights, in eval mode: equal
up to float error. When they differ, the output is matched against the explicit math with each
classic mistake switched on (no 1/sqrt(d_k), sqrt(dim), softmax over the queries or the heads, a
head split that mixes positions and channels, no output projection, another number of heads),
alone and combined: the variant that reproduces it names the mistakes.

Once it passes, ``with_attention(transformer, MultiHeadAttention)`` puts the student's class into
a copy of labcore's ``BidirectionalTransformer``: each block's attention becomes an instance of it
holding that block's weights (``load_attention_weights``), so the student's ``forward`` makes the
real model's predictions.
"""

from __future__ import annotations

import copy
import inspect
import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from labcore.checkers.report import CheckResult, call, fail, ok, run_probes

DIM, HEADS, DROP = 32, 4, 0.5   # the module built when a class is given


@dataclass
class _Layout:
    qkv_weight: torch.Tensor        # (3*dim, dim), rows [q | k | v]
    qkv_bias: torch.Tensor          # (3*dim,)
    proj: nn.Linear | None          # the output projection, None when the module has none


def _linear(module: nn.Module, names: tuple[str, ...]) -> nn.Linear | None:
    for name in names:
        layer = getattr(module, name, None)
        if isinstance(layer, nn.Linear):
            return layer
    return None


def _bias(layer: nn.Linear) -> torch.Tensor:
    """The layer's bias, zeros for ``bias=False`` (the same map as a zero bias)."""
    return layer.bias if layer.bias is not None else torch.zeros(layer.out_features)


_IN_NAMES = (("qkv",), ("query", "q"), ("key", "k"), ("value", "v"))
_OUT_NAMES = ("proj", "out", "out_proj")


def _projections(module: nn.Module) -> tuple[list[nn.Linear], nn.Linear | None]:
    """The input projections of ``module``, ``[qkv]`` (fused) or ``[query, key, value]`` (or
    ``q``/``k``/``v``), and its output projection ``proj`` (or ``out``/``out_proj``; None when it
    has none), all ``nn.Linear``; a ValueError when the input projections are not there."""
    fused = _linear(module, _IN_NAMES[0])
    separate = [_linear(module, names) for names in _IN_NAMES[1:]]
    if fused is None and None in separate:
        names = ", ".join(n for n, _ in module.named_children()) or "none"
        raise ValueError("check_attention: expected nn.Linear layers named 'qkv' (or 'query'/'key'/'value') "
                         f"and 'proj' (or 'out'); this module has children: {names}")
    return ([fused] if fused is not None else separate), _linear(module, _OUT_NAMES)


def _layout(module: nn.Module) -> _Layout:
    """The projections of ``module`` (``_projections``): a missing bias counts as zeros."""
    layers, out = _projections(module)
    weight = torch.cat([l.weight for l in layers]).detach()
    return _Layout(weight, torch.cat([_bias(l) for l in layers]).detach(), out)


def copy_into_torch_mha(module: nn.Module, num_heads: int) -> nn.MultiheadAttention:
    """A ``torch.nn.MultiheadAttention`` (batch_first) holding the weights of ``module``.

    ``module`` names its projections either ``qkv`` (fused) or ``query``/``key``/``value`` (or
    ``q``/``k``/``v``), and ``proj`` (or ``out``/``out_proj``), all ``nn.Linear`` (a missing bias
    counts as zeros)."""
    layout = _layout(module)
    if layout.proj is None:
        names = ", ".join(n for n, _ in module.named_children()) or "none"
        raise ValueError("check_attention: expected nn.Linear layers named 'qkv' (or 'query'/'key'/'value') "
                         f"and 'proj' (or 'out'); this module has children: {names}")
    dim = layout.proj.out_features
    ref = nn.MultiheadAttention(dim, num_heads, dropout=0.0, bias=True, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(layout.qkv_weight)
        ref.in_proj_bias.copy_(layout.qkv_bias)
        ref.out_proj.weight.copy_(layout.proj.weight)
        ref.out_proj.bias.copy_(_bias(layout.proj))
    return ref.eval()


# ----------------------------------------------------------------------------- the explicit math, with switches

# each switch: (name, correct value, wrong values -> mistake id)
_SWITCHES = {
    "scale": ("d_k", {"none": "attention.no_scaling", "dim": "attention.scale_by_dim"}),
    "softmax_dim": (-1, {-2: "attention.softmax_axis", 1: "attention.softmax_axis"}),
    "split": (True, {False: "attention.head_split"}),
    "merge": (True, {False: "attention.head_split"}),
    "use_proj": (True, {False: "attention.no_output_projection"}),
}


def explicit_attention(x: torch.Tensor, layout: _Layout, heads: int, scale: str = "d_k", softmax_dim: int = -1,
                       split: bool = True, merge: bool = True, use_proj: bool = True) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d_k)) V per head, heads merged, projected: (B, N, dim) -> (B, N, dim).
    The keyword switches turn on one classic mistake each (``_SWITCHES``)."""
    B, N, C = x.shape
    d = C // heads
    q, k, v = F.linear(x, layout.qkv_weight, layout.qkv_bias).chunk(3, dim=-1)   # each (B, N, C)

    def to_heads(t):  # (B, N, C) -> (B, H, N, d); the wrong way reads the memory as if it were (B, H, N, d)
        return t.view(B, N, heads, d).transpose(1, 2) if split else t.reshape(B, heads, N, d)

    q, k, v = to_heads(q), to_heads(k), to_heads(v)
    scores = q @ k.transpose(-2, -1)                                              # (B, H, N, N)
    scores = scores / {"d_k": math.sqrt(d), "dim": math.sqrt(C), "none": 1.0}[scale]
    out = scores.softmax(dim=softmax_dim) @ v                                     # (B, H, N, d)
    out = out.transpose(1, 2).reshape(B, N, C) if merge else out.reshape(B, N, C)  # (B, N, C)
    return F.linear(out, layout.proj.weight, _bias(layout.proj)) if use_proj else out


def _variants(layout: _Layout, heads: int, dim: int):
    """(mistake ids, keyword switches) for every combination of the switches, fewest mistakes first,
    then the other head counts with everything else right."""
    names = list(_SWITCHES)
    choices = [[_SWITCHES[n][0], *_SWITCHES[n][1]] for n in names]
    combos = []
    for values in itertools.product(*choices):
        kwargs = dict(zip(names, values))
        if layout.proj is None and kwargs["use_proj"]:
            continue
        ids = [_SWITCHES[n][1][v] for n, v in kwargs.items() if v != _SWITCHES[n][0]]
        combos.append((list(dict.fromkeys(ids)), kwargs, heads))
    combos.sort(key=lambda c: len(c[0]))
    others = [h for h in range(1, dim + 1) if dim % h == 0 and h != heads]
    combos += [(["attention.num_heads"], {"use_proj": layout.proj is not None}, h) for h in others]
    return combos


# ----------------------------------------------------------------------------- the checker

@dataclass(repr=False)
class AttentionCheck(CheckResult):
    max_error: float = float("inf")   # max |yours - torch.nn.MultiheadAttention|
    tolerance: float = 1e-5


def _output(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = call(module, x)
    return out[0] if isinstance(out, tuple) else out


def check_attention(module: nn.Module | type, num_heads: int | None = None, batch: int = 2, tokens: int = 16,
                    tolerance: float = 1e-5, seed: int = 0, verbose: bool = False) -> AttentionCheck:
    """Check a multi-head self-attention module (an instance, or the class: it is built as
    ``cls(32, 4, 0.5)``) against ``torch.nn.MultiheadAttention`` with the same weights, in eval
    mode, on a random (batch, tokens, dim) input. Returns an ``AttentionCheck`` (truthy when it
    passed; ``str()`` is the report; ``verbose=True`` also prints it)."""
    if isinstance(module, type):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = module(DIM, HEADS, DROP)
        # built here with HEADS heads: judge it against HEADS, not against the module's own
        # .num_heads (a module that hard-codes its head count would otherwise pass)
        num_heads = num_heads or HEADS
    num_heads = num_heads or getattr(module, "num_heads", None)
    if num_heads is None:
        raise ValueError("check_attention: pass num_heads= (the module has no .num_heads attribute)")
    was_training = module.training
    module.eval()
    state: dict = {}
    try:
        result = run_probes("check_attention", [
            ("projections found, output (B, N, dim)", lambda: _probe_shape(module, num_heads, batch, tokens, state)),
            ("no randomness in eval mode", lambda: _probe_eval_dropout(module, state)),
            ("equals torch.nn.MultiheadAttention", lambda: _probe_exact(module, num_heads, tolerance, state)),
        ], "attention.error", seed)
    finally:
        module.train(was_training)
    check = AttentionCheck(result.checker, result.findings, result.notes, result.seconds,
                           state.get("max_error", float("inf")), tolerance)
    if verbose:
        print(check)
    return check


def _probe_shape(module, num_heads, batch, tokens, state):
    name = "projections found, output (B, N, dim)"
    try:
        layout = _layout(module)
    except (ValueError, RuntimeError) as err:   # RuntimeError: projections of mismatched sizes
        return fail(name, "attention.layout", str(err))
    dim = layout.qkv_weight.shape[1]
    x = torch.randn(batch, tokens, dim)
    state.update(layout=layout, x=x, dim=dim)
    out = _output(module, x)
    if not torch.is_tensor(out) or out.shape != x.shape or not out.is_floating_point():
        got = f"{tuple(out.shape)} {out.dtype}" if torch.is_tensor(out) else type(out).__name__
        return fail(name, "attention.shape", f"input {tuple(x.shape)}: expected output {tuple(x.shape)} float, "
                                             f"got {got}")
    state["out"] = out.float()
    if layout.proj is None:
        return fail(name, "attention.no_output_projection", "no nn.Linear named proj or out in the module")
    return ok(name)


def _probe_eval_dropout(module, state):
    name = "no randomness in eval mode"
    again = _output(module, state["x"]).float()
    diff = (again - state["out"]).abs().max().item()
    if diff > 0:
        return fail(name, "attention.dropout_in_eval", f"two calls on the same input in eval mode differ by {diff:.2e}")
    return ok(name)


def _probe_exact(module, num_heads, tolerance, state):
    name = "equals torch.nn.MultiheadAttention"
    layout, x, out = state["layout"], state["x"], state["out"]
    with torch.no_grad():
        want, _ = copy_into_torch_mha(module, num_heads)(x, x, x, need_weights=False)
        err = (out - want).abs().max().item()
        state["max_error"] = err
        detail = (f"max |yours - torch.nn.MultiheadAttention| = {err:.2e} (tolerance {tolerance:.0e}; dim "
                  f"{state['dim']}, {num_heads} heads)")
        if err <= tolerance:
            return ok(name, detail)
        for ids, kwargs, heads in _variants(layout, num_heads, state["dim"]):
            if not ids:
                continue
            if (explicit_attention(x, layout, heads, **kwargs) - out).abs().max().item() <= max(tolerance, 1e-5):
                if heads != num_heads:
                    detail += f"\nyour output is reproduced by the explicit math with {heads} heads"
                return [fail(name, i, detail) for i in ids]
    return fail(name, "attention.wrong_output", detail)


# ----------------------------------------------------------------------------- the student's class in the real model

def _copy_linear(target: nn.Linear, weight: torch.Tensor, bias: torch.Tensor, what: str) -> None:
    """``target`` := (weight, bias); a target without bias takes only a zero bias."""
    if target.weight.shape != weight.shape:
        raise ValueError(f"load_attention_weights: {what} is {tuple(target.weight.shape)}, "
                         f"the weights to load are {tuple(weight.shape)}")
    if target.bias is None and bool(bias.any()):
        raise ValueError(f"load_attention_weights: {what} has no bias (bias=False), the weights to load have one")
    target.weight.copy_(weight)
    if target.bias is not None:
        target.bias.copy_(bias)


@torch.no_grad()
def load_attention_weights(module: nn.Module, source: nn.Module) -> nn.Module:
    """Copy the projections of the attention module ``source`` into ``module`` (either layout the
    checker reads: fused ``qkv`` rows [q | k | v], or ``query``/``key``/``value``; ``proj`` or
    ``out``); returns ``module``. A ValueError when a layer is missing or of another size."""
    src, (layers, out) = _layout(source), _projections(module)
    if src.proj is None or out is None:
        raise ValueError("load_attention_weights: both modules need an output projection named 'proj' or 'out'")
    names = ("qkv",) if len(layers) == 1 else ("query", "key", "value")
    rows = src.qkv_weight.shape[0] // len(layers)                  # fused: all 3*dim rows; else dim each
    for i, (layer, name) in enumerate(zip(layers, names)):
        part = slice(i * rows, (i + 1) * rows)                     # rows [q | k | v]
        _copy_linear(layer, src.qkv_weight[part], src.qkv_bias[part], name)
    _copy_linear(out, src.proj.weight.detach(), _bias(src.proj).detach(), "proj")
    return module


def _no_return_attention(module: nn.Module, args: tuple, kwargs: dict):
    """Forward pre-hook: a block calls ``Attention(x, return_attention=...)``; a module whose
    ``forward(x)`` has no such argument gets ``x`` alone (and cannot give attention weights)."""
    if kwargs.pop("return_attention", False):
        raise ValueError(f"{type(module).__name__}.forward returns no attention weights: ask the original "
                         "transformer for them (return_attention=True)")
    return args, kwargs


def _output_only(module: nn.Module, args: tuple, output):
    """Forward hook: a ``forward(x)`` that returns (output, weights) gives the block its output."""
    return output[0] if isinstance(output, tuple) else output


def _takes_return_attention(module: nn.Module) -> bool:
    params = inspect.signature(module.forward).parameters.values()
    return any(p.name == "return_attention" or p.kind is p.VAR_KEYWORD for p in params)


def with_attention(transformer: nn.Module, attention_cls, seed: int = 0) -> nn.Module:
    """A copy of labcore's ``BidirectionalTransformer`` in which each block's attention is
    ``attention_cls(dim, num_heads, attn_drop)`` (the course's signature; the numbers are the
    transformer's config) holding that block's weights, on the same device, in the same train/eval
    mode. ``transformer`` itself is left as it was, and so is the caller's random stream (the new
    modules are built under ``seed``). With a correct class the copy gives the original's logits up
    to float error: the class's own ``forward`` now runs inside the real model. The copy cannot
    return attention weights unless the class's ``forward`` takes ``return_attention``."""
    cfg = transformer.config
    new = copy.deepcopy(transformer)
    for block in new.blocks:
        old = block.Attention
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yours = attention_cls(cfg.dim, cfg.num_heads, cfg.attn_drop)
        load_attention_weights(yours, old)
        like = next(old.parameters())
        yours.to(device=like.device, dtype=like.dtype).train(old.training)
        if not _takes_return_attention(yours):   # forward(x): the block's call is adapted to it
            yours.register_forward_pre_hook(_no_return_attention, with_kwargs=True)
            yours.register_forward_hook(_output_only)
        block.Attention = yours
    return new


__all__ = ["AttentionCheck", "check_attention", "copy_into_torch_mha", "explicit_attention", "load_attention_weights",
           "with_attention"]
