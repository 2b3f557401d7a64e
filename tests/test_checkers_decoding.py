"""The checker of exercise 6 (one decoding step): ``labcore.checkers.check_decode_step``.

Every specific mistake id ``decode.*`` is proved by a wrong step: labcore's classic ones
(``labcore.decoding_variants``, judged by ``probe_decode_step``, the probes without the test of
whose code it is) or the adversarial suite's (tests/test_adversarial_decode.py). Correct steps
written differently from labcore's (other noise, other random stream, other selection, loops)
must pass: the checker judges properties, never labcore's random stream. labcore's own steps
passed to ``check_decode_step`` are ``decode.uses_reference``.
"""

from __future__ import annotations

import functools
import math
import statistics
import time

import pytest
import torch

from labcore import decoding_variants as variants
from labcore.checkers import MISTAKES, check_decode_step, mistakes_of
from labcore.checkers.decoding import probe_decode_step
from labcore.checkers.fixtures import tiny_transformer, tiny_vqgan
from labcore.decoding import DecodingSettings, StepResult, decode, decode_step, gumbel
from labcore.maskgit import MaskGit

pytestmark = pytest.mark.usefixtures("one_thread")

SPECIFIC = sorted(i for i, m in mistakes_of("decode").items() if not m.generic)


@functools.lru_cache(maxsize=None)
def checker_vqgan():
    """A tiny random VQGAN with the checker's token map: K = 8 codes, 4x4 tokens."""
    return tiny_vqgan(K=8, img_resolution=16, latent_resolution=4)


def _kept_count(ratio, m0, remaining, settings) -> int:
    """n, how many stay masked, as a student writes it with Python numbers."""
    if ratio >= 1 or remaining == 0:
        return 0
    n = math.floor(settings.gamma_fn(ratio) * m0)
    return max(1, min(n, remaining - 1))


# ----------------------------------------------------------------------------- wrong steps

def returns_int_mask(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """decode.dtype: the new mask comes back as 0/1 integers (rank < n).long(), not bools."""
    out = decode_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator)
    return out.tokens, out.masked.long(), out.filled


def wrong_step(mistake: str):
    if mistake == "decode.dtype":
        return returns_int_mask
    return variants.classic_steps(checker_vqgan())[mistake]


WRONG = ["decode.dtype", *variants.classic_steps(checker_vqgan())]


def test_every_specific_decode_mistake_has_a_wrong_step():
    from test_adversarial_decode import WRONG as ADVERSARIAL
    proved = set(WRONG) | {case.expect for case in ADVERSARIAL}
    missing, extra = set(SPECIFIC) - proved, set(WRONG) - set(SPECIFIC)
    assert not missing, f"mistake ids with no wrong step proving them: {sorted(missing)}"
    assert not extra, f"wrong steps for ids that are not specific decode mistakes: {sorted(extra)}"


@pytest.mark.parametrize("mistake", WRONG, ids=WRONG)
def test_wrong_step_is_caught_and_named(mistake):
    result = probe_decode_step(wrong_step(mistake))
    assert not result.passed, f"{mistake}: the checker passed a wrong step\n{result}"
    assert check_decode_step(wrong_step(mistake)).mistakes == ["decode.uses_reference"]
    assert mistake in result.mistakes, f"{mistake}: not named, got {result.mistakes}\n{result}"


def test_wrong_steps_name_their_mistake_in_the_docstring():
    for mistake, step in variants.classic_steps(checker_vqgan()).items():
        assert step.__doc__ and mistake in step.__doc__, f"{step.__name__}: docstring should name {mistake}"


@pytest.mark.parametrize("names", [
    ("overwrites_known", "count_ceil", "gumbel_on_probs", "no_annealing", "predicts_mask_token"),
    ("shared_gumbel", "count_from_current", "remasks_known", "sample_temperature"),
    ("noise_shared_across_batch", "m0_not_per_image", "masked_not_reset", "confidence_from_logits"),
], ids=lambda names: "+".join(names))
def test_several_mistakes_are_all_named(names):
    result = probe_decode_step(variants.with_mistakes(*names))
    assert not result.passed
    missing = [f"decode.{n}" for n in names if f"decode.{n}" not in result.mistakes]
    assert not missing, f"not named: {missing}; got {result.mistakes}\n{result}"


def test_ignoring_choice_temperature_fails():
    """A hard-coded tau (not settings.choice_temperature): the noise has the wrong scale."""
    def fixed_tau(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
        if settings.choice_temperature > 0:
            settings = settings.replace(choice_temperature=1.0)       # tau = 1 written in the step
        return decode_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator)
    result = probe_decode_step(fixed_tau)
    assert not result.passed and result.mistakes == ["decode.noise_scale"], str(result)


# ----------------------------------------------------------------------------- the generic fallbacks

def test_step_that_raises_is_decode_error():
    def raises(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
        logits = transformer(tokens)
        return logits.argmax(-1) @ masked                 # a student's shape slip: matmul of (B, N) by (B, N)
    result = check_decode_step(raises)
    assert not result.passed
    assert result.mistakes == ["decode.error"], str(result)
    assert "RuntimeError" in str(result) and "line" in str(result)


def test_step_returning_one_tensor_is_decode_shape():
    def one_tensor(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
        return decode_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator).tokens
    result = probe_decode_step(one_tensor)
    assert result.mistakes == ["decode.shape"], str(result)
    assert "skipped" in str(result)


def test_report_names_mistake_and_fix():
    report = str(probe_decode_step(variants.classic_steps()["decode.gumbel_on_probs"]))
    mistake = MISTAKES["decode.gumbel_on_probs"]
    assert report.startswith("check_decode_step: FAIL")
    for text in ("[decode.gumbel_on_probs]", mistake.message, f"fix: {mistake.fix}", "expected"):
        assert text in report, f"the report lacks {text!r}:\n{report}"


# ----------------------------------------------------------------------------- correct steps, written differently

@torch.no_grad()
def distributions_topk(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """torch.distributions for both random draws (torch's global stream), probabilities then log,
    topk per image."""
    K = mask_token_id
    tokens = torch.where(masked, torch.full_like(tokens, K), tokens)
    logits = transformer(tokens)[:, :, :K]
    t = settings.sample_temperature
    predicted = (torch.distributions.Categorical(logits=logits / t).sample() if t > 0 else logits.argmax(2))
    probs = torch.softmax(logits.double(), dim=2)
    confidence = torch.log(torch.gather(probs, 2, predicted.unsqueeze(2)).squeeze(2))
    scale = settings.choice_temperature * (1 - ratio)
    if scale > 0:
        confidence = confidence + scale * torch.distributions.Gumbel(0.0, 1.0).sample(masked.shape).double()
    confidence[~masked] = float("inf")
    filled = torch.where(masked, predicted, tokens)
    new_masked = torch.zeros_like(masked)
    for b in range(len(masked)):
        n = _kept_count(ratio, int(m0[b]), int(masked[b].sum()), settings)
        if n > 0:
            new_masked[b, confidence[b].topk(n, largest=False).indices] = True
    return filled.masked_fill(new_masked, K), new_masked, filled


@torch.no_grad()
def own_generator_kthvalue(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """Its own torch.Generator seeded from the given one, the uniforms drawn in (N, B) order,
    -log(-log(u)) noise, torch.multinomial samples, a kthvalue threshold per image."""
    K = mask_token_id
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    own = torch.Generator().manual_seed(seed)
    logits = transformer(tokens.masked_fill(masked, K))[..., :K].float()
    t = settings.sample_temperature
    if t > 0:
        probs = torch.softmax(logits / t, dim=-1).reshape(-1, K)
        predicted = torch.multinomial(probs, 1, generator=own).reshape(masked.shape)
    else:
        predicted = logits.argmax(-1)
    confidence = torch.log_softmax(logits, -1).gather(-1, predicted[..., None])[..., 0]
    if settings.choice_temperature > 0:
        u = torch.rand(masked.shape[1], masked.shape[0], generator=own).T        # (B, N) from (N, B)
        confidence = confidence + settings.choice_temperature * (1 - ratio) * -torch.log(-torch.log(u))
    confidence = torch.where(masked, confidence, torch.tensor(float("inf")))
    new_masked = torch.zeros_like(masked)
    for b in range(len(masked)):
        n = _kept_count(ratio, int(m0[b]), int(masked[b].sum()), settings)
        if n > 0:
            new_masked[b] = confidence[b] <= confidence[b].kthvalue(n).values
    filled = torch.where(masked, predicted, tokens)
    return StepResult(torch.where(new_masked, K, filled), new_masked, filled)


@torch.no_grad()
def python_loop_exponential(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """A Python loop over images and tokens; Gumbel noise as -log(E), E ~ Exp(1) (exponential_),
    sampling by Gumbel-max with the same trick; the order by Python's sorted()."""
    K = mask_token_id
    logits = transformer(tokens.masked_fill(masked, K))[..., :K].double()
    new_tokens, new_masked, filled = tokens.clone(), torch.zeros_like(masked), tokens.clone()
    tau, t = settings.choice_temperature * (1 - ratio), settings.sample_temperature
    for b in range(tokens.shape[0]):
        positions = masked[b].nonzero().flatten().tolist()
        scored = []
        for i in positions:
            if t > 0:
                g = -torch.empty(K, dtype=torch.float64).exponential_(generator=generator).log()
                choice = int((logits[b, i] / t + g).argmax())
            else:
                choice = int(logits[b, i].argmax())
            score = float(torch.log_softmax(logits[b, i], 0)[choice])
            if tau > 0:
                score += tau * -math.log(float(torch.empty(1, dtype=torch.float64).exponential_(generator=generator)))
            scored.append((score, i, choice))
            filled[b, i] = choice
        n = _kept_count(ratio, int(m0[b]), len(positions), settings)
        for rank, (_, i, choice) in enumerate(sorted(scored)):
            new_masked[b, i] = rank < n
            new_tokens[b, i] = K if rank < n else choice
    return new_tokens, new_masked, filled


@torch.no_grad()
def plackett_luce(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """The Gumbel-top-k trick read backwards: the tokens decoded are drawn WITHOUT replacement with
    torch.multinomial, weights p^(1 / (tau * (1 - t/T))) (the same law as sorting log p + noise)."""
    K = mask_token_id
    logits = transformer(tokens.masked_fill(masked, K))[..., :K].double()
    t = settings.sample_temperature
    if t > 0:
        probs = torch.softmax(logits / t, -1)
        predicted = torch.multinomial(probs.flatten(0, 1), 1, generator=generator).view(masked.shape)
    else:
        predicted = logits.argmax(-1)
    log_p = torch.log_softmax(logits, -1).gather(-1, predicted[..., None])[..., 0]
    s = settings.choice_temperature * (1 - ratio)
    new_masked = masked.clone()
    for b in range(len(masked)):
        where = masked[b].nonzero().flatten()
        decode_now = len(where) - _kept_count(ratio, int(m0[b]), len(where), settings)
        if decode_now <= 0:
            continue
        if s > 0:
            weights = torch.softmax(log_p[b, where] / s, 0)
            chosen = torch.multinomial(weights, decode_now, replacement=False, generator=generator)
        else:
            chosen = log_p[b, where].argsort(descending=True)[:decode_now]
        new_masked[b, where[chosen]] = False
    filled = torch.where(masked, predicted, tokens)
    return filled.masked_fill(new_masked, K), new_masked, filled


@torch.no_grad()
def vectorised_copy(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """A student's vectorised step (the notebook's solution, typed again): labcore's draws, in its order."""
    K = mask_token_id
    tokens = tokens.masked_fill(masked, K)                                     # (B, N)
    logits = transformer(tokens)[..., :K].float()                              # (B, N, K)
    t = settings.sample_temperature
    predicted = (logits / t + gumbel(logits.shape, generator, logits.device)).argmax(-1) if t > 0 else logits.argmax(-1)
    confidence = logits.log_softmax(-1).gather(-1, predicted[..., None])[..., 0]   # (B, N)
    if settings.choice_temperature > 0:
        noise = gumbel(masked.shape, generator, masked.device)                 # (B, N)
        confidence = confidence + settings.choice_temperature * (1 - ratio) * noise
    confidence = confidence.masked_fill(~masked, float("inf"))                 # (B, N)
    filled = torch.where(masked, predicted, tokens)                            # (B, N)
    remaining = masked.sum(1)                                                  # (B,)
    n = torch.clamp(torch.minimum(torch.floor(settings.gamma_fn(ratio) * m0.double()).long(), remaining - 1), min=1)
    n = torch.where((remaining > 0) & (ratio < 1), n, torch.zeros_like(n))     # (B,)
    new_masked = confidence.argsort(dim=1, stable=True).argsort(dim=1) < n[:, None]  # (B, N)
    return StepResult(filled.masked_fill(new_masked, K), new_masked, filled)


CORRECT = [vectorised_copy, distributions_topk, own_generator_kthvalue, python_loop_exponential, plackett_luce]


@pytest.mark.parametrize("step", [decode_step, variants.student_step], ids=lambda s: s.__name__)
def test_labcore_s_own_steps_pass_the_probes_but_are_not_the_student_s(step):
    assert probe_decode_step(step).passed, str(probe_decode_step(step))
    assert check_decode_step(step).mistakes == ["decode.uses_reference"]


@pytest.mark.parametrize("step", CORRECT, ids=lambda s: s.__name__)
def test_correct_step_passes(step):
    result = check_decode_step(step)
    assert result.passed, f"{step.__name__} is correct but failed:\n{result}"
    assert result.mistakes == []


@pytest.mark.parametrize("seed", [1, 2])
def test_correct_steps_pass_with_other_checker_seeds(seed):
    for step in (vectorised_copy, own_generator_kthvalue, plackett_luce):
        result = check_decode_step(step, seed=seed)
        assert result.passed, f"{step.__name__}, seed {seed}:\n{result}"


def test_checker_is_fast():
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        check_decode_step(vectorised_copy)
        times.append(time.perf_counter() - t0)
    assert statistics.median(times) < 3.0, f"check_decode_step took {times} s"


# ----------------------------------------------------------------------------- the wrong steps run in the real loop

@pytest.mark.parametrize("mistake", list(variants.classic_steps(checker_vqgan())))
def test_wrong_step_runs_in_decode_and_inpaint(mistake):
    """Tiny models with the checker's sizes (K = 8, 4x4 tokens): ``decode`` and ``MaskGit.inpaint``
    run each wrong step to the end (the notebook measures their cost on the bundled model)."""
    step = variants.classic_steps(checker_vqgan())[mistake]
    maskgit = MaskGit(checker_vqgan(), tiny_transformer(K=8, N=16))
    gen = torch.Generator().manual_seed(0)
    masked = torch.rand(2, 4, 4, generator=gen) < 0.6
    tokens = torch.randint(0, 8, (2, 4, 4), generator=gen)
    settings = DecodingSettings(total_iter=4, sample_temperature=1.0 if "sample" in mistake else 0.0)
    final, trace = decode(maskgit.transformer, tokens, masked, 8, settings, step=step)
    assert final.shape == (2, 4, 4) and trace.masked.shape == (4, 2, 4, 4)
    if mistake != "decode.predicts_mask_token":  # its ids may be K, which no VQGAN decodes: that is its cost
        images = torch.randn(2, 3, 16, 16)
        masks = torch.ones(2, 1, 16, 16)
        masks[:, :, 4:12, 4:12] = 0
        out = maskgit.inpaint(images, masks, settings, step=step)
        assert out.images.shape == (2, 3, 16, 16) and torch.isfinite(out.images).all()


# ----------------------------------------------------------------------------- the checker's own cases

def test_every_count_mistake_gives_other_counts_than_every_other():
    """Over the checker's four images, five ratios and four schedules, no two count rules with
    different ids (or a fixed schedule) give the same counts: each is named, never another."""
    from labcore.checkers import decoding as d, decoding_laws as laws
    from labcore.schedules import gamma
    m0, rem = torch.tensor(d.M0), torch.tensor(d.REMAINING)
    tables: dict = {}
    rules = len(laws.count_candidates(0.5, m0, rem, gamma("cosine"), d.N, d.T))
    for i in range(rules):
        rows = [laws.count_candidates(r, m0, rem, gamma(s), d.N, d.T)[i] for s in d.SCHEDULES for r in d.RATIOS]
        tables.setdefault(tuple(tuple(c.tolist()) for _, c in rows), set()).add(rows[0][0])
    for j, name in enumerate(laws.FIXED_SCHEDULES):
        rows = [laws.fixed_schedule_counts(r, m0, rem)[j][1] for _ in d.SCHEDULES for r in d.RATIOS]
        tables.setdefault(tuple(tuple(c.tolist()) for c in rows), set()).add(f"fixed {name}")
    assert all(len(ids) == 1 for ids in tables.values()), [ids for ids in tables.values() if len(ids) > 1]


def test_the_stub_transformer_has_a_parameter_and_stays_a_stub():
    from labcore.checkers.fixtures import FixedLogits
    logits = torch.randn(2, 16, 9)
    stub = FixedLogits(logits)
    assert next(stub.parameters()).device == torch.device("cpu")
    assert torch.equal(stub(torch.zeros(2, 16, dtype=torch.long)), logits)


def test_the_tiny_model_factory_is_seeded_apart_from_the_callers_stream():
    """The one factory of tiny models (checkers and tests): the same seed gives the same weights,
    another seed others, the caller's random stream is left as it was; a spread codebook gives an
    image ids all over the codebook (a fresh one, a handful)."""
    torch.manual_seed(123)
    want = torch.rand(3)
    torch.manual_seed(123)
    a, b, c = tiny_transformer(K=8, N=16, seed=1), tiny_transformer(K=8, N=16, seed=1), tiny_transformer(seed=2)
    spread, fresh = tiny_vqgan(K=32), tiny_vqgan(K=32, spread_codebook=False)
    assert torch.equal(torch.rand(3), want)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(next(a.parameters()), next(c.parameters()))
    images = torch.randn(2, 3, 64, 64)
    assert spread.encode_to_indices(images).unique().numel() > 2 * fresh.encode_to_indices(images).unique().numel()


def test_a_passing_check_is_recorded_for_the_fallback():
    from labcore.checkers.fallback import last_check, yours_or_reference
    result = check_decode_step(vectorised_copy)
    assert result.passed and last_check("decode_step") is result
    assert yours_or_reference("decode_step") is vectorised_copy
    check_decode_step(decode_step)                                   # labcore's: uses_reference
    assert yours_or_reference("decode_step") is decode_step          # the reference, picked by the fallback
