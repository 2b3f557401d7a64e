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
masked)`` is one training step's loss. Two functions, not one: each classic mistake then shows in
the function that makes it. ``generator`` is the random stream labcore's training passes (exact
resume); ignoring it is noted, not failed.

The checker judges properties, never the random stream: the caller's gamma_fn is replaced by a
constant (then exactly ceil(0.3 N) tokens per image, never the same positions in every image)
and by r -> r (then the counts differ between images); the loss is compared with labcore's
``mvtm_loss`` on the same mask, and its gradient must vanish at the known positions.

``reference_mask_tokens`` and ``reference_masked_loss`` are labcore's own two halves with these
signatures (what a notebook runs when the student's do not pass yet): the mask that
``mvtm_loss`` draws, and the loss line of ``mvtm_loss``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
import torch.nn.functional as F

from labcore.checkers.fixtures import FixedLogits
from labcore.checkers.report import CheckResult, accepts, call, check_pair, describe, fail, ok, run_probes, short
from labcore.maskgit import mvtm_loss

K, B, N = 8, 64, 64            # codebook size (mask id K), images, tokens per image
SHARE = 0.3                    # the constant gamma: ceil(0.3 * 64) = 20 tokens per image


def constant_gamma(r):
    """gamma(r) = 0.3 for every r, for a float, a tensor or an array alike."""
    return r * 0 + SHARE


def identity_gamma(r):
    return r


# ----------------------------------------------------------------------------- labcore's reference

@torch.no_grad()
def reference_mask_tokens(tokens: torch.Tensor, mask_token_id: int, gamma_fn, generator=None):
    """labcore's masking with the exercise's signature: the mask ``labcore.maskgit.mvtm_loss``
    draws (the same draws from ``generator``), read off the input it hands the transformer.
    tokens (B, N) long in [0, K) -> inputs (B, N) long (K where masked), masked (B, N) bool."""
    seen = []

    def record(inputs):                                                         # stands in for the transformer
        seen.append(inputs)
        return torch.zeros(*inputs.shape, mask_token_id + 1, device=inputs.device)  # (B, N, K+1)

    mvtm_loss(record, tokens, mask_token_id, gamma_fn, generator=generator)
    inputs = seen[0].reshape(tokens.shape)                                      # (B, N)
    return inputs, inputs == mask_token_id


def reference_masked_loss(logits: torch.Tensor, targets: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """The loss of ``labcore.maskgit.mvtm_loss``: cross-entropy averaged over the masked tokens.
    logits (B, N, K+1), targets (B, N) long, masked (B, N) bool -> 0-d tensor."""
    return F.cross_entropy(logits[masked].float(), targets[masked])


def check_masking(mask_tokens=None, masked_loss=None, seed: int = 0) -> CheckResult:
    """Check ``mask_tokens`` and/or ``masked_loss`` (give either or both). ``str()`` of the result
    is the report."""
    return check_pair("check_masking", ("mask_tokens", mask_tokens, _check_mask_tokens), ("masked_loss", masked_loss, _check_masked_loss), seed)


# ----------------------------------------------------------------------------- mask_tokens

def _run(mask_tokens, state, gamma_fn, seed: int):
    """(tokens given, what mask_tokens returned), with a generator seeded ``seed``: as the keyword
    ``generator``, else as the 4th argument; without one when the signature takes none (noted).
    The signature decides, not a TypeError, so an error inside the function is reported as is."""
    tokens = state["tokens"].clone()
    generator = torch.Generator().manual_seed(seed)
    if accepts(mask_tokens, tokens, K, gamma_fn, generator=generator):
        return tokens, call(mask_tokens, tokens, K, gamma_fn, generator=generator)
    if accepts(mask_tokens, tokens, K, gamma_fn, generator):
        return tokens, call(mask_tokens, tokens, K, gamma_fn, generator)
    state["no_generator"] = True
    return tokens, call(mask_tokens, tokens, K, gamma_fn)


def _check_mask_tokens(mask_tokens, seed: int) -> CheckResult:
    state: dict = {}

    def setup():
        state["tokens"] = torch.randint(0, K, (B, N))                              # (B, N)
        stub = FixedLogits(torch.zeros(B, N, K + 1))
        mvtm_loss(stub, state["tokens"], K, constant_gamma, generator=torch.Generator().manual_seed(seed))
        state["count"] = int((stub.seen[0] == K).sum(1)[0])                          # labcore's: ceil(0.3 N)

    probes = [("mask_tokens returns (inputs, masked): (B, N) long, (B, N) bool",
               lambda: _probe_shape(mask_tokens, state)),
              ("the caller's tokens are left unchanged", lambda: _probe_in_place(state)),
              ("inputs hold the mask id K exactly where masked", lambda: _probe_consistent(state)),
              (f"gamma fixed at {SHARE}: ceil(gamma * N) masked per image", lambda: _probe_count(state)),
              ("gamma(r) = r: each image draws its own ratio", lambda: _probe_ratio(mask_tokens, state, seed)),
              ("each image masks its own random positions", lambda: _probe_positions(mask_tokens, state, seed))]
    result = run_probes("mask_tokens", probes, "masking.error", seed, setup)
    if state.get("no_generator"):
        result.notes.append("mask_tokens takes no generator: labcore's training passes one (exact resume)")
    return result


def _probe_shape(mask_tokens, state):
    name = "mask_tokens returns (inputs, masked): (B, N) long, (B, N) bool"
    tokens, out = _run(mask_tokens, state, constant_gamma, 1)
    state["given"], state["out"] = tokens, out
    shape = tuple(tokens.shape)
    if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(torch.is_tensor(t) for t in out)):
        return fail(name, "masking.shape", f"expected a pair of tensors, got {describe(out)}")
    inputs, masked = out
    if inputs.shape != shape or masked.shape != shape or inputs.dtype != torch.long or masked.dtype != torch.bool:
        return fail(name, "masking.shape", f"tokens {shape}: expected inputs {shape} int64 and masked {shape} bool, "
                                           f"got {describe(inputs)} and {describe(masked)}")
    return ok(name)


def _probe_in_place(state):
    name = "the caller's tokens are left unchanged"
    if torch.equal(state["given"], state["tokens"]):
        return ok(name)
    return fail(name, "masking.in_place", f"{int((state['given'] != state['tokens']).sum())} of the tokens passed "
                                          "in were changed by mask_tokens")


def _probe_consistent(state):
    name = "inputs hold the mask id K exactly where masked"
    tokens, (inputs, masked) = state["tokens"], state["out"]
    at_k, changed = inputs == K, inputs != tokens                                    # (B, N), (B, N)
    detail = (f"image 0, K = {K}: tokens {short(tokens[0])}\n  inputs {short(inputs[0])}\n"
              f"  masked {short(masked[0].long())}")
    if torch.equal(at_k, masked) and not changed[~masked].any():
        return ok(name)
    if torch.equal(at_k, ~masked) or (torch.equal(at_k, masked) and int(masked.sum(1)[0]) == N - state["count"]):
        return fail(name, "masking.inverted", detail)
    if not at_k.any() and changed.any() and bool((inputs[masked] < K).all()):
        return fail(name, "masking.mask_id_collides", detail)
    return fail(name, "masking.inconsistent", detail)


def _counts(masked: torch.Tensor) -> list[int]:
    return masked.sum(dim=1).tolist()


def _probe_count(state):
    name = f"gamma fixed at {SHARE}: ceil(gamma * N) masked per image"
    counts, n = _counts(state["out"][1]), state["count"]
    if all(c in (n, math.floor(SHARE * N)) for c in counts):
        return ok(name)
    if all(c == N - n for c in counts):
        return fail(name, "masking.inverted", f"N = {N}: expected {n} masked per image, got {N - n} (= N - {n})")
    return fail(name, "masking.count", f"N = {N}, gamma_fn(r) = {SHARE} for every r: expected {n} masked per image, "
                                       f"got {short(torch.tensor(counts), 12)}")


def _probe_ratio(mask_tokens, state, seed):
    name = "gamma(r) = r: each image draws its own ratio"
    counts = torch.tensor(_counts(_run(mask_tokens, state, identity_gamma, seed + 2)[1][1]))
    mean = counts.double().mean().item() / N
    if counts.unique().numel() <= 2:
        return fail(name, "masking.ratio_per_batch", f"masked per image over {B} images: {short(counts, 12)}")
    if not 0.35 <= mean <= 0.65:
        return fail(name, "masking.count", f"with r ~ U(0, 1) and gamma(r) = r the mean masked share should be "
                                           f"about 0.5, got {mean:.2f}")
    return ok(name)


def _probe_positions(mask_tokens, state, seed):
    name = "each image masks its own random positions"
    masked = state["out"][1]
    again = _run(mask_tokens, state, constant_gamma, seed + 3)[1][1]
    first = masked[0].nonzero().flatten()
    if (masked == masked[0]).all():
        return fail(name, "masking.same_positions", f"all {B} images mask positions {short(first)}")
    if torch.equal(masked, again):
        return fail(name, "masking.same_positions", "two calls with other random streams masked the same positions")
    notes = []
    if not state.get("no_generator"):
        one = _run(mask_tokens, state, constant_gamma, seed + 4)[1][1]
        if not torch.equal(one, _run(mask_tokens, state, constant_gamma, seed + 4)[1][1]):
            notes.append("the same generator seed gave other masks: mask_tokens draws from another stream "
                         "(labcore's training passes the generator for exact resume)")
    return [ok(name), *notes]


# ----------------------------------------------------------------------------- masked_loss

def _check_masked_loss(masked_loss, seed: int) -> CheckResult:
    state: dict = {}

    def setup():
        logits = torch.randn(4, 16, K + 1) * 2                                      # (B, N, K+1)
        targets = torch.randint(0, K, (4, 16))                                      # (B, N)
        refs = {}
        for all_positions in (False, True):  # labcore's loss, on the mask labcore draws
            stub = FixedLogits(logits)
            refs[all_positions] = mvtm_loss(stub, targets, K, lambda r: r * 0 + 0.4, all_positions=all_positions,
                                            generator=torch.Generator().manual_seed(seed))["loss"].item()
        masked = stub.seen[0] == K                                                  # (B, N)
        state.update(logits=logits, targets=targets, masked=masked, ref=refs[False], all_tokens=refs[True])

    return run_probes("masked_loss", [
        ("masked_loss returns a scalar tensor with a gradient", lambda: _probe_loss_type(masked_loss, state)),
        ("cross-entropy of the masked tokens only", lambda: _probe_loss_value(state)),
    ], "masking.error", seed, setup)


def _probe_loss_type(masked_loss, state):
    name = "masked_loss returns a scalar tensor with a gradient"
    logits = state["logits"].clone().requires_grad_(True)
    loss = call(masked_loss, logits, state["targets"].clone(), state["masked"].clone())
    state["logits_leaf"], state["loss"] = logits, loss
    if not torch.is_tensor(loss):
        numeric = isinstance(loss, (numbers.Number, np.ndarray, np.generic))
        mistake = "masking.loss_detached" if numeric else "masking.loss_not_scalar"
        return fail(name, mistake, f"expected a 0-d tensor, got {describe(loss)}")
    if loss.numel() != 1:
        return fail(name, "masking.loss_not_scalar", f"expected a 0-d tensor, got {describe(loss)}")
    if not loss.requires_grad:
        return fail(name, "masking.loss_detached", "loss.requires_grad is False for logits that require grad")
    return ok(name)


def _probe_loss_value(state):
    name = "cross-entropy of the masked tokens only"
    loss, logits, masked = state["loss"], state["logits_leaf"], state["masked"]
    value = loss.item()
    loss.reshape(()).backward()
    grad = logits.grad.abs().sum(-1) if logits.grad is not None else torch.zeros(masked.shape)  # (B, N)
    known_moves, masked_moves = bool(grad[~masked].gt(0).any()), bool(grad[masked].gt(0).any())
    ce = torch.nn.functional.cross_entropy
    lg, tg = state["logits"], state["targets"]
    accepted = [state["ref"], ce(lg[masked][:, :K], tg[masked]).item(),              # over K+1 or the K codes
                torch.stack([ce(lg[b][masked[b]], tg[b][masked[b]]) for b in range(len(lg))]).mean().item()]
    detail = (f"{int(masked.sum())} of {masked.numel()} tokens masked: expected {state['ref']:.4f} (labcore's "
              f"mvtm_loss), got {value:.4f}")
    if not known_moves and not masked_moves:  # e.g. torch.tensor(loss.item(), requires_grad=True)
        return fail(name, "masking.loss_detached", "loss.backward() gives the logits no gradient: the loss is "
                                                   "not computed from them by torch operations")
    if known_moves and masked_moves or abs(value - state["all_tokens"]) < 1e-4:
        return fail(name, "masking.loss_all_tokens", detail + "\n(the loss changes with the logits of known tokens)")
    if known_moves or abs(value - ce(lg[~masked], tg[~masked]).item()) < 1e-4:
        return fail(name, "masking.loss_on_known", detail)
    if any(abs(value - a) <= 1e-4 * max(1.0, abs(a)) for a in accepted):
        return ok(name, detail)
    if abs(value - ce(lg[masked], tg[masked], reduction="sum").item()) < 1e-3:
        return fail(name, "masking.loss_sum", detail)
    return fail(name, "masking.loss_wrong", detail)
