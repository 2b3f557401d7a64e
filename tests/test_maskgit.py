"""labcore.maskgit and labcore.decoding: mask schedules, the MVTM loss, the decoding settings,
one decoding step, the decoding loop, MaskGit's image-level inpainting and the benchmark's
course-style reference loop (labcore.bench). Tiny randomly initialised real models (labcore's
VQGAN and BidirectionalTransformer with small configs) keep it fast; no bundled weights are needed."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labcore.bench import inpaint_course_style
from labcore.decoding import DecodingSettings, decode_step, masked_count_after_step
from labcore.maskgit import MaskGit, latent_mask, mvtm_loss
from labcore.schedules import SCHEDULES, gamma
from labcore.transformer import BidirectionalTransformer, TransformerConfig

from shared_fixtures import TINY_K as K, tiny_transformer, tiny_vqgan  # noqa: E402  K is also the mask token id
N = 256         # 16 x 16 tokens


class TableTransformer(nn.Module):
    """Logits that depend on the position only (a fixed random table), so the confidence of
    every position is known in advance; counts its calls."""

    def __init__(self, seed=0, mask_logit=0.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        table = 3 * torch.randn(N, K + 1, generator=g)
        table[:, K] = mask_logit
        self.table = nn.Parameter(table)
        self.calls = 0

    def forward(self, tokens):
        self.calls += 1
        return self.table.expand(len(tokens), -1, -1)                           # (B, N, K+1)


class Spy(nn.Module):
    """Wraps a module and records what it saw and returned."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.inputs, self.outputs = inner, [], []

    def forward(self, tokens):
        out = self.inner(tokens)
        self.inputs.append(tokens.clone())
        self.outputs.append(out)
        return out


def maskgit_with(transformer, vqgan=None):
    return MaskGit(vqgan or tiny_vqgan(), transformer)


def random_masks(counts, seed=0):
    """(B, N) bool masks with exactly counts[b] masked positions each."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(len(counts), N, dtype=torch.bool)
    for b, c in enumerate(counts):
        masks[b, torch.randperm(N, generator=g)[:c]] = True
    return masks


def random_tokens(batch, seed=0):
    return torch.randint(0, K, (batch, N), generator=torch.Generator().manual_seed(seed))


def trace_counts(trace):
    return trace.masked.flatten(2).sum(-1).T.tolist()                          # per image, per step


# ----------------------------------------------------------------------------- schedules

@pytest.mark.parametrize("name", SCHEDULES)
def test_gamma_maps_unit_interval_onto_itself_decreasing(name):
    fn = gamma(name)
    assert fn(0.0) == 1.0 and fn(1.0) == 0.0
    r = torch.linspace(0, 1, 1001, dtype=torch.float64)
    y = fn(r)
    assert y.shape == r.shape and y.dtype == torch.float64
    assert (y >= 0).all() and (y <= 1).all()
    assert (y.diff() <= 1e-12).all(), "gamma must be non-increasing"
    assert y[1:-1].max() < 1 and y[1:-1].min() > 0      # strictly inside on (0, 1)
    assert isinstance(fn(0.5), float)
    assert fn(torch.tensor([0.5], dtype=torch.float32)).dtype == torch.float32


def test_course_schedules_values():
    assert gamma("linear")(0.25) == pytest.approx(0.75)
    assert gamma("cosine")(0.5) == pytest.approx(math.cos(math.pi / 4))
    assert gamma("square")(0.5) == pytest.approx(0.75)
    assert gamma("cubic")(0.5) == pytest.approx(0.875)
    assert gamma("sqrt")(0.25) == pytest.approx(0.5)
    assert gamma("arccos")(0.5) == pytest.approx(2 / 3)
    assert set(SCHEDULES) >= {"linear", "cosine", "square", "cubic", "sqrt", "log", "exp", "arccos"}


def test_gamma_unknown_name_lists_choices():
    with pytest.raises(ValueError) as err:
        gamma("zigzag")
    for name in SCHEDULES:
        assert name in str(err.value)


# ----------------------------------------------------------------------------- MVTM loss

@pytest.mark.parametrize("ratio,expected", [(0.3, math.ceil(0.3 * N)), (0.0, 1), (1.0, N), (0.5, 128)])
def test_mvtm_masks_ceil_ratio_tokens_at_least_one(ratio, expected):
    spy = Spy(tiny_transformer())
    tokens = random_tokens(4)
    out = mvtm_loss(spy, tokens, K, lambda u: torch.full_like(u, ratio), generator=torch.Generator().manual_seed(1))
    masked = spy.inputs[0] == K                                                 # (B, N)
    assert masked.sum(1).tolist() == [expected] * 4
    assert torch.equal(spy.inputs[0][~masked], tokens[~masked])                 # the rest is untouched
    assert out["mask_ratio"].item() == pytest.approx(expected / N)
    assert len(set(map(tuple, masked.int().tolist()))) > 1 or expected in (N,)  # random positions per sample


def test_mvtm_real_schedule_draws_a_ratio_per_sample():
    spy = Spy(tiny_transformer())
    mvtm_loss(spy, random_tokens(16), K, gamma("cosine"), generator=torch.Generator().manual_seed(0))
    counts = (spy.inputs[0] == K).sum(1)
    assert counts.min() >= 1 and counts.max() <= N
    assert len(set(counts.tolist())) > 4


def test_mvtm_loss_only_on_masked_positions():
    spy = Spy(tiny_transformer())
    tokens = random_tokens(3)
    out = mvtm_loss(spy, tokens, K, "linear", generator=torch.Generator().manual_seed(2))
    logits, masked = spy.outputs[0], spy.inputs[0] == K
    logits.retain_grad()
    out["loss"].backward()
    assert torch.allclose(out["loss"], F.cross_entropy(logits[masked], tokens[masked]))
    assert logits.grad[~masked].abs().max() == 0
    assert logits.grad[masked].abs().sum(-1).min() > 0
    acc = (logits[masked].argmax(-1) == tokens[masked]).float().mean()
    assert out["accuracy"].item() == pytest.approx(acc.item())


def test_mvtm_all_positions_and_label_smoothing():
    tokens = random_tokens(3)
    spy = Spy(tiny_transformer())
    out = mvtm_loss(spy, tokens, K, "linear", all_positions=True, label_smoothing=0.1,
                    generator=torch.Generator().manual_seed(3))
    logits = spy.outputs[0]
    expected = F.cross_entropy(logits.flatten(0, 1), tokens.flatten(), label_smoothing=0.1)
    assert torch.allclose(out["loss"], expected)


def test_mvtm_oracle_scores_full_accuracy_and_seed_repeats_mask():
    tokens = random_tokens(2)

    class Oracle(nn.Module):
        def forward(self, inputs):
            return 20 * F.one_hot(tokens, K + 1).float()

    out = mvtm_loss(Oracle(), tokens, K, "cosine", generator=torch.Generator().manual_seed(4))
    assert out["accuracy"].item() == 1.0 and out["loss"].item() < 1e-6
    a, b = Spy(tiny_transformer()), Spy(tiny_transformer())
    mvtm_loss(a, tokens, K, "cosine", generator=torch.Generator().manual_seed(5))
    mvtm_loss(b, tokens, K, "cosine", generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.inputs[0], b.inputs[0])


def test_mvtm_loss_accepts_token_grids_and_trains():
    model = tiny_transformer()
    tokens = random_tokens(4).view(4, 16, 16)
    out = mvtm_loss(model, tokens, K, "cosine", generator=torch.Generator().manual_seed(6))
    out["loss"].backward()
    assert model.tok_emb.weight.grad is not None and torch.isfinite(out["loss"])


# ----------------------------------------------------------------------------- one step / the count rule

def test_masked_count_rule_exact():
    remaining = torch.tensor([100])
    m0 = torch.tensor([100])
    cos = [masked_count_after_step(t / 8, m0, remaining, gamma("cosine")).item() for t in range(1, 9)]
    assert cos == [98, 92, 83, 70, 55, 38, 19, 0]  # floor(cos(pi/2 * t/8) * 100), 0 at the end
    # clamp to remaining - 1: at least one token is decoded per step
    assert masked_count_after_step(0.1, torch.tensor([100]), torch.tensor([50]), gamma("linear")).item() == 49
    # clamp to >= 1 before the last step; the last step empties; nothing masked stays 0
    assert masked_count_after_step(0.9, torch.tensor([5]), torch.tensor([3]), gamma("linear")).item() == 1
    assert masked_count_after_step(1.0, torch.tensor([5]), torch.tensor([3]), gamma("linear")).item() == 0
    assert masked_count_after_step(0.5, torch.tensor([0]), torch.tensor([0]), gamma("linear")).item() == 0
    assert masked_count_after_step(0.5, torch.tensor([9]), torch.tensor([1]), gamma("linear")).item() == 1


def test_decode_step_keeps_least_confident_masked_temperature_zero():
    model = TableTransformer()
    tokens, masked = random_tokens(2), random_masks([40, 10])
    m0 = masked.sum(1)
    step = decode_step(model, tokens, masked, m0, 0.25, DecodingSettings(schedule="linear", choice_temperature=0.0), K)
    log_p = model.table[:, :K].log_softmax(-1)                                  # (N, K)
    best = log_p.argmax(-1)
    for b, keep in enumerate([30, 7]):  # floor(0.75 * 40), floor(0.75 * 10)
        conf = log_p.max(-1).values.masked_fill(~masked[b], float("inf"))
        expected = set(conf.argsort()[:keep].tolist())
        assert set(step.masked[b].nonzero().flatten().tolist()) == expected
        assert torch.equal(step.filled[b][masked[b]], best[masked[b]])
        assert torch.equal(step.filled[b][~masked[b]], tokens[b][~masked[b]])
        assert (step.tokens[b][step.masked[b]] == K).all()
        assert torch.equal(step.tokens[b][~step.masked[b]], step.filled[b][~step.masked[b]])


def test_the_loop_runs_any_step_function_with_decode_steps_signature():
    """A student's own step (decode_step's signature, returning a plain tuple) runs in the real
    loop, through MaskGit.decode_tokens and MaskGit.inpaint; here it wraps decode_step, so the
    result must equal labcore's own, and it must be called S times with ratios t/T."""
    seen = []

    def my_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
        seen.append(ratio)
        return tuple(decode_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator))

    mg = maskgit_with(tiny_transformer())
    tokens, masked = random_tokens(2, seed=2), random_masks([80, 200], seed=2)
    ours, trace = mg.decode_tokens(tokens, masked, total_iter=6, sweet_spot=5, sample_temperature=1.0)
    theirs, their_trace = mg.decode_tokens(tokens, masked, total_iter=6, sweet_spot=5, sample_temperature=1.0,
                                           step=my_step)
    assert seen == [t / 6 for t in range(1, 6)]
    assert torch.equal(ours, theirs) and torch.equal(trace.masked, their_trace.masked)
    images, masks = torch.randn(1, 3, 64, 64), torch.ones(1, 1, 64, 64)
    masks[:, :, 8:40, 8:40] = 0
    assert torch.equal(mg.inpaint(images, masks, total_iter=3).tokens,
                       mg.inpaint(images, masks, total_iter=3, step=my_step).tokens)


# ----------------------------------------------------------------------------- the loop

def test_gamma_count_rule_per_step_mixed_batch():
    """Each image follows its own M0: exact counts after every step, and nothing masked stays so."""
    mg = maskgit_with(tiny_transformer())
    masked = random_masks([100, 3, 0, N])
    _, trace = mg.decode_tokens(random_tokens(4), masked, total_iter=8, schedule="cosine",
                                generator=torch.Generator().manual_seed(0))
    counts = trace_counts(trace)
    assert counts[0] == [98, 92, 83, 70, 55, 38, 19, 0]
    assert counts[1] == [2, 1, 1, 1, 1, 1, 1, 0]  # floor(.98*3)=2, then clamped to [1, remaining-1]
    assert counts[2] == [0] * 8
    cos = [math.floor(math.cos(math.pi / 2 * t / 8) * N) for t in range(1, 8)]
    assert counts[3] == cos + [0]
    lin = maskgit_with(tiny_transformer()).decode_tokens(random_tokens(1), random_masks([10]), total_iter=4,
                                                          schedule="linear")[1]
    assert trace_counts(lin)[0] == [7, 5, 2, 0]


def test_known_tokens_never_change_and_mask_shrinks():
    mg = maskgit_with(tiny_transformer())
    tokens, masked = random_tokens(3, seed=1), random_masks([60, 150, 200], seed=1)
    final, trace = mg.decode_tokens(tokens, masked, total_iter=6, generator=torch.Generator().manual_seed(1))
    known = ~masked.view(3, 16, 16)
    tokens = tokens.view(3, 16, 16)
    assert torch.equal(final[known], tokens[known])
    for s in range(6):
        assert torch.equal(trace.tokens[s][known], tokens[known])
    masks = trace.masks()                                                       # (S+1, B, 16, 16)
    assert torch.equal(masks[0], masked.view(3, 16, 16))
    for s in range(1, len(masks)):
        assert not (masks[s] & ~masks[s - 1]).any(), "a decoded token was masked again"
        assert (masks[s].flatten(1).sum(1) < masks[s - 1].flatten(1).sum(1)).all()
    # a token decoded by step s (trace.tokens[s-1]) keeps its value at step s+1 (trace.tokens[s])
    for s in range(1, 6):
        decoded = ~masks[s]
        assert torch.equal(trace.tokens[s][decoded], trace.tokens[s - 1][decoded])
    assert (final < K).all()


def test_sweet_spot_stops_early_and_fills_with_current_prediction():
    tokens, masked = random_tokens(2, seed=2), random_masks([120, 30], seed=2)
    full_final, full = maskgit_with(tiny_transformer()).decode_tokens(
        tokens, masked, total_iter=8, generator=torch.Generator().manual_seed(3))
    early_final, early = maskgit_with(tiny_transformer()).decode_tokens(
        tokens, masked, total_iter=8, sweet_spot=3, generator=torch.Generator().manual_seed(3))
    assert len(early.ratios) == 3 and early.ratios == [1 / 8, 2 / 8, 3 / 8]
    assert torch.equal(early.masked, full.masked[:3]) and torch.equal(early.tokens, full.tokens[:3])
    assert early.masked[-1].any()                          # still masked tokens after step 3 of 8 ...
    assert torch.equal(early_final, early.tokens[-1])      # ... take their step-3 prediction
    assert (early_final < K).all()
    assert trace_counts(early)[0] == [math.floor(math.cos(math.pi / 2 * t / 8) * 120) for t in (1, 2, 3)]
    assert torch.equal(full_final, full.tokens[-1]) and not full.masked[-1].any()


def test_seeded_runs_repeat_and_different_seeds_differ():
    # a transformer whose logits ignore the context: only the per-token Gumbel noise can change the
    # decoding order (one Gumbel sample shared by all tokens would give the same order every time)
    tokens, masked = random_tokens(2, seed=3), random_masks([150, 200], seed=3)

    def run(seed, **kw):
        return maskgit_with(TableTransformer()).decode_tokens(
            tokens, masked, total_iter=8, choice_temperature=4.5, generator=torch.Generator().manual_seed(seed), **kw)

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1].masked, b[1].masked)
    assert not torch.equal(a[1].masked, c[1].masked)
    s0, s1 = run(0, sample_temperature=1.0), run(1, sample_temperature=1.0)
    assert not torch.equal(s0[0], s1[0])
    assert torch.equal(s0[0], run(0, sample_temperature=1.0)[0])


def test_temperature_zero_is_deterministic_argmax():
    model = TableTransformer(mask_logit=100.0)  # the mask token must never be predicted
    tokens, masked = random_tokens(2, seed=4), random_masks([90, 256], seed=4)
    mg = maskgit_with(model)
    a_final, a = mg.decode_tokens(tokens, masked, total_iter=5, choice_temperature=0.0,
                                  generator=torch.Generator().manual_seed(0))
    b_final, b = mg.decode_tokens(tokens, masked, total_iter=5, choice_temperature=0.0,
                                  generator=torch.Generator().manual_seed(99))
    assert torch.equal(a_final, b_final) and torch.equal(a.masked, b.masked)
    log_p = model.table[:, :K].log_softmax(-1)
    best, conf = log_p.max(-1).indices, log_p.max(-1).values
    flat = a_final.view(2, N)
    assert torch.equal(flat[masked], best.expand(2, N)[masked])
    # the most confident tokens are decoded first
    for b_idx in range(2):
        first = masked[b_idx] & ~a.masked[0].view(2, N)[b_idx]
        still = a.masked[0].view(2, N)[b_idx]
        assert conf[first].min() >= conf[still].max()


def test_nothing_masked_calls_no_transformer_and_fully_masked_generates():
    model = TableTransformer()
    mg = maskgit_with(model)
    tokens = random_tokens(2)
    final, trace = mg.decode_tokens(tokens, torch.zeros(2, N, dtype=torch.bool), total_iter=4)
    assert model.calls == 0 and torch.equal(final.view(2, N), tokens)
    final, trace = mg.decode_tokens(tokens, torch.ones(2, N, dtype=torch.bool), total_iter=4,
                                    generator=torch.Generator().manual_seed(0))
    assert model.calls == 4 and (final < K).all()
    assert trace_counts(trace)[0] == [math.floor(math.cos(math.pi / 2 * t / 4) * N) for t in (1, 2, 3)] + [0]


def test_single_masked_token_waits_for_last_step():
    mg = maskgit_with(tiny_transformer())
    final, trace = mg.decode_tokens(random_tokens(1), random_masks([1]), total_iter=4,
                                    generator=torch.Generator().manual_seed(0))
    assert trace_counts(trace)[0] == [1, 1, 1, 0] and (final < K).all()


# ----------------------------------------------------------------------------- images

def test_course_mask_rule_on_hand_made_masks():
    masks = torch.ones(4, 1, 64, 64)
    masks[1, 0, 5, 9] = 0                       # one missing pixel -> token (1, 2)
    masks[2, 0, 8:12, 12:16] = 0                # an aligned 4x4 patch -> token (2, 3)
    masks[3, 0, 2:6, 2:6] = 0                   # a misaligned 4x4 block -> 4 tokens
    lat = latent_mask(masks)
    assert lat.shape == (4, 16, 16) and lat.dtype == torch.bool
    assert not lat[0].any()
    assert lat[1].nonzero().tolist() == [[1, 2]]
    assert lat[2].nonzero().tolist() == [[2, 3]]
    assert lat[3].nonzero().tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    dil = latent_mask(masks[1:2], dilation=1)[0]
    assert dil.sum() == 9 and dil[0:3, 1:4].all()
    corner = torch.ones(1, 64, 64)
    corner[0, 0, 0] = 0
    assert latent_mask(corner, dilation=2)[0].nonzero().tolist() == [[r, c] for r in range(3) for c in range(3)]


def counting_vqgan(batch: int | None = None):
    """A tiny VQGAN whose encoder counts its calls (and checks the batch size when given)."""
    vq = tiny_vqgan()
    calls = {"encode": 0}
    encode = vq.encode_to_indices

    def counting_encode(images):
        calls["encode"] += 1
        if batch is not None:
            assert len(images) == batch, "the course loop works on one image at a time"
        return encode(images)

    vq.encode_to_indices = counting_encode
    return vq, calls


def test_inpaint_encodes_once_and_respects_masks():
    vq, calls = counting_vqgan()
    mg = maskgit_with(tiny_transformer(), vq)
    images = torch.randn(3, 3, 64, 64)
    masks = torch.ones(3, 1, 64, 64)
    masks[1, :, 16:40, 8:30] = 0                # a hole
    masks[2] = 0                                # fully masked: generated from scratch
    res = mg.inpaint(images, masks, total_iter=3, generator=torch.Generator().manual_seed(0))
    assert calls["encode"] == 1, "the loop must not re-encode"
    assert res.images.shape == (3, 3, 64, 64) and res.tokens.shape == (3, 16, 16)
    assert res.latent_mask[2].all() and not res.latent_mask[0].any()
    assert (res.tokens < K).all()
    # no missing pixel: the input's reconstruction
    assert torch.equal(res.tokens[0].flatten(), mg.encode_to_z(images[:1])[0])
    assert torch.allclose(res.images[0], mg.decode_z(res.tokens[:1])[0], atol=1e-4)  # batch size changes rounding
    # paste_known: known pixels are the input's, missing ones the decoded image's
    pasted = mg.inpaint(images, masks, total_iter=3, paste_known=True, generator=torch.Generator().manual_seed(0))
    known = masks.expand_as(images).bool()
    assert torch.equal(pasted.images[known], images[known])
    assert torch.allclose(pasted.images[~known], res.images[~known], atol=1e-5)
    # the trace decodes to images on demand
    steps = res.trace.images(mg)
    assert steps.shape == (3, 3, 3, 64, 64)
    assert torch.allclose(steps[-1], res.images, atol=1e-4)


def test_course_style_reference_runs_per_image():
    vq, calls = counting_vqgan(batch=1)
    mg = maskgit_with(tiny_transformer(), vq)
    masks = torch.ones(2, 1, 64, 64)
    masks[:, :, 20:44, 20:44] = 0
    out = inpaint_course_style(mg, torch.randn(2, 3, 64, 64), masks, total_iter=2,
                               generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 64, 64) and torch.isfinite(out).all()
    assert calls["encode"] == 2 * 2                     # encode at every step of every image


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("kwargs,match", [
    (dict(total_iter=4, sweet_spot=5), "sweet_spot"),
    (dict(total_iter=0), "total_iter"),
    (dict(total_iter=4, sweet_spot=0), "sweet_spot"),
    (dict(schedule="zigzag"), "cosine"),
    (dict(choice_temperature=-1.0), "temperature"),
    (dict(sample_temperature=-0.5), "temperature"),
])
def test_bad_settings_fail_before_any_work(kwargs, match):
    model = TableTransformer()
    vq = tiny_vqgan()
    vq.encode_to_indices = lambda images: pytest.fail("encoded before checking the settings")
    mg = maskgit_with(model, vq)
    with pytest.raises(ValueError, match=match):
        mg.inpaint(torch.zeros(1, 3, 64, 64), torch.zeros(1, 1, 64, 64), **kwargs)
    with pytest.raises(ValueError, match=match):
        mg.decode_tokens(random_tokens(1), random_masks([5]), **kwargs)
    if "sample_temperature" not in kwargs:  # the course loop has no sampling option
        with pytest.raises(ValueError, match=match):
            inpaint_course_style(mg, torch.zeros(1, 3, 64, 64), torch.zeros(1, 1, 64, 64), **kwargs)
    assert model.calls == 0


def test_count_and_shape_mismatches():
    vq = tiny_vqgan()
    vq.encode_to_indices = lambda images: pytest.fail("encoded before checking the inputs")
    mg = maskgit_with(TableTransformer(), vq)
    with pytest.raises(ValueError, match="2 images but 3 masks"):
        mg.inpaint(torch.zeros(2, 3, 64, 64), torch.ones(3, 1, 64, 64))
    with pytest.raises(ValueError, match="mask size"):
        mg.inpaint(torch.zeros(2, 3, 64, 64), torch.ones(2, 1, 32, 32))
    with pytest.raises(ValueError, match="counts must match"):
        mg.decode_tokens(random_tokens(2), random_masks([3]))
    with pytest.raises(ValueError, match="16x16"):
        mg.decode_tokens(torch.zeros(1, 100, dtype=torch.long), torch.zeros(1, 100, dtype=torch.bool))


def test_codebook_mismatch_between_stages():
    cfg = TransformerConfig(num_codebook_vectors=32, dim=32, n_layers=1, hidden_dim=64, num_heads=2)
    with pytest.raises(ValueError, match="mismatch.*32.*64"):
        MaskGit(tiny_vqgan(), BidirectionalTransformer(cfg))


def test_decoding_settings_defaults():
    settings = DecodingSettings(total_iter=8, sweet_spot=None, schedule="square", choice_temperature=4.5)
    steps, fn = settings.steps, settings.gamma_fn
    assert steps == 8 and fn(0.5) == pytest.approx(0.75)


@pytest.mark.parametrize("kwargs,match", [
    (dict(total_iter=257), r"total_iter \(T\) must be an integer in 1\.\.256"),
    (dict(total_iter=2.5), "total_iter"),
    (dict(total_iter=4, sweet_spot=5), r"1 <= S <= total_iter \(T=4\)"),
    (dict(choice_temperature=float("nan")), "choice temperature.*finite"),
    (dict(sample_temperature=float("inf")), "sample temperature.*finite"),
    (dict(dilation=-1), "dilation"),
    (dict(schedule="zigzag"), "choose one of: " + ", ".join(SCHEDULES)),
])
def test_decoding_settings_reject_bad_values_naming_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DecodingSettings(**kwargs)


def test_decoding_settings_replace_revalidates_and_is_frozen():
    settings = DecodingSettings(total_iter=8, sweet_spot=6)
    assert settings.replace(total_iter=12).steps == 6 and settings.replace(sweet_spot=None).steps == 8
    with pytest.raises(ValueError, match="sweet_spot"):
        settings.replace(total_iter=4)
    with pytest.raises(AttributeError):
        settings.total_iter = 3
    assert DecodingSettings.resolve(None, total_iter=3) == DecodingSettings(total_iter=3)
    assert DecodingSettings.resolve(settings) is settings
    with pytest.raises(TypeError, match="by keyword"):
        DecodingSettings.resolve(8)
