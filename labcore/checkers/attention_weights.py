"""The weights of an attention module, read and written whatever its layout (exercise 2).

A student's ``MultiHeadAttention`` names its projections either ``qkv`` (fused, rows
[all q | all k | all v]) or ``query``/``key``/``value`` (or ``q``/``k``/``v``), and ``proj`` (or
``out``/``out_proj``), all ``nn.Linear`` (a missing bias counts as zeros). ``copy_into_torch_mha``
builds the ``torch.nn.MultiheadAttention`` that the checker compares with;
``load_attention_weights`` and ``with_attention`` put the student's class into labcore's
transformer (notebook 01: the same predictions).
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass

import torch
import torch.nn as nn

_IN_NAMES = (("qkv",), ("query", "q"), ("key", "k"), ("value", "v"))
_OUT_NAMES = ("proj", "out", "out_proj")
@dataclass
class Layout:
    qkv_weight: torch.Tensor        # (3*dim, dim), rows [q | k | v]
    qkv_bias: torch.Tensor          # (3*dim,)
    proj: nn.Linear | None          # the output projection, None when the module has none


def _linear(module: nn.Module, names: tuple[str, ...]) -> nn.Linear | None:
    for name in names:
        layer = getattr(module, name, None)
        if isinstance(layer, nn.Linear):
            return layer
    return None


def bias(layer: nn.Linear) -> torch.Tensor:
    """The layer's bias, zeros for ``bias=False`` (the same map as a zero bias)."""
    return layer.bias if layer.bias is not None else torch.zeros_like(layer.weight[:, 0])


def _children(module: nn.Module) -> str:
    return ", ".join(f"{n} ({type(c).__name__})" for n, c in module.named_children()) or "none"


def projections(module: nn.Module, sizes: bool = True) -> tuple[list[nn.Linear], nn.Linear | None]:
    """The input projections of ``module``, ``[qkv]`` (fused) or ``[query, key, value]``, and its
    output projection (None when it has none); a ValueError when the input projections are not
    there or (``sizes``) their sizes do not fit together."""
    fused = _linear(module, _IN_NAMES[0])
    separate = [_linear(module, names) for names in _IN_NAMES[1:]]
    if fused is None and None in separate:
        raise ValueError("expected nn.Linear layers named 'qkv' (or 'query'/'key'/'value') and 'proj' (or 'out'); "
                         f"this module has children: {_children(module)}")
    layers, out = ([fused] if fused is not None else separate), _linear(module, _OUT_NAMES)
    if not sizes:
        return layers, out
    dim = layers[0].in_features
    want = [(3 * dim, dim)] if fused is not None else [(dim, dim)] * 3
    got = [tuple(layer.weight.shape[::-1]) for layer in layers]           # (in, out) of each layer
    if got != [w[::-1] for w in want] or (out is not None and tuple(out.weight.shape) != (dim, dim)):
        sizes = ", ".join(f"{i} -> {o}" for i, o in got) + (f"; output {out.in_features} -> {out.out_features}"
                                                              if out is not None else "")
        raise ValueError(f"projections of unexpected sizes: input {sizes}; with dim = {dim} the course needs "
                         f"{'dim -> 3*dim' if fused is not None else 'dim -> dim each'} and dim -> dim")
    return layers, out


def layout(module: nn.Module) -> Layout:
    """The projections of ``module`` (``projections``), detached: a missing bias counts as zeros."""
    layers, out = projections(module)
    weight = torch.cat([layer.weight for layer in layers]).detach()       # (3*dim, dim)
    return Layout(weight, torch.cat([bias(layer) for layer in layers]).detach(), out)


def copy_into_torch_mha(module: nn.Module, num_heads: int) -> nn.MultiheadAttention:
    """A ``torch.nn.MultiheadAttention`` (batch_first, eval mode, the module's dtype) holding the
    weights of ``module``; a ValueError when a projection is missing or of another size."""
    lay = layout(module)
    if lay.proj is None:
        raise ValueError("expected nn.Linear layers named 'qkv' (or 'query'/'key'/'value') and 'proj' (or 'out'); "
                         f"this module has children: {_children(module)}")
    dim = lay.proj.out_features
    if dim % num_heads:
        raise ValueError(f"dim {dim} cannot be split into {num_heads} heads")
    ref = nn.MultiheadAttention(dim, num_heads, dropout=0.0, bias=True, batch_first=True)
    ref = ref.to(lay.qkv_weight.dtype)
    with torch.no_grad():
        ref.in_proj_weight.copy_(lay.qkv_weight)
        ref.in_proj_bias.copy_(lay.qkv_bias)
        ref.out_proj.weight.copy_(lay.proj.weight)
        ref.out_proj.bias.copy_(bias(lay.proj))
    return ref.eval()


# ----------------------------------------------------------------------------- the student's class in the real model

def _copy_linear(target: nn.Linear, weight: torch.Tensor, b: torch.Tensor, what: str) -> None:
    """``target`` := (weight, b); a target without bias takes only a zero bias."""
    if target.weight.shape != weight.shape:
        raise ValueError(f"load_attention_weights: {what} is {tuple(target.weight.shape)}, "
                         f"the weights to load are {tuple(weight.shape)}")
    if target.bias is None and bool(b.any()):
        raise ValueError(f"load_attention_weights: {what} has no bias (bias=False), the weights to load have one")
    target.weight.copy_(weight)
    if target.bias is not None:
        target.bias.copy_(b)


@torch.no_grad()
def load_attention_weights(module: nn.Module, source: nn.Module) -> nn.Module:
    """Copy the projections of the attention module ``source`` into ``module`` (either layout:
    fused ``qkv`` rows [q | k | v], or ``query``/``key``/``value``; ``proj`` or ``out``); returns
    ``module``. A ValueError when a layer is missing or of another size."""
    src, (layers, out) = layout(source), projections(module, sizes=False)
    if src.proj is None or out is None:
        raise ValueError("load_attention_weights: both modules need an output projection named 'proj' or 'out'")
    names = ("qkv",) if len(layers) == 1 else ("query", "key", "value")
    rows = src.qkv_weight.shape[0] // len(layers)                  # fused: all 3*dim rows; else dim each
    for i, (layer, name) in enumerate(zip(layers, names)):
        part = slice(i * rows, (i + 1) * rows)                     # rows [q | k | v]
        _copy_linear(layer, src.qkv_weight[part], src.qkv_bias[part], name)
    _copy_linear(out, src.proj.weight.detach(), bias(src.proj).detach(), "proj")
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
