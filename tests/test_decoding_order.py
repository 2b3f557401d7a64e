"""DecodingSettings.order: "confidence" (MaskGIT's rule, the default, unchanged) and "halton"
(Besnier et al., ICLR 2025: the masked tokens kept at each step are those first in the 2-D Halton
order of the 16x16 grid); and DecodingSettings.sample_temperature_anneal. Tiny random models: no
bundled weights needed."""

import pytest
import torch

from labcore.decoding import DecodingSettings, halton_order
from labcore.maskgit import MaskGit

from shared_fixtures import TINY_K as K, tiny_transformer, tiny_vqgan  # noqa: E402  K is also the mask token id

N = 256
COUNTS = [1, 37, 200, 256]  # per image M0: one token, a few, most, all


@pytest.fixture(scope="module")
def maskgit():
    return MaskGit(tiny_vqgan(), tiny_transformer())


def inputs(counts=COUNTS, seed=0):
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(len(counts), N, dtype=torch.bool)
    for b, c in enumerate(counts):
        masks[b, torch.randperm(N, generator=g)[:c]] = True
    return torch.randint(0, K, (len(counts), N), generator=g), masks


@pytest.mark.parametrize("sample_temperature", [0.0, 1.0])
def test_default_order_is_confidence_and_unchanged(maskgit, sample_temperature):
    assert DecodingSettings().order == "confidence"
    tokens, masks = inputs()
    default, trace = maskgit.decode_tokens(tokens, masks, total_iter=6, sample_temperature=sample_temperature)
    explicit, trace2 = maskgit.decode_tokens(tokens, masks, total_iter=6, sample_temperature=sample_temperature,
                                             order="confidence")
    assert torch.equal(default, explicit)
    assert torch.equal(trace.masked, trace2.masked) and torch.equal(trace.tokens, trace2.tokens)


def test_halton_order_is_a_spread_permutation():
    order = halton_order()
    assert halton_order() is order                                            # computed once
    assert sorted(order) == list(range(N))
    first = order[:16]
    assert sorted(p % 16 for p in first) == list(range(16))                   # x in base 2: every column once
    quadrants = [sum(1 for p in first if (p // 16 >= 8) == bottom and (p % 16 >= 8) == right)
                 for bottom in (False, True) for right in (False, True)]
    assert min(quadrants) >= 3                                                # every 8x8 quadrant, about evenly
    assert len({(p // 16 // 4, p % 16 // 4) for p in first}) >= 12           # most 4x4 blocks
    assert order[:4] == (0, 88, 164, 28)                                      # (0,0), (5,8), (10,4), (1,12)


@pytest.mark.parametrize("total_iter, sample_temperature", [(8, 0.0), (5, 1.0)])
def test_halton_decodes_the_first_masked_positions_in_halton_order(maskgit, total_iter, sample_temperature):
    tokens, masks = inputs()
    final, trace = maskgit.decode_tokens(tokens, masks, total_iter=total_iter, order="halton",
                                         sample_temperature=sample_temperature)
    _, confidence = maskgit.decode_tokens(tokens, masks, total_iter=total_iter,
                                          sample_temperature=sample_temperature)
    steps = trace.masks().flatten(2)                                          # (S+1, B, N)
    assert torch.equal(steps.sum(-1), confidence.masks().flatten(2).sum(-1))  # the same count per step
    for s in range(total_iter):
        for b in range(len(tokens)):
            before, after = steps[s, b], steps[s + 1, b]
            assert not (after & ~before).any()                                # nothing masked again
            queue = [p for p in halton_order() if before[p]]
            decoded = int((before & ~after).sum())
            assert set(torch.nonzero(before & ~after).flatten().tolist()) == set(queue[:decoded])
        known = ~masks
        assert torch.equal(trace.tokens[s].flatten(1)[known], tokens[known])  # known tokens never change
    assert not steps[-1].any()                                                # every masked token filled
    assert final.max() < K and torch.equal(final.flatten(1)[~masks], tokens[~masks])


def test_halton_ignores_the_choice_temperature(maskgit):
    tokens, masks = inputs()
    a, ta = maskgit.decode_tokens(tokens, masks, total_iter=6, order="halton", choice_temperature=0)
    b, tb = maskgit.decode_tokens(tokens, masks, total_iter=6, order="halton", choice_temperature=10)
    assert torch.equal(a, b) and torch.equal(ta.masked, tb.masked)


def test_order_is_validated():
    assert DecodingSettings(order=" Halton ").order == "halton"
    for bad in ("raster", "", None, 1):
        with pytest.raises(ValueError, match=r"^order must be one of confidence, halton"):
            DecodingSettings(order=bad)
    with pytest.raises(ValueError, match="order"):
        DecodingSettings().replace(order="random")


def test_sample_temperature_anneal(maskgit):
    tokens, masks = inputs()
    assert DecodingSettings().sample_temperature_anneal is False
    argmax, _ = maskgit.decode_tokens(tokens, masks, total_iter=1)
    annealed, _ = maskgit.decode_tokens(tokens, masks, total_iter=1, sample_temperature=1.0,
                                        sample_temperature_anneal=True)
    sampled, _ = maskgit.decode_tokens(tokens, masks, total_iter=1, sample_temperature=1.0)
    assert torch.equal(annealed, argmax) and not torch.equal(sampled, argmax)  # temperature 0 at r = 1
    final, trace = maskgit.decode_tokens(tokens, masks, total_iter=4, sample_temperature=1.0,
                                         sample_temperature_anneal=True)
    plain, _ = maskgit.decode_tokens(tokens, masks, total_iter=4, sample_temperature=1.0)
    assert not torch.equal(final, plain) and not trace.masked[-1].any()
    assert torch.equal(final.flatten(1)[~masks], tokens[~masks])
