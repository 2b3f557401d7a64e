"""Checker of the second half of exercise 4: ``masked_loss(logits, targets, masked)``, the
cross-entropy of the masked tokens averaged over them (``labcore.checkers.masking``).

The logits come as a model's output would (a non-leaf tensor that requires grad), of a shape
where B, N and K + 1 all differ, so that no axis can be mistaken for another without showing.
The checker judges the type (a 0-d tensor with a gradient), the inputs (left as they came), one
``loss.backward()`` (it must run, and give the logits the gradient of the value returned), and the
value, matched against the classic slips: all tokens, the known ones, a sum, another count as the
denominator, the log-softmax over another axis, no log-softmax at all.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
import torch.nn.functional as F

from labcore.checkers.fallback import record
from labcore.checkers.masking import K
from labcore.checkers.ownership import Watch
from labcore.checkers.report import (CheckResult, call, describe, fail, ok, run_probes, snapshot, unchanged,
                                     uses_reference)

BL, NL = 3, 10                 # images, tokens per image: B, N and K + 1 = 9 all differ


def _nll(logp: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-logp at the targets: logp (B, N, C), targets (B, N) -> (B, N)."""
    return -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)                      # (B, N)


def _candidates(t: torch.Tensor, m: torch.Tensor) -> list[tuple[str | None, str, object]]:
    """(mistake id or None when right, what it computes, a function of the logits (B, N, K+1))."""
    per = lambda lg: F.cross_entropy(lg.transpose(1, 2), t, reduction="none")       # noqa: E731 - (B, N)
    total = lambda lg: per(lg)[m].sum()                                              # noqa: E731
    return [
        (None, "the mean over the masked tokens", lambda lg: per(lg)[m].mean()),
        (None, "the mean over the masked tokens, K codes only", lambda lg: F.cross_entropy(lg[..., :K][m], t[m])),
        (None, "the mean of each image's mean",
         lambda lg: torch.stack([per(lg)[b][m[b]].mean() for b in range(BL)]).mean()),
        ("masking.loss_all_tokens", "the mean over all tokens", lambda lg: per(lg).mean()),
        ("masking.loss_on_known", "the mean over the known tokens", lambda lg: per(lg)[~m].mean()),
        ("masking.loss_sum", "the sum over the masked tokens", total),
        ("masking.loss_denominator", "the masked sum / (B * N)", lambda lg: total(lg) / (BL * NL)),
        ("masking.loss_denominator", "the masked sum / N", lambda lg: total(lg) / NL),
        ("masking.loss_denominator", "the masked sum / B", lambda lg: total(lg) / BL),
        *[("masking.loss_axis", f"log-softmax over dim {d}, {how}",
           lambda lg, d=d, sel=sel: sel(_nll(lg.log_softmax(d), t)))
          for d in (0, 1) for how, sel in (("masked mean", lambda x: x[m].mean()), ("mean", lambda x: x.mean()))],
        ("masking.loss_not_log_probs", "-logits at the targets", lambda lg: _nll(lg, t)[m].mean()),
        ("masking.loss_not_log_probs", "-softmax at the targets", lambda lg: _nll(lg.softmax(-1), t)[m].mean()),
    ]


def check_masked_loss(masked_loss, seed: int = 0) -> CheckResult:
    """Check ``masked_loss(logits, targets, masked)``; ``str()`` of the result is the report."""
    state: dict = {}

    def setup():
        logits = torch.randn(BL, NL, K + 1) * 2                                      # (B, N, K+1)
        targets = torch.randint(0, K, (BL, NL))                                      # (B, N)
        masked = torch.rand(BL, NL) < torch.tensor([[0.2], [0.5], [0.8]])           # (B, N) other counts per image
        masked[:, 0], masked[:, -1] = True, False                                    # 1 .. N-1 masked per image
        state.update(logits=logits, targets=targets, masked=masked, candidates=_candidates(targets, masked))

    probes = [("masked_loss returns a 0-d tensor with a gradient", lambda: _probe_type(masked_loss, state)),
              ("logits, targets and masked are left unchanged", lambda: unchanged(
                  "masking.mutates_input", state["before"], state["given"], ("logits", "targets", "masked"))),
              ("loss.backward() runs once and reaches the logits", lambda: _probe_backward(state)),
              ("cross-entropy of the masked tokens, averaged over them", lambda: _probe_value(state))]
    result = run_probes("check_masked_loss", probes, "masking.error", seed, setup, own=masked_loss)
    return record("masked_loss", masked_loss, result)


def _probe_type(masked_loss, state):
    leaf = state["logits"].clone().requires_grad_(True)                              # (B, N, K+1)
    given = (leaf * 1.0, state["targets"].clone(), state["masked"].clone())          # a model's output: not a leaf
    state.update(leaf=leaf, given=given, before=snapshot(*given))
    with Watch("masking") as watch:
        loss = call(masked_loss, *given)
    if watch.ran:
        return uses_reference("masking", "your masked_loss runs labcore's " + ", ".join(dict.fromkeys(watch.ran)))
    state["loss"] = loss
    if not torch.is_tensor(loss):
        numeric = isinstance(loss, (numbers.Number, np.ndarray, np.generic))
        return fail("masking.loss_detached" if numeric else "masking.loss_not_scalar",
                    f"expected a 0-d tensor, got {describe(loss)}")
    if loss.dim() != 0:
        return fail("masking.loss_not_scalar", f"expected a 0-d tensor, got {describe(loss)}")
    if not loss.requires_grad:
        return fail("masking.loss_detached", "loss.requires_grad is False for logits that require grad")
    return ok()


def _probe_backward(state):
    try:
        state["loss"].backward()
    except Exception as err:  # noqa: BLE001 - the student's graph broke: an in-place edit, a second backward
        return fail("masking.loss_backward", f"loss.backward() raised {type(err).__name__}: "
                                             f"{str(err).splitlines()[0][:200]}")
    grad = state["leaf"].grad
    if grad is None or not bool(grad.ne(0).any()):
        return fail("masking.loss_detached", "loss.backward() gives the logits no gradient: the loss is not "
                                             "computed from them by torch operations")
    state["grad"] = grad.detach().clone()                                            # (B, N, K+1)
    return ok()


def _gradient(fn, logits: torch.Tensor) -> torch.Tensor:
    leaf = logits.clone().requires_grad_(True)                                       # (B, N, K+1)
    fn(leaf).backward()
    return leaf.grad                                                                 # (B, N, K+1)


def _probe_value(state):
    logits, masked, value = state["logits"], state["masked"], float(state["loss"].detach())
    with torch.no_grad():
        values = [(i, what, fn, float(fn(logits))) for i, what, fn in state["candidates"]]  # each candidate's value
    detail = (f"{int(masked.sum())} of {masked.numel()} tokens masked: expected {values[0][3]:.4f}, got {value:.4f}")
    match = next((c for c in values if abs(value - c[3]) <= 1e-4 * max(1.0, abs(c[3]))), None)
    if match is not None and match[0] is not None:
        return fail(match[0], detail + f" ({match[1]})")
    grad = state.get("grad")
    if match is not None:
        if grad is None:
            return ok(detail)
        want = _gradient(match[2], logits)                                           # (B, N, K+1)
        if torch.allclose(grad, want, rtol=1e-4, atol=1e-7):
            return ok(detail)
        times = float((grad * want).sum() / (want * want).sum().clamp(min=1e-30))
        return fail("masking.loss_backward", f"the logits' gradient is {times:.2f} times the gradient of the "
                                             "loss returned" + (": backward() already ran inside masked_loss"
                                                                if abs(times - 2) < 1e-3 else ""))
    if grad is not None:
        moves = grad.abs().sum(-1) > 0                                               # (B, N) which logits count
        if bool(moves[~masked].any() and moves[masked].any()):
            return fail("masking.loss_all_tokens", detail + "\n(the loss changes with the logits of known tokens)")
        if bool(moves[~masked].any()):
            return fail("masking.loss_on_known", detail + "\n(only the known tokens' logits count)")
    return fail("masking.loss_wrong", detail)
