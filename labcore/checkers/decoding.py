"""Checker of exercise 6, one step of MaskGIT's iterative decoding (Chang et al. 2022, section 3.2).

What the student writes, with ``labcore.decoding.decode_step``'s exact signature (so that
``labcore.decoding.decode(..., step=decode_step)`` runs it in the real pipeline)::

    def decode_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
        # tokens (B, N) ids (mask_token_id = K where masked), masked (B, N) bool (True = to decode),
        # m0 (B,) each image's initial masked count, ratio = t/T; settings: a DecodingSettings
        # (settings.gamma_fn, settings.choice_temperature, settings.sample_temperature)
        ...  # -> StepResult(tokens, masked, filled) or a plain 3-tuple, each (B, N)

The checker runs it on a stub transformer whose logits are made by hand (4x4 tokens, K = 8) and
judges properties, never the random stream (a correct step that draws its noise in another
order, with ``torch.distributions``, or loops over images, passes):

- with both temperatures 0 the step is deterministic: equal to labcore's ``decode_step``; the
  counts follow floor(gamma(t/T) * M0) clamped to [1, remaining - 1] (matched against M0 from
  the current count, ceil, one M0 for the batch (max, first or mean), no clamp); the kept tokens are the most
  confident by probability (not by raw logit);
- known tokens are low-confidence in the stub: they must still never be re-masked or changed;
  changed to the stub's prediction = overwritten with the argmax, to anything else = the step
  rewrites known tokens from elsewhere, which is how re-encoding the decoded image at every step
  shows in one step (``labcore.checkers.wrong_steps.reencoding_step``);
- with equal logits everywhere the kept positions must vary from one random stream to the next
  (one shared Gumbel sample changes no order) and between the images of a batch;
- with two masked tokens of probabilities p_A > p_B, one decoded, A must win at the rate of the
  Gumbel law on log-probabilities with scale s = tau * (1 - t/T): sigmoid(log(p_A / p_B) / s);
  noise on probabilities, no annealing or annealing by gamma(t/T) give other rates (1000 images
  per case, four cases);
- with sample_temperature t > 0 the predictions follow softmax(logits / t).
"""

from __future__ import annotations

import math

import torch

from labcore.checkers.fixtures import FixedLogits
from labcore.checkers.report import call, describe, fail, ok, run_probes, short
from labcore.decoding import DecodingSettings, decode_step, masked_count_after_step
from labcore.schedules import gamma

K, N = 8, 16                                  # codebook size (mask id K), tokens per image (4x4)
RATIOS = (1 / 8, 3 / 8, 5 / 8, 7 / 8, 1.0)    # the deterministic cases' steps
# their images' initial masked counts and how many are still masked: the counts of every count
# mistake differ from the right ones at some ratio (M0 = 2 needs the lower bound at 7/8, the max
# M0 is not N = 16, and the clamp to remaining - 1 binds in only a few cases)
M0 = (15, 14, 9, 2)
REMAINING = (15, 10, 9, 2)
NOISE_CASES = (((0.9, 0.6), 1 / 8), ((0.9, 0.6), 7 / 8), ((0.7, 0.14), 1 / 8), ((0.7, 0.14), 7 / 8))
NOISE_IMAGES, TAU, Z = 1000, 2.0, 4.5          # images per noise case, choice temperature, tolerance in SDs
SAMPLES = 2000                                # masked tokens sampled with sample_temperature > 0


def settings_for(schedule="cosine", choice_temperature: float = 0.0, sample_temperature: float = 0.0):
    return DecodingSettings(schedule=schedule, total_iter=8, choice_temperature=choice_temperature,
                            sample_temperature=sample_temperature)


def run_step(step, logits, tokens, masked, m0, ratio, settings, seed: int = 0):
    """What ``step`` returns on the stub transformer with ``logits``, as a tuple (its inputs are
    copies; the generator and torch's global stream are both seeded ``seed``)."""
    torch.manual_seed(seed)
    out = call(step, FixedLogits(logits), tokens.clone(), masked.clone(), m0.clone(), ratio, settings, K,
               torch.Generator().manual_seed(seed))
    return tuple(out) if isinstance(out, (tuple, list)) else out


def check_decode_step(step, seed: int = 0):
    """Check a decoding step with ``decode_step``'s signature. ``str()`` of the result is the report."""
    state: dict = {}
    return run_probes("check_decode_step", [
        ("returns (tokens, masked, filled): (B, N) long, bool, long", lambda: _probe_shape(step, state)),
        ("predicts codebook ids only, never the mask token K", lambda: _probe_mask_token(step)),
        ("known tokens are never re-masked or changed", lambda: _probe_known(step)),
        ("keeps the most confident predictions (by probability)", lambda: _probe_confidence(step)),
        ("how many stay masked: floor(gamma(t/T) * M0), clamped", lambda: _probe_counts(state)),
        ("tokens still masked hold the mask id K", lambda: _probe_reset(state)),
        ("equals labcore's decode_step with both temperatures 0", lambda: _probe_exact(state)),
        ("the noise differs per token and per image", lambda: _probe_ties(step, state)),
        ("the noise: Gumbel on log p, scale tau * (1 - t/T)", lambda: _probe_noise(step, state)),
        ("sample_temperature t > 0 samples softmax(logits / t)", lambda: _probe_sampling(step)),
    ], "decode.error", seed, lambda: state.update(_deterministic_cases()))


# ----------------------------------------------------------------------------- the deterministic cases

def _masked_map(counts, n: int = N) -> torch.Tensor:
    """(B, n) bool with counts[b] random positions True in row b."""
    order = torch.rand(len(counts), n).argsort(dim=1)                                 # (B, n)
    return order < torch.tensor(counts)[:, None]


def _deterministic_cases() -> dict:
    """Four images mid-decoding (M0, remaining = M0, REMAINING), random logits (the mask token's
    at -30), tokens K where masked; labcore's step at each ratio."""
    masked = _masked_map(REMAINING)                                                   # (4, N)
    tokens = torch.randint(0, K, (4, N)).masked_fill(masked, K)                       # (4, N)
    logits = torch.randn(4, N, K + 1) * 2
    logits[..., K] = -30.0
    m0, settings = torch.tensor(M0), settings_for("cosine")
    refs = [decode_step(FixedLogits(logits), tokens, masked, m0, r, settings, K) for r in RATIOS]
    return dict(tokens=tokens, masked=masked, m0=m0, logits=logits, refs=refs)


def _probe_shape(step, state):
    name = "returns (tokens, masked, filled): (B, N) long, bool, long"
    outs = [run_step(step, state["logits"], state["tokens"], state["masked"], state["m0"], r, settings_for())
            for r in RATIOS]
    state["outs"] = outs
    shape = tuple(state["tokens"].shape)
    for r, out in zip(RATIOS, outs):
        good = isinstance(out, tuple) and len(out) == 3 and all(torch.is_tensor(t) and t.shape == shape for t in out)
        if not good or (out[0].dtype, out[1].dtype, out[2].dtype) != (torch.long, torch.bool, torch.long):
            got = ", ".join(describe(t) for t in out) if isinstance(out, tuple) else describe(out)
            return fail(name, "decode.shape", f"ratio {r:.3f}, tokens {shape}: expected 3 tensors {shape} "
                                              f"(int64, bool, int64), got {got}")
    return ok(name)


def _counts_expected(ratio, m0, rem, g):
    """(mistake id, the counts that mistake gives) for the count mistakes, the right one first."""
    zeros = torch.zeros_like(rem)
    last = ratio >= 1
    clamp = lambda n: torch.clamp(torch.minimum(n, rem - 1), min=1)                    # noqa: E731
    floor = torch.floor(g(ratio) * m0.double()).long()
    return [(None, masked_count_after_step(ratio, m0, rem, g)),
            ("decode.count_from_current", masked_count_after_step(ratio, rem, rem, g)),
            ("decode.count_ceil", zeros if last else clamp(torch.ceil(g(ratio) * m0.double()).long())),
            ("decode.m0_not_per_image", masked_count_after_step(ratio, m0.max().expand_as(m0), rem, g)),
            ("decode.m0_not_per_image", masked_count_after_step(ratio, m0[0].expand_as(m0), rem, g)),
            ("decode.m0_not_per_image", masked_count_after_step(ratio, m0.double().mean().expand(len(m0)), rem, g)),
            ("decode.count_bounds", floor),
            ("decode.count_bounds", clamp(floor)),                                     # clamped at the last step too
            ("decode.count_bounds", torch.minimum(floor, rem - 1))]


def _probe_counts(state):
    name = "how many stay masked: floor(gamma(t/T) * M0), clamped"
    m0, rem, g = state["m0"], state["masked"].sum(1), gamma("cosine")
    got = [out[1].sum(1) for out in state["outs"]]
    candidates = [_counts_expected(r, m0, rem, g) for r in RATIOS]
    for i in range(len(candidates[0])):
        mistake = candidates[0][i][0]
        if all(torch.equal(g_, c[i][1]) for g_, c in zip(got, candidates)):
            return ok(name) if mistake is None else fail(name, mistake, _count_table(got, candidates))
    return fail(name, "decode.wrong_result", _count_table(got, candidates))


def _count_table(got, candidates) -> str:
    lines = [f"M0 {list(M0)}, still masked {list(REMAINING)}, cosine schedule:"]
    for r, g_, c in zip(RATIOS, got, candidates):
        lines.append(f"t/T = {r:.3f}: expected {c[0][1].tolist()} masked after the step, got {g_.tolist()}")
    return "\n".join(lines)


def _probe_reset(state):
    name = "tokens still masked hold the mask id K"
    for r, (tokens, masked, filled) in zip(RATIOS, state["outs"]):
        if not (tokens[masked] == K).all() or not torch.equal(tokens[~masked], filled[~masked]):
            return fail(name, "decode.masked_not_reset", f"t/T = {r:.3f}, image 0: masked {short(masked[0].long())}"
                                                         f"\n  tokens {short(tokens[0])}")
    return ok(name)


def _probe_exact(state):
    name = "equals labcore's decode_step with both temperatures 0"
    for r, out, ref in zip(RATIOS, state["outs"], state["refs"]):
        for part, got, want in zip(("tokens", "masked", "filled"), out, ref):
            if not torch.equal(got, want):
                b = int((got != want).any(1).nonzero()[0])
                return fail(name, "decode.wrong_result", f"t/T = {r:.3f}, image {b}, {part}:\n"
                            f"  expected {short(want[b].long())}\n  got      {short(got[b].long())}")
    return ok(name)


# ----------------------------------------------------------------------------- hand-made logits

def _log_probs(top, p_top: float, k: int = K) -> torch.Tensor:
    """(..., K+1) logits = log-probabilities with p_top on class ``top``, the rest of the K codes
    equal, the mask token at -30."""
    rest = (1 - p_top) / (k - 1)
    logits = torch.full((*top.shape, K + 1), math.log(rest))
    logits.scatter_(-1, top[..., None], math.log(p_top))
    logits[..., K] = -30.0
    return logits


def _probe_mask_token(step):
    name = "predicts codebook ids only, never the mask token K"
    masked = _masked_map([6, 6])
    tokens = torch.randint(0, K, (2, N)).masked_fill(masked, K)
    logits = torch.randn(2, N, K + 1)
    logits[..., K] = 10.0                                                              # the mask token wins argmax
    _, _, filled = run_step(step, logits, tokens, masked, torch.tensor([6, 6]), 0.5, settings_for())
    if (filled[masked] == K).any():
        return fail(name, "decode.predicts_mask_token", f"the stub gives the mask token the highest logit: "
                    f"filled {short(filled[0])}")
    return ok(name)


def _probe_known(step):
    """Known tokens have near-flat logits (the least confident) whose argmax is another id."""
    name = "known tokens are never re-masked or changed"
    masked = _masked_map([6, 6, 6, 6])                                                  # (4, N)
    tokens = torch.randint(0, K, (4, N)).masked_fill(masked, K)
    argmax = torch.where(masked, torch.randint(0, K, (4, N)), (tokens + 1) % K)        # (4, N) never a known token
    logits = _log_probs(argmax, 0.9) + 0.01 * torch.randn(4, N, K + 1)
    logits[~masked] = _log_probs(argmax[~masked], 0.13)                                 # known: flat, argmax wrong
    new_tokens, new_masked, filled = run_step(step, logits, tokens, masked, torch.tensor([6] * 4), 0.5,
                                              settings_for())
    known = ~masked
    detail = f"image 0: known {short(known[0].long())}\n  tokens in  {short(tokens[0])}\n  tokens out {short(new_tokens[0])}"
    found = []
    if (new_masked & known).any():
        found.append(fail(name, "decode.remasks_known", detail))
    # a known token re-masked holds K in tokens: judge it by the filled map alone
    changed = known & (((new_tokens != tokens) & ~new_masked) | (filled != tokens))
    if changed.any():
        to_argmax = ((new_tokens == argmax) | (filled == argmax))[changed].all()
        found.append(fail(name, "decode.overwrites_known" if to_argmax else "decode.reencodes", detail))
    return found or ok(name)


def _probe_confidence(step):
    """All 16 masked, n = 8 stay masked: confidence rising with position (as log-probabilities),
    then with a raw-logit order opposite to the probability order."""
    name = "keeps the most confident predictions (by probability)"
    masked, m0 = torch.ones(1, N, dtype=torch.bool), torch.tensor([N])
    tokens, top = torch.full((1, N), K), torch.randint(0, K, (1, N))
    settings = settings_for("linear")
    rising = torch.cat([_log_probs(top[:, i], 0.2 + 0.05 * i) for i in range(N)])[None]  # (1, N, K+1)
    low_half = torch.arange(N)[None] < N // 2
    got = run_step(step, rising, tokens, masked, m0, 0.5, settings)[1]
    if torch.equal(got, ~low_half):
        return fail(name, "decode.keeps_least_confident", f"confidence rises with position: expected masked "
                    f"{short(low_half.long())}, got {short(got.long())}")
    crowded = torch.full((1, N, K + 1), -5.0)   # first half: max logit 5.5 among 5's (p ~ 0.19); second: 3 (p ~ 1)
    crowded[0, : N // 2, :K] = 5.0
    crowded[0, torch.arange(N), top[0]] = torch.where(low_half[0], 5.5, 3.0) + 0.01 * torch.arange(N)
    got = run_step(step, crowded, tokens, masked, m0, 0.5, settings)[1]
    if torch.equal(got, ~low_half):
        return fail(name, "decode.confidence_from_logits", f"first half: higher logits, lower probabilities; "
                    f"expected masked {short(low_half.long())}, got {short(got.long())}")
    return ok(name)


# ----------------------------------------------------------------------------- the noise

def _probe_ties(step, state):
    """All 16 tokens masked with the same logits: only the noise decides which 8 stay masked."""
    name = "the noise differs per token and per image"
    masked, tokens = torch.ones(4, N, dtype=torch.bool), torch.full((4, N), K)
    logits = _log_probs(torch.zeros(4, N, dtype=torch.long), 0.5)
    settings = settings_for("linear", choice_temperature=4.5)
    runs = [run_step(step, logits, tokens, masked, torch.tensor([N] * 4), 0.5, settings, seed=100 + s)[1]
            for s in range(12)]
    across_streams = all(torch.equal(r, runs[0]) for r in runs)
    within_batch = all((r == r[0]).all() for r in runs)
    detail = f"equal logits, 12 random streams: image 0 kept masked {short(runs[0][0].long())} ..."
    if across_streams and within_batch:
        state["shared"] = True
        return fail(name, "decode.shared_gumbel", detail + " every time, in every image")
    if within_batch:
        return fail(name, "decode.noise_shared_across_batch", "equal logits: the 4 images of a batch keep the "
                                                              "same positions masked")
    if across_streams:
        return [ok(name), "the same positions stay masked for every random stream: the noise ignores the "
                          "generator and torch's seed (a fixed seed inside the step?)"]
    return ok(name)


def _noise_case(step, pair, ratio, seed):
    """(A's win rate among the images where exactly one of A, B was decoded, that count)."""
    B = NOISE_IMAGES
    order = torch.rand(B, N).argsort(dim=1)
    a, b = order[:, 0], order[:, 1]                                                  # (B,), (B,)
    rows = torch.arange(B)
    masked = torch.zeros(B, N, dtype=torch.bool)
    masked[rows, a] = masked[rows, b] = True
    tokens = torch.randint(0, K, (B, N)).masked_fill(masked, K)
    logits = _log_probs(torch.randint(0, K, (B, N)), 0.9)
    logits[rows, a] = _log_probs(torch.randint(0, K, (B,)), pair[0])
    logits[rows, b] = _log_probs(torch.randint(0, K, (B,)), pair[1])
    settings = settings_for("cubic", choice_temperature=TAU)
    new = run_step(step, logits, tokens, masked, torch.full((B,), 2), ratio, settings, seed=seed)[1]
    valid = ~(new & ~masked).any(1) & (new[rows, a] ^ new[rows, b])                  # (B,)
    wins = valid & ~new[rows, a]
    return wins.sum().item() / max(valid.sum().item(), 1), valid.sum().item()


def _predicted(pair, ratio, space: str, scale: str) -> float:
    d = math.log(pair[0] / pair[1]) if space == "log" else pair[0] - pair[1]
    s = TAU * {"anneal": 1 - ratio, "none": 1.0, "gamma": gamma("cubic")(ratio)}[scale]
    return 1 / (1 + math.exp(-d / s))


_NOISE_HYPOTHESES = [([], "log", "anneal"), (["decode.gumbel_on_probs"], "prob", "anneal"),
                     (["decode.no_annealing"], "log", "none"), (["decode.anneal_with_gamma"], "log", "gamma"),
                     (["decode.gumbel_on_probs", "decode.no_annealing"], "prob", "none"),
                     (["decode.gumbel_on_probs", "decode.anneal_with_gamma"], "prob", "gamma")]


def _probe_noise(step, state):
    name = "the noise: Gumbel on log p, scale tau * (1 - t/T)"
    if state.get("shared"):
        return []  # no per-token noise: nothing to measure
    observed = [_noise_case(step, pair, ratio, 200 + i) for i, (pair, ratio) in enumerate(NOISE_CASES)]
    if min(n for _, n in observed) < NOISE_IMAGES // 2:
        return ["the noise was not measured: the step did not decode exactly one of two masked tokens"]

    def fits(space, scale):
        return all(abs(rate - p) <= Z * math.sqrt(p * (1 - p) / n) + 0.02
                   for (rate, n), p in zip(observed, [_predicted(pair, r, space, scale) for pair, r in NOISE_CASES]))

    table = "\n".join(f"p_A {pair[0]}, p_B {pair[1]}, t/T {r:.3f}: A decoded in {rate:.0%} of {n} images, expected "
                      f"{_predicted(pair, r, 'log', 'anneal'):.0%}"
                      for (pair, r), (rate, n) in zip(NOISE_CASES, observed))
    table += f"\n(tau = {TAU}, one of the two stays masked)"
    for ids, space, scale in _NOISE_HYPOTHESES:
        if fits(space, scale):
            return ok(name, table) if not ids else [fail(name, i, table) for i in ids]
    return fail(name, "decode.noise_scale", table)


def _probe_sampling(step):
    """One masked token per image with p = (0.6, 0.3, 0.1) and t = 2: q = p^(1/2), normalised."""
    name = "sample_temperature t > 0 samples softmax(logits / t)"
    B, p = SAMPLES, torch.tensor([0.6, 0.3, 0.1] + [1e-9] * (K - 3))
    masked = torch.zeros(B, N, dtype=torch.bool)
    masked[:, 0] = True
    tokens = torch.randint(0, K, (B, N)).masked_fill(masked, K)
    logits = _log_probs(torch.randint(0, K, (B, N)), 0.9)
    logits[:, 0, :K], logits[:, 0, K] = p.log(), -30.0
    filled = run_step(step, logits, tokens, masked, torch.ones(B, dtype=torch.long), 0.5,
                      settings_for(sample_temperature=2.0), seed=300)[2]
    q = p.sqrt() / p.sqrt().sum()
    freq = torch.bincount(filled[:, 0].clamp(0, K), minlength=K + 1)[:3].double() / B
    detail = (f"p = (0.6, 0.3, 0.1), t = 2: expected ids 0, 1, 2 in {short((q[:3] * 100).round())} % of {B} "
              f"samples, got {short((freq * 100).round())} %")
    if all(abs(f - w) <= Z * math.sqrt(w * (1 - w) / B) + 0.02 for f, w in zip(freq.tolist(), q[:3].tolist())):
        return ok(name, detail)
    return fail(name, "decode.sample_temperature", detail)
