"""The classic mistakes of exercise 6 (one decoding step), each as a step function with
``labcore.decoding.decode_step``'s exact signature: each runs in the real loop
(``labcore.decoding.decode(..., step=...)``, ``MaskGit.inpaint(..., step=...)``), so a notebook can
measure what each mistake costs, and the checker's probes must name each one
(tests/test_checkers_decoding.py)::

    for mistake, step in classic_steps(maskgit).items():
        result = maskgit.inpaint(images, masks, settings, step=step)      # then its FID

All of them are the same student's step, ``student_step``, with ONE line written wrong (the name
of the mistake, an id of ``labcore.checkers.mistakes`` without its ``decode.`` prefix, switches
that line; ``student_step`` with no mistake is a correct step). ``with_mistakes(*names)`` makes a
step with several at once. ``classic_steps(vqgan)`` is every one of them by mistake id.
``decode.sample_temperature`` only shows with ``sample_temperature > 0`` (labcore's default is 0).

Re-encoding the decoded image at every step (``decode.reencodes``) needs the tokenizer, which a
step is not given: ``reencoding_step(vqgan)`` builds that step. It takes a correct step, decodes
its filled tokens to pixels with the VQGAN, encodes those pixels again, and puts the re-encoded
ids in place of every token that is known after the step (in the token map and in the filled
map; still-masked positions keep the mask id and their prediction). That is exactly what a loop
that does ``tokens = encode(decode(tokens))`` at each step feeds the next step: the known tokens
(the input's and the ones already decoded) drift to whatever the VQGAN's round trip gives, which
is not what the transformer predicted.

Not here: ``decode.shape`` and ``decode.error`` (a step with those cannot run in the loop; the
tests write them), the mistakes that only the adversarial suite writes (tests/test_adversarial_decode.py:
other count rules, a fixed schedule, the noise's law, changed inputs), and the generic fallbacks.

These steps are labcore's code, not a student's: ``check_decode_step`` gives any step that reaches
this module (or runs its code) ``decode.uses_reference``; ``labcore.checkers.decoding.probe_decode_step``
runs the same probes without that test, which is how the tests prove each step's diagnosis.
"""

from __future__ import annotations

import math

import torch

from labcore.decoding import StepResult, decode_step, gumbel

MISTAKE_NAMES = ("predicts_mask_token", "remasks_known", "overwrites_known", "keeps_least_confident",
                 "confidence_from_logits", "count_from_current", "count_ceil", "count_bounds",
                 "m0_not_per_image", "masked_not_reset", "shared_gumbel", "noise_shared_across_batch",
                 "gumbel_on_probs", "no_annealing", "anneal_with_gamma", "sample_temperature")


@torch.no_grad()
def student_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None, *,
                 mistakes=()):
    """A student's decoding step; each name in ``mistakes`` (see ``MISTAKE_NAMES``) writes its
    line the wrong way. With no mistakes it is correct (another way than labcore's)."""
    wrong = set(mistakes)
    unknown = wrong - set(MISTAKE_NAMES)
    if unknown:
        raise ValueError(f"unknown mistakes {sorted(unknown)}; choose from {MISTAKE_NAMES}")
    K, dev = mask_token_id, masked.device
    if "masked_not_reset" not in wrong:
        tokens = tokens.masked_fill(masked, K)            # the model sees the mask token where masked
    logits = transformer(tokens).float()                  # (B, N, K+1)
    if "predicts_mask_token" not in wrong:
        logits = logits[..., :K]                          # wrong: keeps the mask token's logit
    temp = settings.sample_temperature
    if temp > 0:                                          # Gumbel-max sample of softmax(logits / temp)
        scaled = logits if "sample_temperature" in wrong else logits / temp  # wrong: no temperature
        predicted = (scaled + gumbel(logits.shape, generator, dev)).argmax(-1)
    else:
        predicted = logits.argmax(-1)                     # (B, N)
    log_p = logits.log_softmax(-1).gather(-1, predicted[..., None])[..., 0]   # (B, N)
    if "confidence_from_logits" in wrong:
        confidence = logits.gather(-1, predicted[..., None])[..., 0]         # wrong: the raw logit
    elif "gumbel_on_probs" in wrong:
        confidence = log_p.exp()                                             # wrong: p, not log p
    else:
        confidence = log_p
    if "keeps_least_confident" in wrong:
        confidence = -confidence                          # wrong: sorts by the loss -log p, not log p
    tau = settings.choice_temperature
    if tau > 0:
        if "no_annealing" in wrong:
            scale = tau                                   # wrong: never annealed
        elif "anneal_with_gamma" in wrong:
            scale = tau * settings.gamma_fn(ratio)        # wrong: gamma(t/T), not 1 - t/T
        else:
            scale = tau * (1 - ratio)
        if "shared_gumbel" in wrong:
            shape = ()                                    # wrong: one sample for every token
        elif "noise_shared_across_batch" in wrong:
            shape = masked.shape[1:]                      # wrong: (N,), the same for every image
        else:
            shape = masked.shape                          # (B, N): one per token
        confidence = confidence + scale * gumbel(shape, generator, dev)
    if "remasks_known" not in wrong:
        confidence = confidence.masked_fill(~masked, math.inf)   # known tokens: never re-masked
    if "overwrites_known" in wrong:
        filled = predicted                                # wrong: known tokens take the argmax too
    else:
        filled = torch.where(masked, predicted, tokens)

    remaining = masked.sum(1)                             # (B,)
    if "count_from_current" in wrong:
        M0 = remaining                                    # wrong: the count now, not the initial one
    elif "m0_not_per_image" in wrong:
        M0 = m0.max().expand_as(m0)                       # wrong: one M0 for the whole batch
    else:
        M0 = m0
    rounding = torch.ceil if "count_ceil" in wrong else torch.floor          # wrong: ceil
    n = rounding(settings.gamma_fn(ratio) * M0.double()).long().to(dev)      # (B,)
    if "count_bounds" not in wrong:                       # wrong: no clamp, no 0 at the last step
        n = torch.zeros_like(n) if ratio >= 1 else torch.clamp(torch.minimum(n, remaining - 1), min=1)
        n = torch.where(remaining > 0, n, torch.zeros_like(n))
    rank = confidence.argsort(1).argsort(1)               # (B, N) 0 = least confident
    new_masked = rank < n[:, None]
    new_tokens = filled if "masked_not_reset" in wrong else filled.masked_fill(new_masked, K)
    return StepResult(new_tokens, new_masked, filled)


def with_mistakes(*names):
    """A step with decode_step's signature that makes every mistake in ``names`` at once."""
    def step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
        return student_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator,
                            mistakes=names)
    step.__doc__ = f"decode_step with the mistakes {', '.join('decode.' + n for n in names) or '(none)'}."
    step.__name__ = "_and_".join(names) or "student_step"
    return step


# ----------------------------------------------------------------------------- one function per mistake

def predicts_mask_token(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """decode.predicts_mask_token: argmax over all K+1 logits, the mask token's included (with a
    trained transformer the mask token rarely wins; when it does, decoding the image fails)."""
    return student_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator,
                        mistakes=["predicts_mask_token"])


def remasks_known(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """decode.remasks_known: known tokens keep their own confidence (no +inf), so the least confident
    of them are masked again."""
    return student_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator,
                        mistakes=["remasks_known"])


def overwrites_known(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """decode.overwrites_known: filled = predicted everywhere, so known tokens take the argmax."""
    return student_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator,
                        mistakes=["overwrites_known"])


def keeps_least_confident(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """decode.keeps_least_confident: sorts by -log p (the loss), so the most confident are masked again."""
    return student_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator,
                        mistakes=["keeps_least_confident"])


def confidence_from_logits(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """decode.confidence_from_logits: the confidence is the chosen token's raw logit, not log p."""
    return student_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator,
                        mistakes=["confidence_from_logits"])


def count_from_current(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """decode.count_from_current: n = floor(gamma(t/T) * masked.sum(1)) instead of M0."""
    return student_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator,
                        mistakes=["count_from_current"])


def count_ceil(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """decode.count_ceil: n = ceil(gamma(t/T) * M0) instead of floor."""
    return student_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator,
                        mistakes=["count_ceil"])


def count_bounds(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """decode.count_bounds: n = floor(gamma(t/T) * M0) without the clamp to [1, remaining - 1]."""
    return student_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator,
                        mistakes=["count_bounds"])


def m0_not_per_image(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """decode.m0_not_per_image: one M0 (the batch's largest) for every image."""
    return student_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator,
                        mistakes=["m0_not_per_image"])


def masked_not_reset(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """decode.masked_not_reset: returns the filled map as the tokens (still-masked positions keep
    their prediction, not K) and trusts its input, so the next step's transformer sees predictions
    where it should see the mask token."""
    return student_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator,
                        mistakes=["masked_not_reset"])


def shared_gumbel(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """decode.shared_gumbel: ONE Gumbel sample (a scalar) added to every confidence: no effect on
    the order at all."""
    return student_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator,
                        mistakes=["shared_gumbel"])


def noise_shared_across_batch(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """decode.noise_shared_across_batch: noise of shape (N,), the same for every image of the batch."""
    return student_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator,
                        mistakes=["noise_shared_across_batch"])


def gumbel_on_probs(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """decode.gumbel_on_probs: confidence = p + tau * (1 - t/T) * g, on probabilities, not log p."""
    return student_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator,
                        mistakes=["gumbel_on_probs"])


def no_annealing(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """decode.no_annealing: noise scale tau at every step (never annealed to 0)."""
    return student_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator,
                        mistakes=["no_annealing"])


def anneal_with_gamma(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """decode.anneal_with_gamma: noise scale tau * gamma(t/T) instead of tau * (1 - t/T)."""
    return student_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator,
                        mistakes=["anneal_with_gamma"])


def sample_temperature(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """decode.sample_temperature: with sample_temperature > 0, samples softmax(logits), the
    temperature forgotten (no effect at sample_temperature = 0, labcore's default)."""
    return student_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator,
                        mistakes=["sample_temperature"])


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
    """Mistake id -> a wrong step with decode_step's signature; ``decode.reencodes`` only with a
    ``vqgan`` (a VQGAN or a MaskGit)."""
    steps = {f"decode.{name}": globals()[name] for name in MISTAKE_NAMES}
    if vqgan is not None:
        steps["decode.reencodes"] = reencoding_step(vqgan)
    return steps
