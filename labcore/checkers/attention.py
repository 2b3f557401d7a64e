"""Checker of exercise 2, multi-head self-attention (Vaswani et al. 2017).

What the student writes (the course's naming; ``labcore.course_format`` loads either layout)::

    class MultiHeadAttention(nn.Module):
        def __init__(self, dim, num_heads, attn_drop): ...
            # fused: self.qkv = nn.Linear(dim, 3 * dim)  (rows [all q | all k | all v])
            # or:    self.query, self.key, self.value = nn.Linear(dim, dim) x 3
            # and:   self.proj (or self.out) = nn.Linear(dim, dim)
        def forward(self, x):            # x (B, N, dim) -> (B, N, dim), or (output, weights)

``check_attention(MultiHeadAttention)`` (the class: it builds ``cls(32, 4, 0.5)``, and
``cls(36, 6, 0.1)`` in float64 to see hard-coded sizes) or ``check_attention(module)`` (an
instance, with ``.num_heads`` or ``num_heads=``). Inputs have B != N != d_k != H, so no shape
coincidence hides a swapped axis.

The reference is ``torch.nn.MultiheadAttention`` holding the same weights, in eval mode: equal
up to float error, in the input's dtype. When they differ, the output is matched against the
explicit math with the classic mistakes switched on (``_SWITCHES``: the q/k/v split, the scale,
a causal mask, the softmax axis, the head split and merge, the output projection; another number
of heads), alone and combined: the variant that reproduces it names the mistakes. Then gradients
must reach x and the weights, and in training mode the output must be the eval one with each
attention weight dropped (rate attn_drop) or divided by 1 - attn_drop: dropout on the weights.
x and the module's weights must be left as they were after every call.

The student's own work: a class that builds on, calls or holds labcore's ``MultiHeadAttention``,
``torch.nn.MultiheadAttention`` (or ``F.multi_head_attention_forward``) or this checker's math is
``attention.uses_reference`` (seen in its code, in its submodules, and by watching those calls
while it runs). ``F.scaled_dot_product_attention`` is ALLOWED: a torch primitive for the
softmax(QK^T/sqrt(d_k))V of one head, not the exercise (splitting, merging and W_O remain yours).

Once it passes, ``with_attention(transformer, MultiHeadAttention)`` puts the student's class into
a copy of labcore's ``BidirectionalTransformer`` (``labcore.checkers.attention_weights``).
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import torch
import torch.nn as nn

from labcore import attention as lab
from labcore.checkers.attention_math import compare, explicit_attention
from labcore.checkers.attention_probes import drain, forward, probe_gradient, probe_train, type_finding
from labcore.checkers.attention_weights import copy_into_torch_mha, layout, load_attention_weights, with_attention
from labcore.checkers.fallback import record
from labcore.checkers.report import (CheckResult, Finding, StudentError, accepts, call, describe, fail, ok, run_probes,
                                     uses_reference)

DIM, HEADS, DROP = 32, 4, 0.5          # the module built when a class is given: d_k = 8
DIM_B, HEADS_B, DROP_B = 36, 6, 0.1    # the second one, run in float64: d_k = 6
BATCH_B, TOKENS_B = 2, 5


# ----------------------------------------------------------------------------- the checker

@dataclass(repr=False)
class AttentionCheck(CheckResult):
    max_error: float = float("inf")   # max |yours - torch.nn.MultiheadAttention| (dim 32, float32)
    tolerance: float = 1e-5


def _heads_of(module) -> int | None:
    for attr in ("num_heads", "n_heads", "n_head", "heads"):
        value = getattr(module, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _dropout_rate(module: nn.Module) -> float:
    """The rate of the module's attention dropout (0 when none is found)."""
    drop = getattr(module, "attn_drop", None)
    if isinstance(drop, (int, float)) and not isinstance(drop, bool):
        return float(drop)
    drops = [drop] if isinstance(drop, nn.Dropout) else [m for m in module.modules() if isinstance(m, nn.Dropout)]
    return float(drops[0].p) if drops else 0.0


def check_attention(module: nn.Module | type, num_heads: int | None = None, batch: int = 3, tokens: int = 7,
                    tolerance: float = 1e-5, seed: int = 0, verbose: bool = False) -> AttentionCheck:
    """Check a multi-head self-attention module (an instance, or the class: it is built as
    ``cls(32, 4, 0.5)``) against ``torch.nn.MultiheadAttention`` with the same weights, in eval
    mode, on a random (batch, tokens, dim) input, then at another size in float64, its gradients
    and its dropout. Returns an ``AttentionCheck`` (truthy when it passed; ``str()`` is the
    report; ``verbose=True`` also prints it). Recorded as ``MultiHeadAttention``."""
    if isinstance(module, nn.Module) and num_heads is None and _heads_of(module) is None:
        raise ValueError("check_attention: pass num_heads= (the module has no .num_heads attribute)")
    state = {"given": module, "num_heads": num_heads, "batch": batch, "tokens": tokens, "tol": tolerance,
             "reached": [], "moved": [], "reported": 0}
    probes = [("builds; projections found; output (B, N, dim) in x's dtype", lambda: _probe_shape(state)),
              ("no randomness in eval mode", lambda: _probe_eval_dropout(state)),
              ("x and the module's weights left as they were", lambda: drain(state) or ok()),
              ("equals torch.nn.MultiheadAttention", lambda: _probe_exact(state)),
              (f"another size: dim {DIM_B}, {HEADS_B} heads, float64", lambda: _probe_other_size(state)),
              ("gradients reach x and the weights", lambda: probe_gradient(state)),
              ("dropout on the attention weights in training mode", lambda: probe_train(state))]
    try:
        probed = run_probes("check_attention", probes, "attention.error", seed, own=module)
    finally:
        if "was_training" in state:
            with contextlib.suppress(Exception):
                module.train(state["was_training"])
    findings, notes = probed.findings, probed.notes
    if state["reached"]:                    # labcore's attention ran inside: nothing else counts
        reached = ", ".join(dict.fromkeys(state["reached"]))
        findings, notes = [uses_reference("attention", "your code runs " + reached)], []
    result = AttentionCheck(probed.checker, findings, notes, probed.seconds, state.get("max_error", float("inf")),
                            tolerance)
    record("MultiHeadAttention", module, result)
    if verbose:
        print(result)
    return result


def _build(state: dict, cls: type, dim: int, heads: int, drop: float):
    """``cls(dim, heads, drop)``, or the finding (labelled "builds") that says the course's signature
    does not fit."""
    if not accepts(cls, dim, heads, drop):
        return fail("attention.signature", f"{cls.__name__}({dim}, {heads}, {drop}) does not fit its "
                    "__init__: labcore's transformer builds MultiHeadAttention(dim, num_heads, attn_drop)",
                    label="builds")
    module = call(cls, dim, heads, drop)
    if not isinstance(module, nn.Module):
        return fail("attention.layout", f"{cls.__name__}(...) built a {describe(module)}, not an nn.Module",
                    label="builds")
    answers = (lab.MultiHeadAttention, nn.MultiheadAttention)
    held = [type(m).__name__ for m in module.modules() if isinstance(m, answers)]
    state["reached"] += [f"{name} (held as a submodule)" for name in held]
    return module


def _probe_shape(state):
    given = state["given"]
    if isinstance(given, type):
        module, heads, p = _build(state, given, DIM, HEADS, DROP), state["num_heads"] or HEADS, DROP
    elif not isinstance(given, nn.Module):
        return fail("attention.signature", f"check_attention takes your class (or an instance of it); got a "
                                           f"{describe(given)}")
    else:
        module, heads = given, state["num_heads"] or _heads_of(given)
        state["was_training"], p = given.training, _dropout_rate(given)
    if isinstance(module, Finding):
        return module
    call(module.eval)
    try:
        lay = layout(module)
    except ValueError as err:
        return fail("attention.layout", str(err))
    dim = lay.qkv_weight.shape[1]
    if dim % heads:
        return fail("attention.layout", f"dim {dim} cannot be split into {heads} heads")
    x = torch.randn(state["batch"], state["tokens"], dim, dtype=lay.qkv_weight.dtype)   # (B, N, dim)
    out = forward(state, module, x.clone())
    state.update(module=module, heads=heads, p=p, layout=lay, x=x, dim=dim)
    bad = type_finding(out, x)
    if bad is not None:
        return bad
    state["out"] = out
    if lay.proj is None:
        return fail("attention.no_output_projection", "no nn.Linear named proj or out in the module")
    return ok(f"input {describe(x)} -> output {describe(out)}")


def _probe_eval_dropout(state):
    again = forward(state, state["module"], state["x"].clone())
    bad = type_finding(again, state["x"])
    if bad is not None:
        return bad
    if not torch.allclose(again, state["out"], rtol=0, atol=0, equal_nan=True):
        state["random"] = True
        diff = (again - state["out"]).abs().max().item()
        return fail("attention.dropout_in_eval", f"two calls on the same input in eval mode differ by {diff:.2e}")
    return ok()


def _probe_exact(state):
    if state.get("random"):
        return ["not compared with torch.nn.MultiheadAttention: your output is random in eval mode"]
    found = compare(state["module"], state["heads"], state["x"], state["out"], state["tol"])
    state["exact"] = all(f.ok for f in found)
    with torch.no_grad():
        want = copy_into_torch_mha(state["module"], state["heads"])(*[state["x"]] * 3, need_weights=False)[0]
    state["max_error"] = (state["out"] - want).abs().max().item()
    return found


def _probe_other_size(state):
    given = state["given"]
    try:
        if isinstance(given, type):
            other, heads = _build(state, given, DIM_B, HEADS_B, DROP_B), HEADS_B
            if isinstance(other, Finding):
                return [other]
        else:
            other, heads = call(copy.deepcopy, given), state["heads"]
        call(other.double)
        call(other.eval)
        lay = layout(other)
        x = torch.randn(BATCH_B, TOKENS_B, lay.qkv_weight.shape[1], dtype=torch.float64)   # (B, N, dim)
        out = forward(state, other, x.clone())
    except (StudentError, ValueError) as err:
        why = "attention.error" if isinstance(err, StudentError) else "attention.layout"
        return [fail(why, str(err)), *_why_other_size_fails(state)] + drain(state)
    bad = type_finding(out, x)
    if bad is None and state.get("random"):
        return ["not compared with torch.nn.MultiheadAttention at the other size: your output is random"]
    found = [bad] if bad is not None else compare(other, heads, x, out, state["tol"])
    return found + drain(state)


def _why_other_size_fails(state: dict) -> list:
    """When the module is right at the first size but raises at the second, in float64: is it
    the dtype (it runs at that size in float32) or a hard-coded size?"""
    if not state.get("exact"):
        return []
    try:
        given = state["given"]
        other = call(given, DIM_B, HEADS_B, DROP_B) if isinstance(given, type) else call(copy.deepcopy, given)
        call(other.eval)
        forward(state, other, torch.randn(BATCH_B, TOKENS_B, layout(other).qkv_weight.shape[1]))
    except Exception:  # noqa: BLE001 - it fails in float32 too: a size
        return [fail("attention.num_heads", f"right with dim {DIM}, {HEADS} heads, but not with dim "
                     f"{DIM_B}, {HEADS_B} heads: a size or a head count is hard-coded")]
    return [fail("attention.dtype", "runs in float32 but raises in float64: a dtype is hard-coded")]


__all__ = ["AttentionCheck", "check_attention", "copy_into_torch_mha", "explicit_attention", "load_attention_weights",
           "with_attention"]
