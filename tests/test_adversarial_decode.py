"""Adversarial suite of exercise 6 (``decode_step``, checked by ``check_decode_step``), written from
notebook 03's signature and docstring only, by someone trying to fool the checker: other dtypes
and containers, changed inputs, every way to get the count wrong, noise that only looks right,
labcore's own decoding reached in every way, and correct steps written unlike labcore's.

``student(**wrong)`` is one student's vectorised step; each keyword writes one line another way.
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch

import labcore.decoding
from labcore import decoding_variants as variants
from labcore.checkers import check_decode_step
from labcore.decoding import StepResult, decode_step as labcore_step, gumbel
from labcore.decoding_variants import student_step as borrowed_step

from adversarial_cases import Case, assert_case

CHECK = check_decode_step


def _count(ratio, m0, remaining, settings, w):
    """n per image (B,), the rule with the mistakes of ``w`` (a dict)."""
    g = settings.gamma_fn
    T = settings.total_iter
    r = {"t_over_T_minus_1": min(ratio * T / (T - 1), 1.0), "previous": max(ratio - 1 / T, 0.0),
         "next": min(ratio + 1 / T, 1.0), "one_minus": 1 - ratio}.get(w.get("ratio"), ratio)
    if w.get("schedule") == "cosine":
        share = math.cos(math.pi / 2 * r)                       # hard-coded
    elif w.get("schedule") == "linear":
        share = 1 - r
    else:
        share = float(g(r))
    base = {"current": remaining, "n": torch.full_like(m0, 16 if w.get("m0") == "n" else 0),
            "max": m0.max().expand_as(m0), "mean": m0.double().mean().expand(len(m0)),
            "sum": m0.sum().expand_as(m0), "remaining_sum": remaining.sum().expand_as(m0)}.get(w.get("m0"), m0)
    if w.get("m0") == "n":
        base = torch.full_like(m0, 16)
    x = share * base.double()                                   # (B,)
    rounding = {"ceil": torch.ceil, "round": torch.round, "int_half": lambda v: (v + 0.5).long().double()}
    n = rounding.get(w.get("rounding"), torch.floor)(x).long()  # (B,)
    bounds = w.get("bounds", "both")
    if bounds == "both":
        n = torch.clamp(torch.minimum(n, remaining - 1), min=1)
    elif bounds == "upper":
        n = torch.minimum(n, remaining - 1)
    elif bounds == "lower":
        n = torch.clamp(n, min=1)
    if ratio >= 1 and not w.get("no_last_zero"):
        n = torch.zeros_like(n)
    return torch.where(remaining > 0, n, torch.zeros_like(n))


def _noise(shape, generator, device, w):
    kind = w.get("noise", "gumbel")
    if kind == "gumbel":
        return gumbel(shape, generator, device)
    u = torch.rand(shape, generator=generator).clamp_min(1e-12).to(device)
    if kind == "mirror":
        return torch.log(-torch.log(u))                         # the sign flipped
    if kind == "gauss":
        return torch.randn(shape, generator=generator).to(device) * w.get("sigma", 1.0)
    if kind == "uniform":
        return u
    if kind == "exponential":
        return -torch.log(u)
    if kind == "logistic":
        return torch.log(u) - torch.log1p(-u)
    raise ValueError(kind)


def student(**w):
    """A student's decode_step; each keyword of ``w`` changes one line (the default: correct)."""
    def decode_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
        K = mask_token_id
        device = next(transformer.parameters()).device           # notebook 02's idiom
        seen = tokens.masked_fill(masked, K)                      # (B, N)
        logits = transformer(seen)                                # (B, N, K+1)
        if not w.get("keep_mask_logit"):
            logits = logits[..., :K]
        t = settings.sample_temperature
        if t > 0:
            scaled = {"times": logits * t, "none": logits}.get(w.get("sample"), logits / t)
            predicted = (scaled + gumbel(logits.shape, generator, device)).argmax(-1)
        else:
            predicted = logits.argmax(-1)                         # (B, N)
        axis = 0 if w.get("softmax_axis") == "batch" else -1
        log_p = logits.log_softmax(axis).gather(-1, predicted[..., None])[..., 0]   # (B, N)
        conf = {"logit": logits.gather(-1, predicted[..., None])[..., 0], "prob": log_p.exp()}.get(
            w.get("confidence"), log_p)
        tau = 4.5 if w.get("tau") == "fixed" else settings.choice_temperature
        if tau > 0 and w.get("noise") != "none":
            s = {"none": tau, "gamma": tau * settings.gamma_fn(ratio), "ratio": tau * ratio}.get(
                w.get("anneal"), tau * (1 - ratio))
            shape = {"scalar": (), "per_position": masked.shape[1:]}.get(w.get("noise_shape"), masked.shape)
            conf = conf + s * _noise(shape, generator, device, w)
        if w.get("most_confident_masked"):
            conf = -conf
        if not w.get("remask_known"):
            conf = conf.masked_fill(~masked, float("inf"))
        filled = predicted if w.get("overwrite_known") else torch.where(masked, predicted, tokens)
        remaining = masked.sum(1)                                 # (B,)
        n = _count(ratio, m0, remaining, settings, w)             # (B,)
        rank = conf.argsort(1).argsort(1)                         # (B, N) 0 = least confident
        new_masked = rank < n[:, None]                            # (B, N)
        new_tokens = filled if w.get("no_reset") else filled.masked_fill(new_masked, K)
        if w.get("mutate") == "tokens":
            tokens[~new_masked] = filled[~new_masked]             # writes into the caller's tensor
            new_tokens = tokens.masked_fill(new_masked, K)
        elif w.get("mutate") == "masked":
            masked.copy_(new_masked)
            new_masked = masked
        elif w.get("mutate") == "m0":
            m0 -= 0 if ratio >= 1 else 1
        out = (new_tokens, new_masked, filled)
        form = w.get("form")
        if form == "int32":
            out = (new_tokens.int(), new_masked, filled.int())
        elif form == "float_ids":
            out = (new_tokens.float(), new_masked, filled)
        elif form == "long_mask":
            out = (new_tokens, new_masked.long(), filled)
        elif form == "uint8_mask":
            out = (new_tokens, new_masked.to(torch.uint8), filled)
        elif form == "numpy":
            out = tuple(x.numpy() for x in out)
        elif form == "two":
            out = (new_tokens, new_masked)
        elif form == "extra_axis":
            out = tuple(x[:, None] for x in out)
        elif form == "list_of_lists":
            out = [x.tolist() for x in out]
        elif form == "flat":
            out = tuple(x.flatten() for x in out)
        elif form == "dict":
            out = dict(tokens=new_tokens, masked=new_masked, filled=filled)
        elif form == "list":
            out = list(out)
        return StepResult(*out) if form is None else out
    return decode_step


# ----------------------------------------------------------------------------- labcore's own code, reached

def via_module(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    return labcore.decoding.decode_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator)


def via_alias(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    return labcore_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator)


def via_import_inside(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    from labcore.decoding import decode_step
    return decode_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator)


def _helper(*args):
    return labcore_step(*args)


def via_helper(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    out = _helper(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator)
    return StepResult(out.tokens.clone(), out.masked.clone(), out.filled.clone())


def via_getattr(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    module = importlib.import_module("labcore." + "decod" + "ing")
    return getattr(module, "decode_" + "step")(transformer, tokens, masked, m0, ratio, settings, mask_token_id,
                                               generator)


def via_count_helper(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """Everything its own, except the count: labcore's masked_count_after_step."""
    own = student()
    out = own(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator)
    labcore.decoding.masked_count_after_step(ratio, m0, masked.sum(1), settings.gamma_fn)
    return out


def via_borrowed_student_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    return borrowed_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator)


def via_with_mistakes(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    return variants.with_mistakes()(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator)


def via_decode_loop(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """One step of labcore's whole loop, T = 1, read back."""
    one = settings.replace(total_iter=1)
    side = int(math.isqrt(tokens.shape[1]))
    final, trace = labcore.decoding.decode(transformer, tokens.view(-1, side, side), masked.view(-1, side, side),
                                           mask_token_id, one, generator)
    return final.flatten(1), torch.zeros_like(masked), final.flatten(1)


class CallableStep:
    """A callable object whose __call__ hands the work to labcore."""

    def __call__(self, *args):
        return labcore_step(*args)


# ----------------------------------------------------------------------------- other wrong steps

def raises_inside(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    logits = transformer(tokens)
    return logits.argmax(-1) @ masked                           # (B, N) @ (B, N): a shape slip


def sums_wrong_axis(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    remaining = masked.sum(0)                                   # (N,): over the batch, not the tokens
    n = torch.floor(settings.gamma_fn(ratio) * m0.double()).long()
    n = torch.clamp(torch.minimum(n, remaining - 1), min=1)    # (B,) vs (N,): fails
    return student()(transformer, tokens, masked, m0 * 0 + n, ratio, settings, mask_token_id, generator)


def calls_transformer_wrong(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    transformer(tokens, masked)                                 # forward() takes one argument
    return student()(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator)


# ----------------------------------------------------------------------------- correct steps, written differently

@torch.no_grad()
def topk_loop_distributions(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """torch.distributions (global stream), float64, topk per image in a loop."""
    K = mask_token_id
    logits = transformer(torch.where(masked, torch.full_like(tokens, K), tokens))[:, :, :K].double()
    t = settings.sample_temperature
    predicted = torch.distributions.Categorical(logits=logits / t).sample() if t > 0 else logits.argmax(2)
    conf = torch.log(torch.softmax(logits, 2).gather(2, predicted[..., None])[..., 0])
    if settings.choice_temperature > 0:
        conf = conf + settings.choice_temperature * (1 - ratio) * torch.distributions.Gumbel(0.0, 1.0).sample(
            masked.shape).double()
    conf[~masked] = math.inf
    new_masked = torch.zeros_like(masked)
    for b in range(len(masked)):
        left = int(masked[b].sum())
        n = 0 if ratio >= 1 or left == 0 else max(1, min(math.floor(settings.gamma_fn(ratio) * int(m0[b])), left - 1))
        if n:
            new_masked[b, conf[b].topk(n, largest=False).indices] = True
    filled = torch.where(masked, predicted, tokens)
    return filled.masked_fill(new_masked, K), new_masked, filled


def sorted_descending_list(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """Sorts the most confident first, keeps len - n; returns a list; exponential_ noise."""
    K = mask_token_id
    with torch.no_grad():
        logits = transformer(tokens.masked_fill(masked, K))[..., :K]
    predicted = logits.argmax(-1) if settings.sample_temperature == 0 else torch.multinomial(
        torch.softmax(logits / settings.sample_temperature, -1).flatten(0, 1), 1,
        generator=generator).view(masked.shape)
    conf = torch.log_softmax(logits, -1).gather(-1, predicted.unsqueeze(-1)).squeeze(-1)
    if settings.choice_temperature > 0:
        e = torch.empty(masked.shape).exponential_(generator=generator)
        conf = conf - settings.choice_temperature * (1 - ratio) * torch.log(e)
    conf = torch.where(masked, conf, torch.full_like(conf, float("inf")))
    remaining = masked.sum(1)
    n = torch.floor(torch.tensor(settings.gamma_fn(ratio)) * m0).long()
    n = torch.maximum(torch.minimum(n, remaining - 1), torch.ones_like(n)) if ratio < 1 else torch.zeros_like(n)
    n = n * (remaining > 0)
    order = conf.argsort(1, descending=True)                    # most confident first
    keep = torch.arange(masked.shape[1])[None] < (masked.shape[1] - n)[:, None]
    new_masked = ~torch.zeros_like(masked).scatter(1, order, keep)
    filled = torch.where(masked, predicted, tokens)
    return [torch.where(new_masked, torch.full_like(filled, K), filled), new_masked, filled]


def plackett_luce(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """Draws the tokens to decode without replacement, weights p^(1 / s): the same law."""
    K = mask_token_id
    logits = transformer(tokens.masked_fill(masked, K))[..., :K].double().detach()
    predicted = logits.argmax(-1)
    if settings.sample_temperature > 0:
        predicted = torch.multinomial(torch.softmax(logits / settings.sample_temperature, -1).flatten(0, 1), 1,
                                      generator=generator).view(masked.shape)
    log_p = torch.log_softmax(logits, -1).gather(-1, predicted[..., None])[..., 0]
    s = settings.choice_temperature * (1 - ratio)
    new_masked = masked.clone()
    for b in range(len(masked)):
        where = masked[b].nonzero().flatten()
        left = len(where)
        n = 0 if ratio >= 1 or left == 0 else max(1, min(math.floor(settings.gamma_fn(ratio) * int(m0[b])), left - 1))
        if left - n <= 0:
            continue
        if s > 0:
            chosen = torch.multinomial(torch.softmax(log_p[b, where] / s, 0), left - n, generator=generator)
        else:
            chosen = log_p[b, where].argsort(descending=True)[: left - n]
        new_masked[b, where[chosen]] = False
    filled = torch.where(masked, predicted, tokens)
    return filled.masked_fill(new_masked, K), new_masked, filled


def numpy_gumbel_inside(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """Gumbel noise from numpy's Gumbel (seeded from the generator), masking by a threshold."""
    K = mask_token_id
    rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=generator)))
    logits = transformer(tokens.masked_fill(masked, K))[..., :K].detach()
    predicted = logits.argmax(-1)
    if settings.sample_temperature > 0:
        g = torch.from_numpy(rng.gumbel(size=tuple(logits.shape))).float()
        predicted = (logits / settings.sample_temperature + g).argmax(-1)
    conf = logits.log_softmax(-1).gather(-1, predicted[..., None])[..., 0].double()
    if settings.choice_temperature > 0:
        conf = conf + settings.choice_temperature * (1 - ratio) * torch.from_numpy(rng.gumbel(size=tuple(masked.shape)))
    conf[~masked] = float("inf")
    remaining = masked.sum(1)
    n = (settings.gamma_fn(ratio) * m0.double()).floor().long().clamp(max=remaining - 1).clamp(min=1)
    n = torch.where((remaining > 0) & (torch.tensor(ratio) < 1), n, 0)
    sorted_conf = conf.sort(1).values
    threshold = sorted_conf.gather(1, (n - 1).clamp(min=0)[:, None])
    new_masked = (conf <= threshold) & (n[:, None] > 0)
    filled = torch.where(masked, predicted, tokens)
    return StepResult(filled.masked_fill(new_masked, K), new_masked, filled)


CORRECT = [Case("vectorised, device from next(transformer.parameters())", student()),
           Case("returns a list of three tensors", student(form="list")),
           Case("torch.distributions, float64, topk loop", topk_loop_distributions),
           Case("most confident first, exponential_ noise, list", sorted_descending_list),
           Case("Plackett-Luce: multinomial without replacement", plackett_luce),
           Case("numpy's Gumbel, threshold at the n-th confidence", numpy_gumbel_inside)]

WRONG = [
    # whose code: labcore's decoding reached
    Case("calls labcore.decoding.decode_step", via_module, "decode.uses_reference"),
    Case("calls decode_step through an alias", via_alias, "decode.uses_reference"),
    Case("imports decode_step inside the body", via_import_inside, "decode.uses_reference"),
    Case("a helper calls decode_step, outputs cloned", via_helper, "decode.uses_reference"),
    Case("getattr on an imported module, names split", via_getattr, "decode.uses_reference"),
    Case("its own step, but labcore's masked_count_after_step", via_count_helper, "decode.uses_reference"),
    Case("decoding_variants.student_step imported by name", via_borrowed_student_step, "decode.uses_reference"),
    Case("decoding_variants.with_mistakes() with no mistake", via_with_mistakes, "decode.uses_reference"),
    Case("labcore's decode loop with T = 1", via_decode_loop, "decode.uses_reference"),
    Case("a callable object handing over to labcore", CallableStep(), "decode.uses_reference"),
    Case("labcore's decode_step itself", labcore_step, "decode.uses_reference"),
    Case("decoding_variants.student_step itself", variants.student_step, "decode.uses_reference"),
    # types and containers
    Case("ids as int32", student(form="int32"), "decode.dtype"),
    Case("tokens as float", student(form="float_ids"), "decode.dtype"),
    Case("mask as 0/1 long", student(form="long_mask"), "decode.dtype"),
    Case("mask as uint8", student(form="uint8_mask"), "decode.dtype"),
    Case("numpy arrays", student(form="numpy"), "decode.shape"),
    Case("two outputs", student(form="two"), "decode.shape"),
    Case("(B, 1, N) tensors", student(form="extra_axis"), "decode.shape"),
    Case("lists of lists", student(form="list_of_lists"), "decode.shape"),
    Case("flattened (B*N,) tensors", student(form="flat"), "decode.shape"),
    Case("a dict", student(form="dict"), "decode.shape"),
    # the caller's tensors
    Case("writes predictions into the caller's tokens", student(mutate="tokens"), "decode.mutates_input"),
    Case("copies the new mask into the caller's masked", student(mutate="masked"), "decode.mutates_input"),
    Case("decrements the caller's m0", student(mutate="m0"), "decode.mutates_input"),
    # the counts
    Case("cosine hard-coded", student(schedule="cosine"), "decode.ignores_schedule"),
    Case("linear hard-coded", student(schedule="linear"), "decode.ignores_schedule"),
    Case("round", student(rounding="round"), "decode.count_round"),
    Case("int(x + 0.5)", student(rounding="int_half"), "decode.count_round"),
    Case("ceil", student(rounding="ceil"), "decode.count_ceil"),
    Case("share of N", student(m0="n"), "decode.count_from_n"),
    Case("share of the current count", student(m0="current"), "decode.count_from_current"),
    Case("M0 = the batch's largest", student(m0="max"), "decode.m0_not_per_image"),
    Case("M0 = the batch's mean", student(m0="mean"), "decode.m0_not_per_image"),
    Case("M0 = the batch's sum", student(m0="sum"), "decode.count_batch_sum"),
    Case("the batch's masked total", student(m0="remaining_sum"), "decode.count_batch_sum"),
    Case("t / (T - 1)", student(ratio="t_over_T_minus_1"), "decode.count_ratio"),
    Case("the previous step's ratio", student(ratio="previous"), "decode.count_ratio"),
    Case("the next step's ratio", student(ratio="next"), "decode.count_ratio"),
    Case("gamma(1 - t/T)", student(ratio="one_minus"), "decode.count_ratio"),
    Case("no clamp", student(bounds="none"), "decode.count_bounds"),
    Case("only the upper bound", student(bounds="upper"), "decode.count_bounds"),
    Case("only the lower bound", student(bounds="lower"), "decode.count_bounds"),
    Case("clamped at the last step too", student(no_last_zero=True), "decode.count_bounds"),
    # the confidence and the tokens
    Case("argmax over K + 1 logits", student(keep_mask_logit=True), "decode.predicts_mask_token"),
    Case("confidence = raw logit", student(confidence="logit"), "decode.confidence_from_logits"),
    Case("masks the most confident again", student(most_confident_masked=True), "decode.keeps_least_confident"),
    Case("known tokens keep their confidence", student(remask_known=True), "decode.remasks_known"),
    Case("filled = prediction everywhere", student(overwrite_known=True), "decode.overwrites_known"),
    Case("still-masked tokens keep their prediction", student(no_reset=True), "decode.masked_not_reset"),
    Case("log_softmax over the batch axis", student(softmax_axis="batch"), "decode.wrong_result"),
    # the noise
    Case("Gumbel of the wrong sign, +log(-log u)", student(noise="mirror"), "decode.noise_law"),
    Case("Gaussian noise", student(noise="gauss"), "decode.noise_law"),
    Case("Gaussian noise, sd 1.4", student(noise="gauss", sigma=1.4), "decode.noise_law"),
    Case("uniform noise (too small to reorder: a scale)", student(noise="uniform"), "decode.noise_scale"),
    Case("exponential noise, -log u (near-Gumbel tail)", student(noise="exponential"), "decode.noise_scale"),
    Case("logistic noise", student(noise="logistic"), "decode.noise_law"),
    Case("no noise at all", student(noise="none"), "decode.shared_gumbel"),
    Case("one Gumbel sample for all", student(noise_shape="scalar"), "decode.shared_gumbel"),
    Case("noise of shape (N,)", student(noise_shape="per_position"), "decode.noise_shared_across_batch"),
    Case("Gumbel on probabilities", student(confidence="prob"), "decode.gumbel_on_probs"),
    Case("never annealed", student(anneal="none"), "decode.no_annealing"),
    Case("annealed by gamma(t/T)", student(anneal="gamma"), "decode.anneal_with_gamma"),
    Case("annealed by t/T", student(anneal="ratio"), "decode.noise_scale"),
    Case("tau = 4.5 hard-coded", student(tau="fixed"), "decode.noise_scale"),
    Case("sample temperature ignored", student(sample="none"), "decode.sample_temperature"),
    Case("sample temperature multiplies", student(sample="times"), "decode.sample_temperature"),
    # crashes in the student's code
    Case("matmul of (B, N) by (B, N)", raises_inside, "decode.error"),
    Case("masked.sum(0): the batch axis", sums_wrong_axis, "decode.error"),
    Case("transformer(tokens, masked)", calls_transformer_wrong, "decode.error"),
]

CASES = WRONG + CORRECT


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_case(case):
    assert_case(CHECK, case)
