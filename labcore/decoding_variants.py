"""Named ways to decode other than labcore's correct step: the classic mistakes of exercise 6 and
two ideas of recent work, so that a notebook or ``labcore experiment`` can measure what each costs.

The classic mistakes are ONE student's step, ``student_step``, with one line written wrong:
``WRONG_LINES`` is their table (name -> the line it writes wrong) and every wrong step is built
from it (``with_mistakes``, ``classic_steps``). Each has ``labcore.decoding.decode_step``'s
signature, so it runs in the real loop (``decode(..., step=...)``, ``MaskGit.inpaint(..., step=...)``)::

    for mistake, step in classic_steps(maskgit).items():
        result = maskgit.inpaint(images, masks, settings, step=step)      # then its FID

Re-encoding the decoded image at every step (``decode.reencodes``) needs the tokenizer, which a
step is not given: ``reencoding_step(vqgan)`` builds it. A loop that does ``tokens =
encode(decode(tokens))`` at each step feeds the next step known tokens that drift to whatever the
VQGAN's round trip gives, not what the transformer predicted.

The ideas are ``DecodingSettings`` changes (``IDEAS``): the Halton order, the annealed sample
temperature and the re-masking of decoded tokens (ReMDM). ``variant(name)`` is any of them, by
name, as a ``Variant`` (a step and settings changes).

Not here: ``decode.shape`` and ``decode.error`` (a step with those cannot run in the loop), the
mistakes only the adversarial suite writes (tests/test_adversarial_decode.py) and the generic
fallbacks. These steps are labcore's code, not a student's: ``labcore.checkers.check_decode_step``
gives any step that reaches this module ``decode.uses_reference``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .decoding import DecodingSettings, StepResult, decode_step, gumbel

CORRECT_STEP = "decode_step"  # the step id of labcore's (correct) step

# name -> the one line ``student_step`` writes wrong; the mistake's id is "decode." + name
# (``labcore.checkers.mistakes``). ``sample_temperature`` only shows with sample_temperature > 0.
WRONG_LINES: dict[str, str] = {
    "predicts_mask_token": "argmax over all K+1 logits, the mask token's included (with a trained transformer "
                           "the mask token rarely wins; when it does, decoding the image fails).",
    "remasks_known": "known tokens keep their own confidence (no +inf), so the least confident of them are "
                     "masked again.",
    "overwrites_known": "filled = predicted everywhere, so known tokens take the argmax.",
    "keeps_least_confident": "sorts by -log p (the loss), so the most confident are masked again.",
    "confidence_from_logits": "the confidence is the chosen token's raw logit, not log p.",
    "count_from_current": "n = floor(gamma(t/T) * masked.sum(1)) instead of M0.",
    "count_ceil": "n = ceil(gamma(t/T) * M0) instead of floor.",
    "count_bounds": "n = floor(gamma(t/T) * M0) without the clamp to [1, remaining - 1].",
    "m0_not_per_image": "one M0 (the batch's largest) for every image.",
    "masked_not_reset": "returns the filled map as the tokens (still-masked positions keep their prediction, "
                        "not K) and trusts its input, so the next step's transformer sees predictions where it "
                        "should see the mask token.",
    "shared_gumbel": "ONE Gumbel sample (a scalar) added to every confidence: no effect on the order at all.",
    "noise_shared_across_batch": "noise of shape (N,), the same for every image of the batch.",
    "gumbel_on_probs": "confidence = p + tau * (1 - t/T) * g, on probabilities, not log p.",
    "no_annealing": "noise scale tau at every step (never annealed to 0).",
    "anneal_with_gamma": "noise scale tau * gamma(t/T) instead of tau * (1 - t/T).",
    "sample_temperature": "with sample_temperature > 0, samples softmax(logits), the temperature forgotten "
                          "(no effect at sample_temperature = 0, labcore's default).",
}
MISTAKE_IDS = tuple(f"decode.{name}" for name in WRONG_LINES) + ("decode.reencodes",)  # every classic step's id


def token_rule(sample_temperature: float) -> str:
    """How decoding picks a token: "argmax" (sample temperature 0, the course's rule) or "sampled"
    (t > 0: from softmax(logits / t)). The name in figures and in ``labcore experiment``'s table."""
    return "argmax" if sample_temperature == 0 else "sampled"


# ----------------------------------------------------------------------------- the student's step

def student_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None, *,
                 mistakes=()):
    """A student's decoding step; each name in ``mistakes`` (keys of ``WRONG_LINES``) writes its
    line the wrong way. With no mistakes it is correct, another way than labcore's that draws the
    same random numbers, so a mistake's cost is its line's alone."""
    wrong = _known_mistakes(mistakes)
    K = mask_token_id
    if "masked_not_reset" not in wrong:
        tokens = tokens.masked_fill(masked, K)            # (B, N) the model sees the mask token where masked
    logits = transformer(tokens).float()                  # (B, N, K+1)
    if "predicts_mask_token" not in wrong:
        logits = logits[..., :K]                          # (B, N, K) wrong: keeps the mask token's logit
    predicted = _predicted(logits, settings, generator, masked.device, wrong)  # (B, N)
    confidence = _choice_noise(_confidence(logits, predicted, wrong), masked, ratio, settings, generator, wrong)
    if "remasks_known" not in wrong:
        confidence = confidence.masked_fill(~masked, math.inf)   # (B, N) known tokens: never re-masked
    filled = predicted if "overwrites_known" in wrong else torch.where(masked, predicted, tokens)  # wrong: all
    n = _kept_count(masked, m0, ratio, settings, wrong)   # (B,)
    rank = confidence.argsort(1).argsort(1)               # (B, N) 0 = least confident
    new_masked = rank < n[:, None]                        # (B, N)
    new_tokens = filled if "masked_not_reset" in wrong else filled.masked_fill(new_masked, K)
    return StepResult(new_tokens, new_masked, filled)


def _known_mistakes(names) -> set[str]:
    unknown = set(names) - set(WRONG_LINES)
    if unknown:
        raise ValueError(f"unknown mistakes {sorted(unknown)}; choose from {tuple(WRONG_LINES)}")
    return set(names)


def _predicted(logits, settings, generator, device, wrong) -> torch.Tensor:
    """(B, N) the predicted tokens: argmax, or a Gumbel-max sample of softmax(logits / t)."""
    temp = settings.sample_temperature
    if temp <= 0:
        return logits.argmax(-1)                          # (B, N)
    scaled = logits if "sample_temperature" in wrong else logits / temp  # wrong: no temperature
    return (scaled + gumbel(logits.shape, generator, device)).argmax(-1)  # (B, N)


def _confidence(logits, predicted, wrong) -> torch.Tensor:
    """(B, N) how sure the model is of each prediction: log p (wrong: the raw logit, p, or -log p)."""
    log_p = logits.log_softmax(-1).gather(-1, predicted[..., None])[..., 0]   # (B, N)
    if "confidence_from_logits" in wrong:
        confidence = logits.gather(-1, predicted[..., None])[..., 0]         # wrong: the raw logit
    elif "gumbel_on_probs" in wrong:
        confidence = log_p.exp()                                             # wrong: p, not log p
    else:
        confidence = log_p
    return -confidence if "keeps_least_confident" in wrong else confidence  # wrong: the loss -log p


def _choice_noise(confidence, masked, ratio, settings, generator, wrong) -> torch.Tensor:
    """(B, N) the confidence plus tau * (1 - t/T) * one Gumbel sample per token."""
    tau = settings.choice_temperature
    if tau <= 0:
        return confidence
    if "no_annealing" in wrong:
        scale = tau                                       # wrong: never annealed
    elif "anneal_with_gamma" in wrong:
        scale = tau * settings.gamma_fn(ratio)            # wrong: gamma(t/T), not 1 - t/T
    else:
        scale = tau * (1 - ratio)
    if "shared_gumbel" in wrong:
        shape = ()                                        # wrong: one sample for every token
    elif "noise_shared_across_batch" in wrong:
        shape = masked.shape[1:]                          # wrong: (N,), the same for every image
    else:
        shape = masked.shape                              # (B, N): one per token
    return confidence + scale * gumbel(shape, generator, masked.device)


def _kept_count(masked, m0, ratio, settings, wrong) -> torch.Tensor:
    """(B,) how many tokens stay masked: floor(gamma(t/T) * M0), clamped to [1, remaining - 1], 0 at the end."""
    remaining = masked.sum(1)                             # (B,)
    if "count_from_current" in wrong:
        M0 = remaining                                    # wrong: the count now, not the initial one
    elif "m0_not_per_image" in wrong:
        M0 = m0.max().expand_as(m0)                       # wrong: one M0 for the whole batch
    else:
        M0 = m0
    rounding = torch.ceil if "count_ceil" in wrong else torch.floor          # wrong: ceil
    n = rounding(settings.gamma_fn(ratio) * M0.double()).long().to(masked.device)  # (B,)
    if "count_bounds" in wrong:                           # wrong: no clamp, no 0 at the last step
        return n
    n = torch.zeros_like(n) if ratio >= 1 else torch.clamp(torch.minimum(n, remaining - 1), min=1)
    return torch.where(remaining > 0, n, torch.zeros_like(n))


# ----------------------------------------------------------------------------- steps built from the table

def with_mistakes(*names):
    """A step with decode_step's signature that makes every mistake in ``names`` at once."""
    _known_mistakes(names)

    def step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
        return student_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator,
                            mistakes=names)
    step.__name__ = step.__qualname__ = "_and_".join(names) or "student_step"
    step.__doc__ = "; ".join(f"decode.{n}: {WRONG_LINES[n]}" for n in names) or "student_step with no mistake."
    return step


def reencoding_step(vqgan, step=decode_step):
    """decode.reencodes: a step that re-encodes the decoded image, for a VQGAN (or a MaskGit, whose
    ``.vqgan`` is used) on the tokens' device: ``step`` (default labcore's, correct), then the
    filled tokens -> pixels (``decode_indices``) -> tokens again (``encode_to_indices``), which
    replace every token known after the step (still-masked positions are left as the step made them)."""
    vq = getattr(vqgan, "vqgan", vqgan)
    r = int(vq.config.latent_resolution)

    @torch.no_grad()
    def reencodes(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
        """decode.reencodes: decodes the step's tokens to an image and encodes it again, every step."""
        _, new_masked, filled = step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator)
        images = vq.decode_indices(filled.reshape(-1, r, r))                  # (B, 3, H, W)
        again = vq.encode_to_indices(images).reshape(filled.shape).to(filled)  # (B, N) the round trip
        again = torch.where(new_masked, filled, again)                         # known: re-encoded
        return StepResult(again.masked_fill(new_masked, mask_token_id), new_masked, again)

    return reencodes


def classic_steps(vqgan=None) -> dict:
    """Mistake id -> a wrong step with decode_step's signature, one per row of ``WRONG_LINES``;
    ``decode.reencodes`` only with a ``vqgan`` (a VQGAN or a MaskGit)."""
    steps = {f"decode.{name}": with_mistakes(name) for name in WRONG_LINES}
    if vqgan is not None:
        steps["decode.reencodes"] = reencoding_step(vqgan)
    return steps


# ----------------------------------------------------------------------------- the variants, by name

@dataclass(frozen=True)
class Variant:
    """One named way to decode: a step (its id: ``CORRECT_STEP`` or a mistake's) and the
    ``DecodingSettings`` fields it changes."""
    name: str
    step: str = CORRECT_STEP
    changes: dict = field(default_factory=dict)

    def settings(self, base: DecodingSettings) -> DecodingSettings:
        return base.replace(**self.changes)


# ReMDM's eta (``DecodingSettings.remask``). On the first 100 test images (bundled model, cosine T = 8, tau 4.5, seeds
# 0 and 1) eta = 0 / 0.2 / 0.5 / 0.8 gave mean FID 112.33 / 108.79 / 106.75 / 108.71 with sampled tokens and 98.76 /
# 99.98 / 99.33 / 100.27 with argmax tokens (seed noise: seeds up to 2.6 apart). 0.5 helps sampled tokens most.
REMASK_ETA = 0.5
IDEAS: dict[str, Variant] = {  # three ideas of recent work that need no retraining
    "order=halton": Variant("order=halton", changes={"order": "halton"}),
    "sample_temperature_anneal": Variant("sample_temperature_anneal", changes={"sample_temperature_anneal": True}),
    "remask": Variant("remask", changes={"remask": REMASK_ETA}),
}
# what ``labcore experiment --variants`` measures by default (notebook 05): six mistakes, each alone, and the ideas
MEASURED_MISTAKES = ("decode.shared_gumbel", "decode.gumbel_on_probs", "decode.anneal_with_gamma", "decode.reencodes",
                     "decode.overwrites_known", "decode.count_from_current")
MEASURED_VARIANTS = MEASURED_MISTAKES + tuple(IDEAS)


def variant(name: str) -> Variant:
    """The variant called ``name``: ``CORRECT_STEP``, an idea of ``IDEAS`` or a classic mistake's id."""
    if name == CORRECT_STEP:
        return Variant(CORRECT_STEP)
    if name in IDEAS:
        return IDEAS[name]
    if name in MISTAKE_IDS:
        return Variant(name, step=name)
    raise ValueError(f"unknown variant {name!r}; choose from {', '.join((*IDEAS, *MISTAKE_IDS))}")


def seed_matters(settings: DecodingSettings, step: str = CORRECT_STEP) -> bool:
    """Does the seed change what this setting decodes? Sampled tokens, or choice noise that orders
    (per-token noise in the confidence order; one scalar sample, ``decode.shared_gumbel``, shifts
    every confidence alike and orders nothing)."""
    orders = settings.choice_temperature > 0 and settings.order == "confidence" and step != "decode.shared_gumbel"
    return settings.sample_temperature > 0 or orders
