"""Adversarial suite of ``check_mask_tokens`` (exercise 4, first half), written from notebook 02's
signature, docstring and text only, by someone trying to fool the checker:

    def mask_tokens(tokens, mask_token_id, gamma_fn, generator=None):
        '''tokens (B, N) long, codebook ids in [0, K); mask_token_id K; gamma_fn: a tensor of ratios
        (B,) -> the shares to mask (B,); generator: a torch.Generator for every random draw (None:
        torch's global one). returns inputs (B, N) long (a new tensor), masked (B, N) bool.'''
        # per image r ~ U(0, 1), n = max(1, ceil(gamma(r) N)) positions uniformly at random

Containers and dtypes (lists, arrays, int masks, flattened, swapped), every wrong count (floor,
round, int, no 'at least 1', N from the batch, one more, Bernoulli, draws with replacement), the
ratio (one per batch, normal, squeezed into half the range), gamma_fn ignored or overridden, the
same positions or non-uniform ones (first n, one block, half the grid), the generator ignored in
five ways, the caller's tokens changed, code that only works when B = N, and labcore's own masking
reached every way must each be named; maskings written unlike labcore's must pass.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from labcore.checkers import check_mask_tokens, reference_mask_tokens as my_masking
from labcore.maskgit import mvtm_loss

from adversarial_cases import Case, assert_case

CHECK = check_mask_tokens
pytestmark = pytest.mark.usefixtures("one_thread")


def ranks_of(scores):
    return scores.argsort(dim=1).argsort(dim=1)                       # (B, N) rank of each score in its row


def counts(tokens, gamma_fn, generator, rule=math.ceil, n_of=lambda t: t.shape[1], low=1):
    """n per image (B,) long with the ratio and the rounding rule given."""
    B, N = tokens.shape[0], n_of(tokens)
    r = torch.rand(B, generator=generator, dtype=torch.float64)        # (B,)
    shares = torch.as_tensor(gamma_fn(r), dtype=torch.float64)          # (B,)
    return torch.tensor([max(low, min(N, rule(float(s) * N))) for s in shares])


def assemble(tokens, masked, mask_token_id):
    return tokens.masked_fill(masked, mask_token_id), masked


def right(tokens, mask_token_id, gamma_fn, generator=None):
    """A correct masking built from the helpers (the wrong ones change one step)."""
    n = counts(tokens, gamma_fn, generator)                             # (B,)
    masked = ranks_of(torch.rand(tokens.shape, generator=generator)) < n[:, None]  # (B, N)
    return assemble(tokens, masked, mask_token_id)


def with_counts(**kw):
    def mask_tokens(tokens, mask_token_id, gamma_fn, generator=None):
        n = counts(tokens, gamma_fn, generator, **kw)                   # (B,)
        return assemble(tokens, ranks_of(torch.rand(tokens.shape, generator=generator)) < n[:, None], mask_token_id)
    return mask_tokens


def with_output(change):
    def mask_tokens(tokens, mask_token_id, gamma_fn, generator=None):
        return change(*right(tokens, mask_token_id, gamma_fn, generator), tokens, mask_token_id)
    return mask_tokens


# ----------------------------------------------------------------------------- the ratio and gamma

def ratio_per_batch(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    n = max(1, math.ceil(float(gamma_fn(torch.rand((), generator=generator))) * N))
    return assemble(tokens, ranks_of(torch.rand(B, N, generator=generator)) < n, mask_token_id)


def ratio_normal(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    r = torch.randn(B, generator=generator).abs()                      # "a random ratio"
    n = torch.ceil(gamma_fn(r) * N).long().clamp(1, N)
    return assemble(tokens, ranks_of(torch.rand(B, N, generator=generator)) < n[:, None], mask_token_id)


def ratio_upper_half(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    r = 0.5 + 0.5 * torch.rand(B, generator=generator)                 # "never mask everything"
    n = torch.ceil(gamma_fn(r) * N).long().clamp(1, N)
    return assemble(tokens, ranks_of(torch.rand(B, N, generator=generator)) < n[:, None], mask_token_id)


def ratio_itself(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    r = torch.rand(B, generator=generator)
    n = torch.ceil(r * N).long().clamp(1, N)                            # gamma_fn forgotten
    return assemble(tokens, ranks_of(torch.rand(B, N, generator=generator)) < n[:, None], mask_token_id)


def fixed_cosine(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    r = torch.rand(B, generator=generator)
    n = torch.ceil(torch.cos(r * math.pi / 2) * N).long().clamp(1, N)  # MaskGIT's cosine, whatever is given
    return assemble(tokens, ranks_of(torch.rand(B, N, generator=generator)) < n[:, None], mask_token_id)


def gamma_called_then_ignored(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    r = torch.rand(B, generator=generator)
    shares = gamma_fn(r)                                                # noqa: F841 - computed, then forgotten
    n = torch.ceil((1 - r ** 2) * N).long().clamp(1, N)
    return assemble(tokens, ranks_of(torch.rand(B, N, generator=generator)) < n[:, None], mask_token_id)


# ----------------------------------------------------------------------------- positions

def same_order(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    n = counts(tokens, gamma_fn, generator)
    order = torch.randperm(N, generator=generator)                     # one order for every image
    masked = torch.zeros(B, N, dtype=torch.bool)
    for b in range(B):
        masked[b, order[:n[b]]] = True
    return assemble(tokens, masked, mask_token_id)


def first_n(tokens, mask_token_id, gamma_fn, generator=None):
    n = counts(tokens, gamma_fn, generator)
    return assemble(tokens, torch.arange(tokens.shape[1])[None, :] < n[:, None], mask_token_id)


def one_block(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    n = counts(tokens, gamma_fn, generator)
    start = (torch.rand(B, generator=generator) * (N - n + 1)).long()   # a random block per image
    pos = torch.arange(N)[None, :]
    return assemble(tokens, (pos >= start[:, None]) & (pos < (start + n)[:, None]), mask_token_id)


def front_half_first(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    n = counts(tokens, gamma_fn, generator)
    scores = torch.rand(B, N, generator=generator) + torch.linspace(0, 1.5, N)  # "a little structure"
    return assemble(tokens, ranks_of(scores) < n[:, None], mask_token_id)


def with_replacement(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    n = counts(tokens, gamma_fn, generator)
    masked = torch.zeros(B, N, dtype=torch.bool)
    for b in range(B):
        masked[b, torch.randint(0, N, (int(n[b]),), generator=generator)] = True
    return assemble(tokens, masked, mask_token_id)


def bernoulli(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    p = gamma_fn(torch.rand(B, generator=generator))
    return assemble(tokens, torch.rand(B, N, generator=generator) < p[:, None], mask_token_id)


def ranks_over_images(tokens, mask_token_id, gamma_fn, generator=None):
    n = counts(tokens, gamma_fn, generator)
    ranks = torch.rand(tokens.shape, generator=generator).argsort(0).argsort(0)  # ranked along the batch
    return assemble(tokens, ranks < n[:, None], mask_token_id)


def only_if_b_equals_n(tokens, mask_token_id, gamma_fn, generator=None):
    n = counts(tokens, gamma_fn, generator)
    return assemble(tokens, ranks_of(torch.rand(tokens.shape, generator=generator)) < n[None, :], mask_token_id)


# ----------------------------------------------------------------------------- the generator

def no_generator(tokens, mask_token_id, gamma_fn):
    return right(tokens, mask_token_id, gamma_fn)


def generator_ignored(tokens, mask_token_id, gamma_fn, generator=None):
    return right(tokens, mask_token_id, gamma_fn)


def positions_from_global(tokens, mask_token_id, gamma_fn, generator=None):
    n = counts(tokens, gamma_fn, generator)
    return assemble(tokens, ranks_of(torch.rand(tokens.shape)) < n[:, None], mask_token_id)


def seeds_itself(tokens, mask_token_id, gamma_fn, generator=None):
    torch.manual_seed(0)                                                # "reproducible"
    return right(tokens, mask_token_id, gamma_fn)


def numpy_stream(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    r = torch.from_numpy(np.random.rand(B))
    n = torch.ceil(torch.as_tensor(gamma_fn(r)) * N).long().clamp(1, N)
    return assemble(tokens, ranks_of(torch.from_numpy(np.random.rand(B, N))) < n[:, None], mask_token_id)


def fresh_generator_for_none(tokens, mask_token_id, gamma_fn, generator=None):
    if generator is None:
        generator = torch.Generator()                                   # the same default seed every call
    return right(tokens, mask_token_id, gamma_fn, generator)


def python_random_positions(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    n = counts(tokens, gamma_fn, generator)
    masked = torch.zeros(B, N, dtype=torch.bool)
    for b in range(B):
        masked[b, random.sample(range(N), int(n[b]))] = True
    return assemble(tokens, masked, mask_token_id)


# ----------------------------------------------------------------------------- the caller's tokens, errors

def index_assignment(tokens, mask_token_id, gamma_fn, generator=None):
    _, masked = right(tokens, mask_token_id, gamma_fn, generator)
    tokens[masked] = mask_token_id
    return tokens, masked


def masked_fill_underscore(tokens, mask_token_id, gamma_fn, generator=None):
    _, masked = right(tokens, mask_token_id, gamma_fn, generator)
    return tokens.masked_fill_(masked, mask_token_id).clone(), masked


def expects_a_grid(tokens, mask_token_id, gamma_fn, generator=None):
    B, H, W = tokens.shape                                              # expects (B, 16, 16)
    return tokens, tokens


# ----------------------------------------------------------------------------- labcore's own

def via_alias(tokens, mask_token_id, gamma_fn, generator=None):
    return my_masking(tokens, mask_token_id, gamma_fn, generator)


def via_import_inside(tokens, mask_token_id, gamma_fn, generator=None):
    from labcore.checkers.masking import reference_mask_tokens
    return reference_mask_tokens(tokens, mask_token_id, gamma_fn, generator=generator)


def via_mvtm_loss(tokens, mask_token_id, gamma_fn, generator=None):
    seen = []
    mvtm_loss(lambda x: seen.append(x) or torch.zeros(*x.shape, mask_token_id + 1), tokens, mask_token_id, gamma_fn,
              generator=generator)
    return seen[0], seen[0] == mask_token_id


def via_fallback_lookup(tokens, mask_token_id, gamma_fn, generator=None):
    from labcore.checkers import fallback
    return fallback.reference("mask" + "_tokens")(tokens, mask_token_id, gamma_fn, generator)


# ----------------------------------------------------------------------------- correct variants

def inverse_permutation(tokens, mask_token_id, gamma_fn, generator=None):
    """order < n: the positions holding the n first indices of a uniform permutation."""
    B, N = tokens.shape
    n = torch.ceil(gamma_fn(torch.rand(B, generator=generator)) * N).long().clamp(1, N)
    order = torch.rand(B, N, generator=generator).argsort(dim=1)
    return assemble(tokens, order < n[:, None], mask_token_id)


def gumbel_topk_distributions(tokens, mask_token_id, gamma_fn, generator=None):
    """torch.distributions (icdf of the generator's uniforms), Python floats, topk per image."""
    B, N = tokens.shape
    r = torch.distributions.Uniform(0.0, 1.0).icdf(torch.rand(B, generator=generator))
    g = torch.distributions.Gumbel(0.0, 1.0).icdf(torch.rand(B, N, generator=generator).clamp(1e-6, 1 - 1e-6))
    masked = torch.zeros(B, N, dtype=torch.bool)
    for b in range(B):
        masked[b, g[b].topk(max(1, math.ceil(float(gamma_fn(float(r[b]))) * N))).indices] = True
    return torch.where(masked, torch.full_like(tokens, mask_token_id), tokens), masked


def randperm_per_image(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    inputs, masked = tokens.clone(), torch.zeros(B, N, dtype=torch.bool)
    for b in range(B):
        n = int(torch.ceil(torch.as_tensor(gamma_fn(torch.rand((), generator=generator))) * N).clamp(1, N))
        masked[b, torch.randperm(N, generator=generator)[:n]] = True
    inputs[masked] = mask_token_id
    return inputs, masked


def multinomial_scatter(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    order = torch.multinomial(torch.ones(B, N), N, replacement=False, generator=generator)   # (B, N)
    n = torch.ceil(gamma_fn(torch.rand(B, generator=generator)) * N).long().clamp(1, N)
    masked = torch.zeros(B, N, dtype=torch.bool).scatter(1, order, torch.arange(N).expand(B, N) < n[:, None])
    return torch.where(masked, mask_token_id, tokens), masked


def column_ratios(tokens, mask_token_id, gamma_fn, generator=None):
    """r as a (B, 1) column, float64, positions drawn first."""
    B, N = tokens.shape
    scores = torch.rand(B, N, generator=generator, dtype=torch.float64)
    r = torch.rand(B, 1, generator=generator, dtype=torch.float64)
    n = torch.ceil(gamma_fn(r) * N).long().clamp(min=1, max=N)          # (B, 1)
    masked = scores.sort(dim=1).values.gather(1, n - 1) >= scores       # the n smallest of each row
    return tokens.masked_fill(masked, mask_token_id), masked


def numpy_seeded_by_generator(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    r = torch.from_numpy(rng.random(B))
    n = np.maximum(1, np.ceil(np.asarray(gamma_fn(r)) * N).astype(int))
    masked = torch.from_numpy(np.stack([np.isin(np.arange(N), rng.permutation(N)[:k]) for k in n]))
    return tokens.masked_fill(masked, mask_token_id), masked


# ----------------------------------------------------------------------------- the cases

CASES = [
    Case("mask as int64", with_output(lambda i, m, t, k: (i, m.long())), "masking.shape"),
    Case("mask as uint8", with_output(lambda i, m, t, k: (i, m.to(torch.uint8))), "masking.shape"),
    Case("inputs only", with_output(lambda i, m, t, k: i), "masking.shape"),
    Case("numpy arrays", with_output(lambda i, m, t, k: (i.numpy(), m.numpy())), "masking.shape"),
    Case("nested lists", with_output(lambda i, m, t, k: (i.tolist(), m.tolist())), "masking.shape"),
    Case("flattened", with_output(lambda i, m, t, k: (i.flatten(), m.flatten())), "masking.shape"),
    Case("float inputs", with_output(lambda i, m, t, k: (i.float(), m)), "masking.shape"),
    Case("int32 inputs", with_output(lambda i, m, t, k: (i.int(), m)), "masking.shape"),
    Case("a triple with the count", with_output(lambda i, m, t, k: (i, m, m.sum(1))), "masking.shape"),
    Case("(masked, inputs)", with_output(lambda i, m, t, k: (m, i)), "masking.outputs_swapped"),
    Case("mask id where kept", with_output(lambda i, m, t, k: (torch.where(m, t, k), m)), "masking.inverted"),
    Case("mask flipped", with_output(lambda i, m, t, k: (t.masked_fill(~m, k), ~m)), "masking.inverted"),
    Case("tokens times keep", with_output(lambda i, m, t, k: (t * ~m, m)), "masking.mask_id_collides"),
    Case("K - 1 as the mask id", with_output(lambda i, m, t, k: (t.masked_fill(m, k - 1), m)),
         "masking.mask_id_collides"),
    Case("-1 as the mask id", with_output(lambda i, m, t, k: (t.masked_fill(m, -1), m)), "masking.mask_id_collides"),
    Case("inputs of another draw", with_output(lambda i, m, t, k: (i, m.roll(1, dims=1))), "masking.inconsistent"),
    Case("one ratio per batch", ratio_per_batch, "masking.ratio_per_batch"),
    Case("|normal| ratios", ratio_normal, "masking.ratio_law"),
    Case("ratios in [0.5, 1)", ratio_upper_half, "masking.ratio_law"),
    Case("the ratio itself", ratio_itself, "masking.ignores_gamma"),
    Case("a fixed cosine", fixed_cosine, "masking.ignores_gamma"),
    Case("gamma_fn called, then ignored", gamma_called_then_ignored, "masking.ignores_gamma"),
    Case("floor", with_counts(rule=math.floor, low=0), "masking.count_rounding"),
    Case("floor, at least 1", with_counts(rule=math.floor), "masking.count_rounding"),
    Case("round", with_counts(rule=round), "masking.count_rounding"),
    Case("int()", with_counts(rule=int), "masking.count_rounding"),
    Case("no 'at least 1'", with_counts(low=0), "masking.count_min_one"),
    Case("N from len(tokens)", with_counts(n_of=len), "masking.count_from_batch"),
    Case("N from tokens.size(0)", with_counts(n_of=lambda t: t.size(0)), "masking.count_from_batch"),
    Case("one more (ranks <= n)", with_counts(rule=lambda x: math.ceil(x) + 1), "masking.count"),
    Case("Bernoulli per token", bernoulli, "masking.count"),
    Case("positions with replacement", with_replacement, "masking.count"),
    Case("ranked along the batch", ranks_over_images, "masking.count"),
    Case("one order for all images", same_order, "masking.same_positions"),
    Case("the first n positions", first_n, "masking.same_positions"),
    Case("one random block", one_block, "masking.positions_not_uniform"),
    Case("front half first", front_half_first, "masking.positions_not_uniform"),
    Case("n[None, :]: right only when B = N", only_if_b_equals_n, "masking.error"),
    Case("no generator argument", no_generator, "masking.ignores_generator"),
    Case("generator ignored", generator_ignored, "masking.ignores_generator"),
    Case("positions from the global stream", positions_from_global, "masking.ignores_generator"),
    Case("torch.manual_seed inside", seeds_itself, "masking.ignores_generator"),
    Case("numpy's stream", numpy_stream, "masking.ignores_generator"),
    Case("a fresh generator for None", fresh_generator_for_none, "masking.ignores_generator"),
    Case("python's random.sample", python_random_positions, "masking.ignores_generator"),
    Case("tokens[masked] = K", index_assignment, "masking.in_place"),
    Case("masked_fill_ then clone", masked_fill_underscore, "masking.in_place"),
    Case("expects a (B, 16, 16) grid", expects_a_grid, "masking.error"),
    Case("labcore's reference by alias", via_alias, "masking.uses_reference"),
    Case("labcore's reference imported inside", via_import_inside, "masking.uses_reference"),
    Case("labcore's mvtm_loss with a stub", via_mvtm_loss, "masking.uses_reference"),
    Case("labcore's fallback looked up by name", via_fallback_lookup, "masking.uses_reference"),
    Case("argsort of argsort", right),
    Case("inverse permutation", inverse_permutation),
    Case("Gumbel top-k with torch.distributions", gumbel_topk_distributions),
    Case("randperm per image", randperm_per_image),
    Case("multinomial and scatter", multinomial_scatter),
    Case("(B, 1) float64 ratios, sorted threshold", column_ratios),
    Case("numpy seeded by the generator", numpy_seeded_by_generator),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case):
    assert_case(CHECK, case)
