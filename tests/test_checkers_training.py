"""The checkers of exercises 4 (masked training step: ``check_masking``) and 5 (training loop:
``check_training_loop``), tested the way a marker would: for every mistake id of the table a wrong
implementation written as a student would write it must fail WITH that id, and several correct
implementations, each written differently from labcore's (other random draws, other noise order,
torch.distributions, loops, other loss formulations, other optimizer groupings, other orders of
zero_grad), must pass with no mistake at all.

Each student function below is a plain function with the signature the notebook asks for:

    mask_tokens(tokens, mask_token_id, gamma_fn, generator=None) -> (inputs, masked)
    masked_loss(logits, targets, masked) -> scalar tensor
    configure_optimizers(model, lr, weight_decay, betas=(0.9, 0.96)) -> torch.optim.Optimizer
    train_one_epoch(model, loader, optimizer, mask_token_id, gamma_fn) -> float
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labcore.checkers import MISTAKES, check_masking, check_training_loop, mistakes_of
from labcore.maskgit import mvtm_loss


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Tiny tensors: one torch thread (conftest's ``one_thread``) for the whole module."""


def _report(result) -> str:
    return f"\n--- the checker's report ---\n{result}"


def assert_passes(result):
    assert result.passed and result.mistakes == [], "a correct implementation was failed" + _report(result)


def assert_fails_with(result, mistake: str):
    assert not result.passed, f"a wrong implementation (expected {mistake!r}) passed" + _report(result)
    assert mistake in result.mistakes, (f"expected the diagnosis {mistake!r}, got {result.mistakes}"
                                        + _report(result))


# ============================================================================ exercise 4: masking
# ---------------------------------------------------------------------------- correct mask_tokens

def mask_argsort(tokens, mask_token_id, gamma_fn, generator=None):
    """Ratio first, then a random order per row: argsort of uniform scores, ranks < n."""
    B, N = tokens.shape
    r = torch.rand(B, generator=generator)                                      # (B,)
    n = torch.ceil(gamma_fn(r) * N).long().clamp(min=1)                          # (B,)
    ranks = torch.rand(B, N, generator=generator).argsort(dim=1).argsort(dim=1)  # (B, N) a random rank per token
    masked = ranks < n[:, None]
    return tokens.masked_fill(masked, mask_token_id), masked


def mask_multinomial(tokens, mask_token_id, gamma_fn, generator=None):
    """Positions first (a permutation per row via multinomial), then the ratios; index assignment on a copy."""
    B, N = tokens.shape
    order = torch.multinomial(torch.ones(B, N), N, replacement=False, generator=generator)  # (B, N)
    r = torch.rand(B, generator=generator)
    n = torch.ceil(gamma_fn(r) * N).long().clamp(1, N)
    masked = torch.zeros(B, N, dtype=torch.bool)
    masked.scatter_(1, order, torch.arange(N).expand(B, N) < n[:, None])
    inputs = tokens.clone()
    inputs[masked] = mask_token_id
    return inputs, masked


def mask_topk_distributions(tokens, mask_token_id, gamma_fn, generator=None):
    """torch.distributions (the icdf of the generator's uniforms); python floats; topk of Gumbel scores per row."""
    B, N = tokens.shape
    r = torch.distributions.Uniform(0.0, 1.0).icdf(torch.rand(B, generator=generator))
    scores = torch.distributions.Gumbel(0.0, 1.0).icdf(torch.rand(B, N, generator=generator).clamp(1e-6, 1 - 1e-6))
    masked = torch.zeros_like(tokens, dtype=torch.bool)
    for b in range(B):
        n = max(1, math.ceil(float(gamma_fn(float(r[b]))) * N))
        masked[b, scores[b].topk(n).indices] = True
    return torch.where(masked, torch.full_like(tokens, mask_token_id), tokens), masked


def mask_randperm_loop(tokens, mask_token_id, gamma_fn, generator=None):
    """One row at a time, ratio and positions interleaved: randperm per image."""
    B, N = tokens.shape
    inputs, masked = tokens.clone(), torch.zeros(B, N, dtype=torch.bool)
    for b in range(B):
        r = torch.rand((), generator=generator)
        n = int(torch.ceil(torch.as_tensor(gamma_fn(r)) * N).clamp(1, N))
        masked[b, torch.randperm(N, generator=generator)[:n]] = True
    inputs[masked] = mask_token_id
    return inputs, masked


def mask_sorted_threshold(tokens, mask_token_id, gamma_fn, generator=None):
    """Numpy for the ratios, a threshold on sorted scores (the n-th smallest per row)."""
    B, N = tokens.shape
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    rng = np.random.default_rng(seed)
    r = torch.from_numpy(rng.random(B))                                         # float64 (B,)
    n = torch.ceil(torch.as_tensor(gamma_fn(r)) * N).long().clamp(1, N)
    scores = torch.from_numpy(rng.random((B, N)))                               # (B, N)
    threshold = scores.sort(dim=1).values.gather(1, (n - 1)[:, None])           # (B, 1)
    masked = scores <= threshold
    inputs = torch.where(masked, mask_token_id, tokens)
    return inputs, masked


CORRECT_MASK_TOKENS = [mask_argsort, mask_multinomial, mask_topk_distributions, mask_randperm_loop,
                       mask_sorted_threshold]


# ---------------------------------------------------------------------------- correct masked_loss

def loss_index(logits, targets, masked):
    return F.cross_entropy(logits[masked], targets[masked])


def loss_ignore_index(logits, targets, masked):
    """The known positions' targets set to -100 (cross_entropy's default ignore_index)."""
    targets = targets.masked_fill(~masked, -100)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def loss_log_softmax_gather(logits, targets, masked):
    nll = -logits.log_softmax(dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)   # (B, N)
    return (nll * masked).sum() / masked.sum()


def loss_transposed_nll(logits, targets, masked):
    """(B, K+1, N) layout, nll_loss, own ignore index."""
    logp = F.log_softmax(logits.transpose(1, 2), dim=1)                        # (B, K+1, N)
    return F.nll_loss(logp, torch.where(masked, targets, -1), ignore_index=-1)


def loss_codebook_only(logits, targets, masked):
    """Over the K codebook classes only (the mask id is never a target)."""
    K = logits.shape[-1] - 1
    return F.cross_entropy(logits[..., :K][masked], targets[masked])


CORRECT_MASKED_LOSS = [loss_index, loss_ignore_index, loss_log_softmax_gather, loss_transposed_nll,
                       loss_codebook_only]


# ---------------------------------------------------------------------------- wrong mask_tokens

def mask_inverted_formula(tokens, mask_token_id, gamma_fn, generator=None):
    inputs, masked = mask_argsort(tokens, mask_token_id, gamma_fn, generator)
    return torch.where(masked, tokens, mask_token_id), masked          # keeps the masked, masks the known


def mask_inverted_selection(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    n = torch.ceil(gamma_fn(torch.rand(B, generator=generator)) * N).long()
    ranks = torch.rand(B, N, generator=generator).argsort(1).argsort(1)
    masked = ranks >= n[:, None]                                        # keeps n, masks the N - n others
    return tokens.masked_fill(masked, mask_token_id), masked


def mask_multiply(tokens, mask_token_id, gamma_fn, generator=None):
    _, masked = mask_argsort(tokens, mask_token_id, gamma_fn, generator)
    return tokens * ~masked, masked                                     # masked tokens become 0: a codebook id


def mask_last_code(tokens, mask_token_id, gamma_fn, generator=None):
    _, masked = mask_argsort(tokens, mask_token_id, gamma_fn, generator)
    return tokens.masked_fill(masked, mask_token_id - 1), masked        # "ids start at 0": K - 1


def mask_ratio_per_batch(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    r = torch.rand(1, generator=generator)                              # one ratio for the whole batch
    n = max(1, math.ceil(float(gamma_fn(r)) * N))
    ranks = torch.rand(B, N, generator=generator).argsort(1).argsort(1)
    masked = ranks < n
    return tokens.masked_fill(masked, mask_token_id), masked


def mask_same_positions(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    n = torch.ceil(gamma_fn(torch.rand(B, generator=generator)) * N).long().clamp(min=1)
    order = torch.randperm(N, generator=generator)                      # one order for every image
    masked = torch.zeros(B, N, dtype=torch.bool)
    for b in range(B):
        masked[b, order[:n[b]]] = True
    return tokens.masked_fill(masked, mask_token_id), masked


def mask_no_gamma(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    r = torch.rand(B, generator=generator)
    n = torch.ceil(r * N).long().clamp(min=1)                            # the ratio itself, gamma_fn forgotten
    ranks = torch.rand(B, N, generator=generator).argsort(1).argsort(1)
    masked = ranks < n[:, None]
    return tokens.masked_fill(masked, mask_token_id), masked


def mask_bernoulli(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    p = gamma_fn(torch.rand(B, generator=generator))                     # each token masked with probability gamma
    masked = torch.rand(B, N, generator=generator) < p[:, None]
    return tokens.masked_fill(masked, mask_token_id), masked


def mask_in_place(tokens, mask_token_id, gamma_fn, generator=None):
    _, masked = mask_argsort(tokens, mask_token_id, gamma_fn, generator)
    tokens[masked] = mask_token_id                                      # overwrites the caller's tokens
    return tokens, masked


def mask_long_mask(tokens, mask_token_id, gamma_fn, generator=None):
    inputs, masked = mask_argsort(tokens, mask_token_id, gamma_fn, generator)
    return inputs, masked.long()                                        # 0/1 ints instead of bool


def mask_inputs_only(tokens, mask_token_id, gamma_fn, generator=None):
    return mask_argsort(tokens, mask_token_id, gamma_fn, generator)[0]


def mask_two_draws(tokens, mask_token_id, gamma_fn, generator=None):
    inputs, _ = mask_argsort(tokens, mask_token_id, gamma_fn, generator)
    _, masked = mask_argsort(tokens, mask_token_id, gamma_fn, generator)  # the mask of another draw
    return inputs, masked


def mask_swapped(tokens, mask_token_id, gamma_fn, generator=None):
    inputs, masked = mask_argsort(tokens, mask_token_id, gamma_fn, generator)
    return masked, inputs                                               # the pair in the wrong order


def _mask_with_count(count_of):
    """mask_argsort with n = count_of(shares (B,), N, B) instead of ceil(shares * N) clamped to [1, N]."""
    def mask_tokens(tokens, mask_token_id, gamma_fn, generator=None):
        B, N = tokens.shape
        n = count_of(gamma_fn(torch.rand(B, generator=generator)), N, B)
        ranks = torch.rand(B, N, generator=generator).argsort(1).argsort(1)
        return tokens.masked_fill(ranks < n[:, None], mask_token_id), ranks < n[:, None]
    return mask_tokens


mask_floor = _mask_with_count(lambda g, N, B: torch.floor(g * N).long().clamp(1, N))           # floor, not ceil
mask_no_minimum = _mask_with_count(lambda g, N, B: torch.ceil(g * N).long())                    # may mask none
mask_n_from_len = _mask_with_count(lambda g, N, B: torch.ceil(g * B).long().clamp(1, N))        # N = len(tokens)


def mask_fixed_cosine(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    n = torch.ceil(torch.cos(torch.rand(B, generator=generator) * math.pi / 2) * N).long().clamp(1, N)  # not gamma_fn
    ranks = torch.rand(B, N, generator=generator).argsort(1).argsort(1)
    return tokens.masked_fill(ranks < n[:, None], mask_token_id), ranks < n[:, None]


def mask_half_ratios(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    n = torch.ceil(gamma_fn(0.5 * torch.rand(B, generator=generator)) * N).long().clamp(1, N)  # r ~ U(0, 0.5)
    ranks = torch.rand(B, N, generator=generator).argsort(1).argsort(1)
    return tokens.masked_fill(ranks < n[:, None], mask_token_id), ranks < n[:, None]


def mask_one_block(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    n = torch.ceil(gamma_fn(torch.rand(B, generator=generator)) * N).long().clamp(1, N)
    start = (torch.rand(B, generator=generator) * (N - n + 1)).long()   # one block of n at a random place
    pos = torch.arange(N)[None, :]
    masked = (pos >= start[:, None]) & (pos < (start + n)[:, None])
    return tokens.masked_fill(masked, mask_token_id), masked


def mask_no_generator(tokens, mask_token_id, gamma_fn):
    return mask_argsort(tokens, mask_token_id, gamma_fn)                # draws from the global stream


def mask_calls_reference(tokens, mask_token_id, gamma_fn, generator=None):
    from labcore.checkers.masking import reference_mask_tokens
    return reference_mask_tokens(tokens, mask_token_id, gamma_fn, generator)


def mask_raises(tokens, mask_token_id, gamma_fn, generator=None):
    B, H, W = tokens.shape                                              # expects (B, 16, 16)
    return tokens, tokens


# ---------------------------------------------------------------------------- wrong masked_loss

def loss_all_tokens(logits, targets, masked):
    return F.cross_entropy(logits.transpose(1, 2), targets)             # masked forgotten


def loss_on_known(logits, targets, masked):
    return F.cross_entropy(logits[~masked], targets[~masked])


def loss_sum(logits, targets, masked):
    return F.cross_entropy(logits[masked], targets[masked], reduction="sum")


def loss_per_token(logits, targets, masked):
    return F.cross_entropy(logits[masked], targets[masked], reduction="none")


def loss_item(logits, targets, masked):
    return F.cross_entropy(logits[masked], targets[masked]).item()


def loss_no_grad(logits, targets, masked):
    with torch.no_grad():
        return F.cross_entropy(logits[masked], targets[masked])


def loss_mean_over_all(logits, targets, masked):
    ce = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")   # (B, N)
    return (ce * masked).mean()                                        # divides by all B * N tokens


def loss_axis(logits, targets, masked):
    logp = F.log_softmax(logits, dim=1)                                # over the positions, not the ids
    return -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)[masked].mean()


def loss_backward_inside(logits, targets, masked):
    loss = F.cross_entropy(logits[masked], targets[masked])
    loss.backward()                                                     # the training step's job
    return loss


def loss_raw_logits(logits, targets, masked):
    return F.nll_loss(logits[masked], targets[masked])                 # no log-softmax


def loss_ignore_in_place(logits, targets, masked):
    targets[~masked] = -100                                             # changes the caller's targets
    return F.cross_entropy(logits.transpose(1, 2), targets)


def loss_calls_reference(logits, targets, masked):
    from labcore.checkers.masking import reference_masked_loss
    return reference_masked_loss(logits, targets, masked)


def loss_label_smoothing(logits, targets, masked):
    return F.cross_entropy(logits[masked], targets[masked], label_smoothing=0.1)


def loss_raises(logits, targets, masked):
    return F.cross_entropy(logits[masked], targets)                    # shapes do not match


# (mistake id, mask_tokens, masked_loss): one wrong function per row, the other one correct or absent
WRONG_MASKING = [
    ("masking.shape", mask_long_mask, None),
    ("masking.inverted", mask_inverted_formula, None),
    ("masking.mask_id_collides", mask_multiply, None),
    ("masking.ratio_per_batch", mask_ratio_per_batch, None),
    ("masking.same_positions", mask_same_positions, None),
    ("masking.count", _mask_with_count(lambda g, N, B: torch.ceil(g * N).long().clamp(1, N) + 1), None),  # n + 1
    ("masking.in_place", mask_in_place, None),
    ("masking.loss_not_scalar", None, loss_per_token),
    ("masking.loss_detached", None, loss_item),
    ("masking.loss_all_tokens", None, loss_all_tokens),
    ("masking.loss_on_known", None, loss_on_known),
    ("masking.loss_sum", None, loss_sum),
    ("masking.outputs_swapped", mask_swapped, None),
    ("masking.count_rounding", mask_floor, None),
    ("masking.count_min_one", mask_no_minimum, None),
    ("masking.count_from_batch", mask_n_from_len, None),
    ("masking.ignores_gamma", mask_fixed_cosine, None),
    ("masking.ratio_law", mask_half_ratios, None),
    ("masking.positions_not_uniform", mask_one_block, None),
    ("masking.ignores_generator", mask_no_generator, None),
    ("masking.uses_reference", mask_calls_reference, None),
    ("masking.loss_denominator", None, loss_mean_over_all),
    ("masking.loss_axis", None, loss_axis),
    ("masking.loss_backward", None, loss_backward_inside),
    ("masking.loss_not_log_probs", None, loss_raw_logits),
    ("masking.mutates_input", None, loss_ignore_in_place),
    ("masking.uses_reference", None, loss_calls_reference),
]

# more ways to make the same mistakes (the same ids must come out)
MORE_WRONG_MASKING = [
    ("masking.shape", mask_inputs_only, None),
    ("masking.inverted", mask_inverted_selection, None),
    ("masking.mask_id_collides", mask_last_code, None),
    ("masking.count", mask_bernoulli, None),
    ("masking.ignores_gamma", mask_no_gamma, None),
    ("masking.loss_detached", None, loss_no_grad),
    ("masking.loss_all_tokens", mask_argsort, loss_all_tokens),
    ("masking.inverted", mask_inverted_formula, loss_index),
]

GENERIC_MASKING = [
    ("masking.error", mask_raises, None),
    ("masking.error", None, loss_raises),
    ("masking.inconsistent", mask_two_draws, None),
    ("masking.loss_wrong", None, loss_label_smoothing),
]


def _name(fn):
    return getattr(fn, "__name__", "-")


@pytest.mark.parametrize("mistake, mask_tokens, masked_loss", WRONG_MASKING, ids=[r[0] for r in WRONG_MASKING])
def test_masking_mistake_is_caught(mistake, mask_tokens, masked_loss):
    assert_fails_with(check_masking(mask_tokens, masked_loss), mistake)


@pytest.mark.parametrize("mistake, mask_tokens, masked_loss", MORE_WRONG_MASKING,
                         ids=[f"{r[0]}-{_name(r[1] or r[2])}" for r in MORE_WRONG_MASKING])
def test_masking_mistake_written_otherwise_is_caught(mistake, mask_tokens, masked_loss):
    assert_fails_with(check_masking(mask_tokens, masked_loss), mistake)


@pytest.mark.parametrize("mistake, mask_tokens, masked_loss", GENERIC_MASKING,
                         ids=[f"{r[0]}-{_name(r[1] or r[2])}" for r in GENERIC_MASKING])
def test_masking_generic_fallback(mistake, mask_tokens, masked_loss):
    result = check_masking(mask_tokens, masked_loss)
    assert_fails_with(result, mistake)
    assert result.mistakes == [mistake], f"only the fallback {mistake!r} should be named" + _report(result)


@pytest.mark.parametrize("mask_tokens", CORRECT_MASK_TOKENS, ids=_name)
def test_correct_mask_tokens_pass(mask_tokens):
    assert_passes(check_masking(mask_tokens=mask_tokens))


@pytest.mark.parametrize("masked_loss", CORRECT_MASKED_LOSS, ids=_name)
def test_correct_masked_loss_pass(masked_loss):
    assert_passes(check_masking(masked_loss=masked_loss))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_correct_masking_passes_other_seeds(seed):
    assert_passes(check_masking(mask_randperm_loop, loss_ignore_index, seed=seed))
    assert_passes(check_masking(mask_topk_distributions, loss_log_softmax_gather, seed=seed))


def test_masking_without_generator_fails():
    """The text says to draw every random number from the generator: a signature without it fails."""
    result = check_masking(mask_no_generator, loss_index)
    assert_fails_with(result, "masking.ignores_generator")
    assert "takes no generator" in str(result), _report(result)


def test_masking_ignoring_the_generator_fails():
    def ignores_generator(tokens, mask_token_id, gamma_fn, generator=None):
        return mask_argsort(tokens, mask_token_id, gamma_fn)            # draws from the global stream

    assert_fails_with(check_masking(ignores_generator), "masking.ignores_generator")


def test_masking_generator_by_keyword_or_position():
    given = []

    def keyword_only(tokens, mask_token_id, gamma_fn, *, generator=None):
        given.append(generator)
        return mask_argsort(tokens, mask_token_id, gamma_fn, generator)

    def other_name(tokens, mask_token_id, gamma_fn, gen=None):
        given.append(gen)
        return mask_multinomial(tokens, mask_token_id, gamma_fn, gen)

    for fn in (keyword_only, other_name):
        given.clear()
        result = check_masking(fn)
        assert_passes(result)
        assert any(isinstance(g, torch.Generator) for g in given), f"{fn.__name__}: the checker passed no generator"


def test_masking_type_error_inside_is_reported_as_is():
    """A TypeError raised inside the student's function is its error, not a missing generator."""
    def wrong_argument(tokens, mask_token_id, gamma_fn, generator=None):
        return torch.zeros(tokens.shape, tokens.dtype)  # TypeError: invalid combination of arguments

    result = check_masking(wrong_argument)
    assert result.mistakes == ["masking.error"], _report(result)
    assert "TypeError" in str(result), _report(result)
    assert not any("generator" in n for n in result.notes), _report(result)


def test_masking_loss_rebuilt_from_a_number_is_detached():
    def rebuilt(logits, targets, masked):
        return torch.tensor(F.cross_entropy(logits[masked], targets[masked]).item(), requires_grad=True)

    assert_fails_with(check_masking(masked_loss=rebuilt), "masking.loss_detached")


def test_masking_leaves_the_callers_random_state_alone():
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    before = torch.rand(3), np.random.rand(), random.random()
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    check_masking(mask_topk_distributions, loss_index)
    after = torch.rand(3), np.random.rand(), random.random()
    assert torch.equal(before[0], after[0]) and before[1:] == after[1:], "the checker changed the caller's RNG"


def test_masking_report_names_mistake_and_fix():
    result = check_masking(mask_inverted_formula, loss_all_tokens)
    text = str(result)
    for mistake in ("masking.inverted", "masking.loss_all_tokens"):
        assert mistake in result.mistakes, _report(result)
        m = MISTAKES[mistake]
        assert mistake in text and m.message in text and m.fix in text, f"the report lacks {mistake}'s words:\n{text}"
    assert text.startswith("check_masking: FAIL"), text
    assert "PASS" in str(check_masking(mask_argsort, loss_index))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_references_pass_every_masking_probe(seed, monkeypatch):
    """labcore's two halves are right by every probe (the ownership rule switched off: the static
    walk, and the watch on labcore's code running inside the call)."""
    from labcore.checkers import ownership, report
    from labcore.checkers.masking import reference_mask_tokens, reference_masked_loss
    monkeypatch.setattr(report, "reaches", lambda obj, exercise: [])
    monkeypatch.setattr(ownership, "reference_codes", lambda exercise: {})
    assert_passes(check_masking(reference_mask_tokens, reference_masked_loss, seed=seed))


def test_references_given_as_answers_are_not_the_student_s():
    from labcore.checkers.masking import reference_mask_tokens, reference_masked_loss
    result = check_masking(reference_mask_tokens, reference_masked_loss)
    assert result.mistakes == ["masking.uses_reference"] and len(result.findings) == 2, _report(result)


def test_check_masking_needs_a_function():
    with pytest.raises(ValueError):
        check_masking()


# ============================================================================ exercise 5: the loop
# ---------------------------------------------------------------------------- correct optimizers

def opt_by_module_type(model, lr, weight_decay, betas=(0.9, 0.96)):
    """Decay the weight of every nn.Linear; everything else (embeddings, LayerNorms, biases) not."""
    decay = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Linear)}
    params = list(model.parameters())
    return torch.optim.AdamW([{"params": [p for p in params if id(p) in decay], "weight_decay": weight_decay},
                              {"params": [p for p in params if id(p) not in decay], "weight_decay": 0.0}],
                             lr=lr, betas=betas)


def opt_by_name(model, lr, weight_decay, betas=(0.9, 0.96)):
    """By the parameter's name; the optimizer's own weight_decay is the decayed group's."""
    no_decay, decay = [], []
    for name, p in model.named_parameters():
        if name.endswith("bias") or name in ("tok_emb.weight", "pos_emb") or "LayerNorm" in name \
                or name.startswith(("LN.", "Token_Prediction.2.")):
            no_decay.append(p)
        else:
            decay.append(p)
    return torch.optim.AdamW([{"params": no_decay, "weight_decay": 0}, {"params": decay}],
                             lr=lr, betas=betas, weight_decay=weight_decay)


def opt_by_ndim(model, lr, weight_decay, betas=(0.9, 0.96)):
    """Matrices (ndim 2), minus the embeddings and the output bias table; groups as dicts of names."""
    special = {id(model.tok_emb.weight), id(model.pos_emb), id(model.bias)}
    groups = {"decay": [], "no_decay": []}
    for p in model.parameters():
        groups["decay" if p.dim() == 2 and id(p) not in special else "no_decay"].append(p)
    return torch.optim.AdamW([dict(params=groups["no_decay"], weight_decay=0.0),
                              dict(params=groups["decay"], weight_decay=weight_decay)], lr, betas)


def opt_adam_decoupled(model, lr, weight_decay, betas=(0.9, 0.96)):
    """Adam(decoupled_weight_decay=True) is AdamW."""
    decay = [p for n, p in model.named_parameters() if n.endswith("weight") and p.ndim == 2 and "emb" not in n]
    ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return torch.optim.Adam([{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}],
                            lr=lr, betas=betas, decoupled_weight_decay=True)


CORRECT_OPTIMIZERS = [opt_by_module_type, opt_by_name, opt_by_ndim, opt_adam_decoupled]


# ---------------------------------------------------------------------------- correct loops

def loop_classic(model, loader, optimizer, mask_token_id, gamma_fn):
    """zero_grad before the forward; masking inline with argsort; mean of loss.item()."""
    model.train()
    total = 0.0
    for tokens in loader:
        B, N = tokens.shape
        n = torch.ceil(gamma_fn(torch.rand(B)) * N).long().clamp(min=1)
        masked = torch.rand(B, N).argsort(1).argsort(1) < n[:, None]
        inputs = tokens.masked_fill(masked, mask_token_id)
        optimizer.zero_grad()
        logits = model(inputs)
        loss = F.cross_entropy(logits[masked], tokens[masked])
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(loader)


def loop_clip_zero_after_step(model, loader, optimizer, mask_token_id, gamma_fn):
    """Gradient clipping, zero_grad(set_to_none=True) AFTER the step, an extra forward with
    gradients on only to log an accuracy (it trains exactly right)."""
    model.train()
    losses, accuracies = [], []
    for tokens in loader:
        inputs, masked = _mask(tokens, mask_token_id, gamma_fn)
        loss = F.cross_entropy(model(inputs)[masked], tokens[masked])
        accuracies.append((model(inputs).argmax(-1)[masked] == tokens[masked]).float().mean().item())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.01)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())
    return torch.stack(losses).mean().item()


def loop_distributions_ignore_index(model, loader, optimizer, mask_token_id, gamma_fn):
    """model.zero_grad(set_to_none=False); torch.distributions; positions before ratios; ignore_index;
    an extra no-grad forward for the accuracy; returns a numpy float."""
    model.train(True)
    losses, accuracies = [], []
    for i, tokens in enumerate(loader):
        B, N = tokens.shape
        scores = torch.distributions.Uniform(0.0, 1.0).sample((B, N))
        r = torch.distributions.Uniform(0.0, 1.0).sample((B,))
        n = torch.ceil(torch.as_tensor(gamma_fn(r)) * N).clamp(1, N)
        masked = scores.argsort(1).argsort(1) < n[:, None]
        inputs = torch.where(masked, mask_token_id, tokens)
        model.zero_grad(set_to_none=False)
        logits = model(inputs)
        loss = F.cross_entropy(logits.transpose(1, 2), tokens.masked_fill(~masked, -100), ignore_index=-100)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            accuracies.append((model(inputs).argmax(-1)[masked] == tokens[masked]).float().mean().item())
        losses.append(loss.item())
    return np.mean(losses)


def loop_per_image_mean(model, loader, optimizer, mask_token_id, gamma_fn):
    """Each image's masked tokens averaged first, then the images (log_softmax + gather); a per-row
    masking loop; zero_grad at the end of the iteration with set_to_none=False; sum-loss scaled."""
    model.train()
    running, count = 0.0, 0
    for tokens in loader:
        B, N = tokens.shape
        masked = torch.zeros(B, N, dtype=torch.bool)
        for b in range(B):
            k = max(1, math.ceil(float(gamma_fn(random.random())) * N))
            masked[b, torch.randperm(N)[:k]] = True
        logp = model(tokens.masked_fill(masked, mask_token_id)).log_softmax(-1)
        nll = -logp.gather(-1, tokens[..., None])[..., 0]                 # (B, N)
        loss = ((nll * masked).sum(1) / masked.sum(1)).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)
        running += loss.item()
        count += 1
    return running / count


CORRECT_LOOPS = [loop_classic, loop_clip_zero_after_step, loop_distributions_ignore_index, loop_per_image_mean]


# ---------------------------------------------------------------------------- wrong optimizers

def _groups(model, weight_decay):
    decay = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Linear)}
    return [{"params": [p for p in model.parameters() if id(p) in decay], "weight_decay": weight_decay},
            {"params": [p for p in model.parameters() if id(p) not in decay], "weight_decay": 0.0}]


def opt_returns_groups(model, lr, weight_decay, betas=(0.9, 0.96)):
    return _groups(model, weight_decay)                                # forgot to build the optimizer


def opt_forgets_no_decay_group(model, lr, weight_decay, betas=(0.9, 0.96)):
    decay = [p for n, p in model.named_parameters() if n.endswith(".weight") and p.ndim == 2 and "emb" not in n]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}], lr=lr, betas=betas)


def opt_decay_everything(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)


def opt_decay_all_matrices(model, lr, weight_decay, betas=(0.9, 0.96)):
    """nanoGPT's rule, p.dim() >= 2: the embeddings and the output bias table are decayed too."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=betas)


def opt_no_decay(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, weight_decay=0.0)


def opt_adam(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.Adam(_groups(model, weight_decay), lr=lr, betas=betas)


def opt_hard_coded_lr(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(_groups(model, weight_decay), lr=1e-3, betas=betas)


def opt_default_betas(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(_groups(model, weight_decay), lr=lr)      # betas argument ignored


def opt_sgd(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.SGD(_groups(model, weight_decay), lr=lr, momentum=0.9)


def opt_labcore_groups(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(model.param_groups(weight_decay), lr=lr, betas=betas)   # the transformer's own answer


def opt_hard_coded_weight_decay(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(_groups(model, 0.01), lr=lr, betas=betas)


def opt_zeroes_output_bias(model, lr, weight_decay, betas=(0.9, 0.96)):
    with torch.no_grad():
        model.bias.zero_()                                             # changes the caller's model
    return torch.optim.AdamW(_groups(model, weight_decay), lr=lr, betas=betas)


def opt_raises(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(model.param_groups(), lr=lr)              # param_groups needs weight_decay


# ---------------------------------------------------------------------------- wrong loops

def _mask(tokens, mask_token_id, gamma_fn):
    B, N = tokens.shape
    n = torch.ceil(gamma_fn(torch.rand(B)) * N).long().clamp(min=1)
    masked = torch.rand(B, N).argsort(1).argsort(1) < n[:, None]
    return tokens.masked_fill(masked, mask_token_id), masked


def _loop(*, train=True, zero="before", backward_first=True, backward=True, all_tokens=False, step=True,
          returns="mean"):
    """A student's loop with one knob turned: ``zero`` 'before' (the forward), 'after' (right after
    the step), 'between' (backward and step) or None; ``backward_first`` False steps before backward."""
    def train_one_epoch(model, loader, optimizer, mask_token_id, gamma_fn):
        if train:
            model.train()
        total = 0.0
        for tokens in loader:
            inputs, masked = _mask(tokens, mask_token_id, gamma_fn)
            if zero == "before":
                optimizer.zero_grad()
            logits = model(inputs)
            if all_tokens:
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))
            else:
                loss = F.cross_entropy(logits[masked], tokens[masked])
            if backward_first and backward:
                loss.backward()
            if zero == "between":
                optimizer.zero_grad()
            if step:
                optimizer.step()
            if zero == "after":
                optimizer.zero_grad()
            if not backward_first:
                loss.backward()
            if returns == "tensor":
                total = total + loss
            elif returns == "last":
                total = loss.item()
            else:
                total += loss.item()
        if returns == "detached":
            return torch.tensor(total / len(loader))
        return total if returns in ("last", "sum") else total / (len(loader) + (returns == "n+1"))
    return train_one_epoch


loop_no_train_mode = _loop(train=False)
loop_no_zero_grad = _loop(zero=None)
loop_step_before_backward = _loop(backward_first=False)
loop_step_before_backward_zero_after = _loop(backward_first=False, zero="after")
loop_step_before_backward_no_zero = _loop(backward_first=False, zero=None)
loop_zero_between = _loop(zero="between")
loop_no_step = _loop(step=False)
loop_no_backward = _loop(backward=False)
loop_all_tokens = _loop(all_tokens=True)
loop_all_tokens_no_zero = _loop(all_tokens=True, zero=None)
loop_keeps_graph = _loop(returns="tensor")
loop_returns_last = _loop(returns="last")
loop_returns_sum = _loop(returns="sum")
loop_returns_tensor = _loop(returns="detached")
loop_divides_by_n_plus_1 = _loop(returns="n+1")


def loop_no_masking(model, loader, optimizer, mask_token_id, gamma_fn):
    model.train()
    total = 0.0
    for tokens in loader:
        _, masked = _mask(tokens, mask_token_id, gamma_fn)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(tokens)[masked], tokens[masked])    # the model sees the unmasked tokens
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(loader)


def loop_mvtm_loss(model, loader, optimizer, mask_token_id, gamma_fn):
    model.train()
    losses = []
    for tokens in loader:
        optimizer.zero_grad()
        loss = mvtm_loss(model, tokens, mask_token_id, gamma_fn)["loss"]    # labcore's own training step
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return sum(losses) / len(losses)


def loop_own_optimizer(model, loader, optimizer, mask_token_id, gamma_fn):
    return loop_classic(model, loader, torch.optim.AdamW(model.parameters(), lr=1e-3), mask_token_id, gamma_fn)


def loop_step_once_per_epoch(model, loader, optimizer, mask_token_id, gamma_fn):
    model.train()
    optimizer.zero_grad()
    losses = []
    for tokens in loader:
        inputs, masked = _mask(tokens, mask_token_id, gamma_fn)
        losses.append(F.cross_entropy(model(inputs)[masked], tokens[masked]))
    loss = torch.stack(losses).mean()
    loss.backward()
    optimizer.step()
    return loss.item()


def loop_skips_last_batch(model, loader, optimizer, mask_token_id, gamma_fn):
    return loop_classic(model, [loader[i] for i in range(len(loader) - 1)], optimizer, mask_token_id, gamma_fn)


def loop_counts_by_iterating(model, loader, optimizer, mask_token_id, gamma_fn):
    n = sum(1 for _ in loader)                                          # a whole pass, only to count
    return loop_classic(model, loader, optimizer, mask_token_id, gamma_fn) * len(loader) / n


def loop_fixed_ratio(model, loader, optimizer, mask_token_id, gamma_fn):
    return loop_classic(model, loader, optimizer, mask_token_id, lambda r: 0.5 + 0 * r)


def loop_masks_in_place(model, loader, optimizer, mask_token_id, gamma_fn):
    model.train()
    total = 0.0
    for tokens in loader:
        targets = tokens.clone()
        _, masked = _mask(tokens, mask_token_id, gamma_fn)
        tokens[masked] = mask_token_id                                  # the caller's batch changes
        optimizer.zero_grad()
        loss = F.cross_entropy(model(tokens)[masked], targets[masked])
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(loader)


def loop_raises(model, loader, optimizer, mask_token_id, gamma_fn):
    for tokens, _ in loader:                                          # a loader of (x, y) pairs assumed
        pass
    return 0.0


WRONG_LOOP = [
    ("loop.not_an_optimizer", opt_returns_groups, None),
    ("loop.params_missing", opt_forgets_no_decay_group, None),
    ("loop.decay_on_norms_biases_embeddings", opt_decay_everything, None),
    ("loop.no_weight_decay", opt_no_decay, None),
    ("loop.adam_l2", opt_adam, None),
    ("loop.no_train_mode", None, loop_no_train_mode),
    ("loop.no_zero_grad", None, loop_no_zero_grad),
    ("loop.step_before_backward", None, loop_step_before_backward),
    ("loop.grads_cleared_before_step", None, loop_zero_between),
    ("loop.no_step", None, loop_no_step),
    ("loop.no_backward", None, loop_no_backward),
    ("loop.loss_all_tokens", None, loop_all_tokens),
    ("loop.keeps_graph", None, loop_keeps_graph),
    ("loop.not_adamw", opt_sgd, None),
    ("loop.lr_ignored", opt_hard_coded_lr, None),
    ("loop.betas_ignored", opt_default_betas, None),
    ("loop.uses_reference", opt_labcore_groups, None),
    ("loop.uses_reference", None, loop_mvtm_loss),
    ("loop.mutates_input", opt_zeroes_output_bias, None),
    ("loop.mutates_input", None, loop_masks_in_place),
    ("loop.ignores_optimizer", None, loop_own_optimizer),
    ("loop.step_once_per_epoch", None, loop_step_once_per_epoch),
    ("loop.not_every_batch", None, loop_skips_last_batch),
    ("loop.loader_twice", None, loop_counts_by_iterating),
    ("loop.ignores_gamma_fn", None, loop_fixed_ratio),
    ("loop.not_a_float", None, loop_returns_tensor),
    ("loop.returns_sum", None, loop_returns_sum),
    ("loop.returns_one_batch", None, loop_returns_last),
]

MORE_WRONG_LOOP = [
    ("loop.decay_on_norms_biases_embeddings", opt_decay_all_matrices, None),
    ("loop.step_before_backward", None, loop_step_before_backward_zero_after),
    ("loop.step_before_backward", None, loop_step_before_backward_no_zero),
    ("loop.loss_all_tokens", None, loop_all_tokens_no_zero),
    ("loop.no_zero_grad", None, loop_all_tokens_no_zero),
    ("loop.adam_l2", opt_adam, loop_classic),
    ("loop.no_train_mode", opt_by_name, loop_no_train_mode),
]

GENERIC_LOOP = [
    ("loop.error", opt_raises, None),
    ("loop.error", None, loop_raises),
    ("loop.optimizer_settings", opt_hard_coded_weight_decay, None),
    ("loop.wrong_return", None, loop_divides_by_n_plus_1),
    ("loop.wrong_gradient", None, loop_no_masking),
]


@pytest.mark.parametrize("mistake, configure_optimizers, train_one_epoch", WRONG_LOOP, ids=[r[0] for r in WRONG_LOOP])
def test_loop_mistake_is_caught(mistake, configure_optimizers, train_one_epoch):
    assert_fails_with(check_training_loop(configure_optimizers, train_one_epoch), mistake)


@pytest.mark.parametrize("mistake, configure_optimizers, train_one_epoch", MORE_WRONG_LOOP,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(MORE_WRONG_LOOP)])
def test_loop_mistake_written_otherwise_is_caught(mistake, configure_optimizers, train_one_epoch):
    assert_fails_with(check_training_loop(configure_optimizers, train_one_epoch), mistake)


@pytest.mark.parametrize("mistake, configure_optimizers, train_one_epoch", GENERIC_LOOP,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(GENERIC_LOOP)])
def test_loop_generic_fallback(mistake, configure_optimizers, train_one_epoch):
    result = check_training_loop(configure_optimizers, train_one_epoch)
    assert_fails_with(result, mistake)
    assert result.mistakes == [mistake], f"only the fallback {mistake!r} should be named" + _report(result)


def test_step_before_backward_is_not_called_cleared_grads():
    """zero_grad, forward, step, backward: every step sees zero gradients, as when they are cleared
    between backward and step; the order of the calls tells the two apart."""
    result = check_training_loop(train_one_epoch=loop_step_before_backward)
    assert result.mistakes == ["loop.step_before_backward"], _report(result)
    result = check_training_loop(train_one_epoch=loop_zero_between)
    assert result.mistakes == ["loop.grads_cleared_before_step"], _report(result)


@pytest.mark.parametrize("configure_optimizers", CORRECT_OPTIMIZERS, ids=_name)
def test_correct_optimizers_pass(configure_optimizers):
    assert_passes(check_training_loop(configure_optimizers=configure_optimizers))


@pytest.mark.parametrize("train_one_epoch", CORRECT_LOOPS, ids=_name)
def test_correct_loops_pass(train_one_epoch):
    assert_passes(check_training_loop(train_one_epoch=train_one_epoch))


@pytest.mark.parametrize("seed", [1, 2])
def test_correct_loop_passes_other_seeds(seed):
    assert_passes(check_training_loop(opt_by_ndim, loop_distributions_ignore_index, seed=seed))
    assert_passes(check_training_loop(opt_by_module_type, loop_per_image_mean, seed=seed))


def test_loop_report_names_mistake_and_fix():
    result = check_training_loop(opt_decay_everything, loop_no_zero_grad)
    text = str(result)
    for mistake in ("loop.decay_on_norms_biases_embeddings", "loop.no_zero_grad"):
        assert mistake in result.mistakes, _report(result)
        m = MISTAKES[mistake]
        assert mistake in text and m.message in text and m.fix in text, f"the report lacks {mistake}'s words:\n{text}"
    assert text.startswith("check_training_loop: FAIL"), text
    assert "PASS" in str(check_training_loop(opt_by_name, loop_classic))


def test_check_training_loop_needs_a_function():
    with pytest.raises(ValueError):
        check_training_loop()


# ============================================================================ the tables cover the ids

@pytest.mark.parametrize("exercise, rows, generic_rows", [("masking", WRONG_MASKING, GENERIC_MASKING),
                                                           ("loop", WRONG_LOOP, GENERIC_LOOP)])
def test_every_mistake_has_a_wrong_implementation(exercise, rows, generic_rows):
    specific = {i for i, m in mistakes_of(exercise).items() if not m.generic}
    generic = {i for i, m in mistakes_of(exercise).items() if m.generic}
    tested = {r[0] for r in rows}
    assert tested == specific, (f"{exercise}: ids without a wrong implementation: {sorted(specific - tested)}; "
                                f"rows for ids not in the table (or generic): {sorted(tested - specific)}")
    untested = sorted(generic - {r[0] for r in generic_rows})
    assert not untested, f"{exercise}: generic ids without a case: {untested}"


def test_checkers_are_fast():
    """A check cell must answer at once: each checker well under 3 s (about 0.1 s on a laptop CPU)."""
    for result in (check_masking(mask_randperm_loop, loss_ignore_index),
                   check_training_loop(opt_by_module_type, loop_distributions_ignore_index)):
        assert result.seconds < 3.0, f"{result.checker} took {result.seconds:.2f} s" + _report(result)
