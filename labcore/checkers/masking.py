"""Checker of exercise 4, the masked training step (MVTM, Chang et al. 2022, section 3.1).

What the student writes, two functions that make up ``labcore.maskgit.mvtm_loss``::

    def mask_tokens(tokens, mask_token_id, gamma_fn, generator=None):
        # tokens (B, N) codebook ids in [0, K); mask_token_id = K; gamma_fn: r -> share to mask
        # per image: r ~ U(0, 1), mask ceil(gamma_fn(r) * N) random positions (at least 1)
        ...  # -> inputs (B, N) long (K where masked), masked (B, N) bool (True = replaced)

    def masked_loss(logits, targets, masked):
        # logits (B, N, K+1), targets (B, N) the original ids, masked (B, N) bool
        ...  # -> scalar: cross-entropy averaged over the masked tokens only

so that ``inputs, masked = mask_tokens(...); loss = masked_loss(transformer(inputs), tokens,
masked)`` is one training step's loss. Two functions, each with its own checker
(``check_mask_tokens`` and ``check_masking``, which runs both, in ``labcore.checkers.mask_probes``;
``check_masked_loss`` in ``labcore.checkers.masked_loss``) and its own record: a failed one falls
back to labcore's piece alone. This module holds what they share: the fixed cases and labcore's
reference.

The checker of ``mask_tokens`` judges properties, never labcore's random stream, with B != N:
gamma_fn is replaced by schedules that record the ratios they are given (one per image, r ~
U(0, 1)), so the count of every image is checked against ceil(gamma(r) N), for two schedules, and
by constants 0.3, 0 (at least one token) and 1 (all); the positions must be uniform and differ
between images; the same generator seed must give the same mask and another seed another one.

``reference_mask_tokens`` and ``reference_masked_loss`` are labcore's own two halves with these
signatures (what a notebook runs when the student's do not pass yet).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from labcore.checkers.ownership import Watch
from labcore.checkers.report import accepts, call, describe
from labcore.maskgit import mvtm_loss

K, B, N = 8, 24, 37            # codebook size (mask id K), images, tokens per image: B != N
SHARE = 0.3                    # the constant gamma: ceil(0.3 * 37) = ceil(11.1) = 12 tokens per image


class Schedule:
    """A gamma_fn given to the student's mask_tokens: ``formula`` on float64, the kind of r back (a
    float for a float, a tensor of r's dtype for a tensor, an array for an array); it records
    (ratios given, shares returned) of every call in ``calls``."""

    def __init__(self, formula, name: str):
        self.formula, self.name, self.calls = formula, name, []

    def __call__(self, r):
        x = torch.as_tensor(np.asarray(r.detach().cpu() if torch.is_tensor(r) else r), dtype=torch.float64)
        y = self.formula(x).clamp(0, 1)                                          # shape of r
        if torch.is_tensor(r):
            y = y.to(r.dtype) if r.is_floating_point() else y
        self.calls.append((x.flatten(), y.double().flatten()))
        if torch.is_tensor(r):
            return y.to(r.device)
        return y.numpy() if isinstance(r, np.ndarray) else float(y) if y.dim() == 0 else y.tolist()

    def seen(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(ratios (M,), shares (M,)) over all calls; empty when never called."""
        if not self.calls:
            return torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)
        return torch.cat([c[0] for c in self.calls]), torch.cat([c[1] for c in self.calls])


def constant(value: float) -> Schedule:
    return Schedule(lambda x: torch.full_like(x, value), f"gamma(r) = {value}")


# ----------------------------------------------------------------------------- labcore's reference

@torch.no_grad()
def reference_mask_tokens(tokens: torch.Tensor, mask_token_id: int, gamma_fn, generator=None):
    """labcore's masking with the exercise's signature: the mask ``labcore.maskgit.mvtm_loss``
    draws (the same draws from ``generator``), read off the input it hands the transformer.
    tokens (B, N) long in [0, K) -> inputs (B, N) long (K where masked), masked (B, N) bool."""
    seen = []

    def record_input(inputs):                                                   # stands in for the transformer
        seen.append(inputs)
        return torch.zeros(*inputs.shape, mask_token_id + 1, device=inputs.device)  # (B, N, K+1)

    mvtm_loss(record_input, tokens, mask_token_id, gamma_fn, generator=generator)
    inputs = seen[0].reshape(tokens.shape)                                      # (B, N)
    return inputs, inputs == mask_token_id


def reference_masked_loss(logits: torch.Tensor, targets: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """The loss of ``labcore.maskgit.mvtm_loss``: cross-entropy averaged over the masked tokens.
    logits (B, N, K+1), targets (B, N) long, masked (B, N) bool -> 0-d tensor."""
    return F.cross_entropy(logits[masked].float(), targets[masked])


# ----------------------------------------------------------------------------- mask_tokens

def _run(mask_tokens, state, gamma_fn, seed: int | None):
    """What mask_tokens returns for the check's tokens, with a generator seeded ``seed`` (None: no
    generator, torch's global stream): as the keyword ``generator``, else as the 4th argument;
    without one when the signature takes none. The signature decides, not a TypeError, so an error
    inside the function is reported as is. After every call: were the tokens changed, and did
    labcore's solution run?"""
    tokens = state["tokens"].clone()                                             # (B, N)
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    with Watch("masking") as watch:
        if accepts(mask_tokens, tokens, K, gamma_fn, generator=generator):
            out = call(mask_tokens, tokens, K, gamma_fn, generator=generator)
        elif accepts(mask_tokens, tokens, K, gamma_fn, generator):
            out = call(mask_tokens, tokens, K, gamma_fn, generator)
        else:
            state["no_generator"] = True
            out = call(mask_tokens, tokens, K, gamma_fn)
    state["reached"] = state.get("reached", []) + watch.ran
    if not torch.equal(tokens, state["tokens"]) and "moved" not in state:
        moved = int((tokens != state["tokens"]).sum())
        state["moved"] = f"{moved} of the {tokens.numel()} tokens passed in were changed"
    return out


def _masked(out) -> torch.Tensor:
    """The mask of a pair that passed the shape probe, or a finding-worthy error."""
    if not (isinstance(out, (tuple, list)) and len(out) == 2 and torch.is_tensor(out[1])
            and out[1].shape == (B, N) and out[1].dtype == torch.bool):
        raise TypeError(f"mask_tokens returned {describe(out)} here, a pair (inputs, masked (B, N) bool) before")
    return out[1]
