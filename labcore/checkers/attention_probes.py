"""Exercise 2's checker, running the student's module: watched calls (inputs changed in place,
labcore's attention reached at run time), the type of what comes back, the gradients, and the
training-mode probe (is the dropout the one on the attention weights?).

In training mode, dropout on the weights makes each head's output (before W_O)

    out_h[i] = sum_j c_ij v_j,   c_ij = 0 (dropped) or w_ij / (1 - p) (kept),   w = softmax(q k^T / sqrt(d_k))

With at most d_k tokens the values v_j of a head are linearly independent, so the c_ij can be
read back from the output: the probe undoes W_O, solves for c by least squares and checks that
every c_ij is 0 or w_ij / (1 - p), and that about a share p of them is 0. Dropout anywhere else
(on q, k, v, the scores, the output), at another rate or without the 1 / (1 - p) fails it.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from labcore.checkers import attention_weights as _weights
from labcore.checkers.attention_weights import Layout, bias, copy_into_torch_mha
from labcore.checkers.ownership import Watch
from labcore.checkers.report import Finding, call, changed, describe, fail, ok, snapshot


def _coefficients(x, out, lay: Layout, heads: int):
    """(c, w, residual): the weights c that make ``out`` from the values, the eval weights w,
    each (B, H, n, n) in float64, and how far c @ v is from the output (0 when it fits)."""
    B, n, C = x.shape
    d = C // heads
    w_o, b_o = lay.proj.weight.double(), bias(lay.proj).double()              # (C, C), (C,)
    pre = torch.linalg.solve(w_o, (out.double() - b_o).transpose(-2, -1))      # (B, C, n): W_O undone
    pre = pre.transpose(-2, -1).reshape(B, n, heads, d).transpose(1, 2)        # (B, H, n, d)
    qkv = F.linear(x.double(), lay.qkv_weight.double(), lay.qkv_bias.double())  # (B, n, 3C)
    q, k, v = (t.reshape(B, n, heads, d).transpose(1, 2) for t in qkv.chunk(3, dim=-1))  # each (B, H, n, d)
    w = (q @ k.transpose(-2, -1) / math.sqrt(d)).softmax(dim=-1)               # (B, H, n, n)
    c = torch.linalg.lstsq(v.transpose(-2, -1), pre.transpose(-2, -1)).solution.transpose(-2, -1)  # (B, H, n, n)
    return c, w, (c @ v - pre).abs().max().item()


def train_dropout_finding(x, out, lay: Layout, heads: int, p: float, tol: float = 2e-3) -> Finding:
    """The finding of the training-mode output ``out`` of ``x`` (B, n, dim), n <= d_k, with
    attention dropout of rate ``p``: ok when it is dropout on the attention weights."""
    c, w, residual = _coefficients(x, out, lay, heads)
    eval_like = (c - w).abs().max().item() <= tol and residual <= tol
    if eval_like:
        return fail("attention.no_dropout", f"in training mode (attn_drop = {p}) the output is the eval-mode "
                    "output: no attention weight was dropped")
    kept = (c - w / (1 - p)).abs() <= tol                                      # (B, H, n, n)
    dropped = c.abs() <= tol                                                   # (B, H, n, n)
    if residual > tol or not bool((kept | dropped).all()):
        return fail("attention.dropout_misplaced", "in training mode your output is not the eval-mode "
                    "attention with each weight either zeroed or divided by (1 - attn_drop): the dropout is "
                    "elsewhere (q, k, v, the scores, the output) or not rescaled")
    sure = kept ^ dropped                                                      # (B, H, n, n): tiny weights left out
    rate = (dropped & sure).sum().item() / max(1, sure.sum().item())
    spread = 5 * math.sqrt(p * (1 - p) / max(1, sure.sum().item())) + 0.02
    if abs(rate - p) > spread:
        return fail("attention.dropout_misplaced", f"{rate:.0%} of the attention weights were dropped, "
                    f"attn_drop = {p:.0%}: the dropout's rate is not the constructor's attn_drop")
    return ok(f"{rate:.0%} of the attention weights dropped (attn_drop = {p}), the others divided by {1 - p}")


# ----------------------------------------------------------------------------- running the student's module

def forward(state: dict, module: nn.Module, x: torch.Tensor, grad: bool = False):
    """``module(x)`` (its output when it returns (output, weights)), watched: an input or a
    weight it changed in place is noted in ``state["moved"]``, labcore code it ran in ``reached``."""
    params = dict(call(module.named_parameters))
    before = snapshot(x, *params.values())
    try:
        with Watch("attention") as watch, torch.set_grad_enabled(grad):   # labcore's or torch's attention ran?
            out = call(module, x)
    finally:                                                              # even when it raised inside it
        state["reached"] += watch.ran
    names = ["x", *(f"self.{n}" for n in params)]
    state["moved"] += [names[i] for i in changed(before, x, *params.values()) if names[i] not in state["moved"]]
    return out[0] if isinstance(out, tuple) and out else out


def drain(state: dict) -> list:
    """A mutates_input finding for what the calls since the last one changed in place."""
    new = state["moved"][state["reported"]:]
    state["reported"] = len(state["moved"])
    if not new:
        return []
    return [fail("attention.mutates_input", f"your forward changed {', '.join(new)} in place (x += ..., "
                 "x.mul_(...), an edit of .data): x and the weights must come out as they went in")]


def type_finding(out, x: torch.Tensor):
    """None when ``out`` is a tensor of x's shape and dtype, else the finding that says what is off."""
    if not torch.is_tensor(out):
        return fail("attention.not_a_tensor", f"forward returned a {describe(out)}; labcore's transformer adds "
                    f"it to x, so it needs a torch tensor {tuple(x.shape)} (or a tuple (output, weights))")
    if out.shape != x.shape:
        return fail("attention.shape", f"input {tuple(x.shape)}: expected output {tuple(x.shape)}, "
                                       f"got {describe(out)}")
    if out.dtype != x.dtype:
        return fail("attention.dtype", f"input {describe(x)}: got output {describe(out)}; the next layer of "
                                       "the transformer needs x's dtype (else 'mixed dtype' errors)")
    return None


def probe_gradient(state):
    module = state["module"]
    if "x" in state["moved"]:
        return ["the gradients were not checked: your forward changes x in place"]
    params = [p for p in call(module.parameters)]
    saved = [p.grad for p in params]
    try:
        for p in params:
            p.grad = None
        return _gradient_findings(state) + drain(state)
    finally:
        for p, g in zip(params, saved):
            p.grad = g


def _gradient_findings(state: dict) -> list:
    module, x0 = state["module"], state["x"]
    x = x0.clone().requires_grad_(True)                                        # (B, N, dim)
    out = forward(state, module, x, grad=True)
    if type_finding(out, x0) is not None:
        return []
    if not out.requires_grad:
        return [fail("attention.no_gradient", "the output has no gradient (grad_fn None)")]
    r = torch.randn_like(out)                                                  # (B, N, dim)
    call((out * r).sum().backward)
    layers, proj = _weights.projections(module)
    named = {"x": x.grad}
    if state.get("exact"):   # a right output uses every layer: each must get its gradient
        named.update({f"self.{n}.weight": layer.weight.grad for n, layer in zip(_layer_names(layers), layers)},
                     **{"the output projection's weight": proj.weight.grad})
    missing = [n for n, g in named.items() if g is None or not bool(g.abs().sum() > 0)]
    if missing:
        return [fail("attention.no_gradient", f"no gradient reaches {', '.join(missing)} (detached, "
                                              "computed under no_grad, through .data or through numpy)")]
    if not state.get("exact"):
        return [ok()]
    ref, xr = copy_into_torch_mha(module, state["heads"]), x0.clone().requires_grad_(True)
    (ref(xr, xr, xr, need_weights=False)[0] * r).sum().backward()
    ours = [x.grad, torch.cat([layer.weight.grad for layer in layers]), proj.weight.grad]
    theirs = [xr.grad, ref.in_proj_weight.grad, ref.out_proj.weight.grad]
    err = max((a - b).abs().max().item() for a, b in zip(ours, theirs))
    if err > 1e-4:
        return [fail("attention.no_gradient", f"gradients differ from torch's by {err:.2e}")]
    return [ok(f"max gradient difference {err:.1e}")]


def _layer_names(layers) -> list[str]:
    return ["qkv"] if len(layers) == 1 else ["query", "key", "value"]


def probe_train(state):
    if not state.get("exact") or state["p"] <= 0:
        return ["dropout in training mode not checked" + ("" if state.get("exact") else ": fix the output first")]
    module, d = state["module"], state["dim"] // state["heads"]
    x = state["x"][:, :min(state["tokens"], d)]                                # (B, n, dim), n <= d_k
    call(module.train)
    try:
        out = forward(state, module, x.clone())
    finally:
        call(module.eval)
    bad = type_finding(out, x)
    found = [bad] if bad is not None else [train_dropout_finding(x, out, state["layout"], state["heads"],
                                                                  state["p"])]
    return found + drain(state)
