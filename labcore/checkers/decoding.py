"""Checker of exercise 6, one step of MaskGIT's iterative decoding (Chang et al. 2022, section 3.2).

What the student writes, with ``labcore.decoding.decode_step``'s exact signature (so that
``labcore.decoding.decode(..., step=decode_step)`` runs it in the real pipeline)::

    def decode_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
        # tokens (B, N) ids (mask_token_id = K where masked), masked (B, N) bool (True = to decode),
        # m0 (B,) each image's initial masked count, ratio = t/T; settings: a DecodingSettings
        # (settings.gamma_fn, settings.choice_temperature, settings.sample_temperature)
        ...  # -> StepResult(tokens, masked, filled) or a plain 3-tuple, each (B, N)

The checker runs it on a stub transformer whose logits are made by hand (4x4 tokens, K = 8; the
stub has one unused parameter, so reading the device from it works) and judges properties, never
the random stream (a correct step that draws its noise in another order, with
``torch.distributions``, or loops over images, passes):

- whose code it is: a step that reaches labcore's decoding (``decode_step``, ``decode``,
  ``masked_count_after_step``, ``labcore.decoding_variants``), in its code or while it runs, is
  ``decode.uses_reference`` (``gumbel`` and ``uniform``, which the exercise offers, are fine);
- three tensors of the input's shape, ids in the tokens' dtype, a bool mask; the caller's
  tokens, mask and m0 unchanged after every call;
- with both temperatures 0 the step is deterministic: equal to labcore's ``decode_step``; the
  counts follow floor(gamma(t/T) * M0) clamped to [1, remaining - 1] under four schedules, each
  count mistake named (``decoding_laws.count_candidates``: M0 from the current count, from N or
  from the batch, ceil or round, another ratio, a fixed schedule, no clamp); the kept tokens are
  the most confident by probability (not by raw logit);
- known tokens are low-confidence in the stub: they must still never be re-masked or changed;
  changed to the stub's prediction = overwritten with the argmax, to anything else = the step
  rewrites known tokens from elsewhere (re-encoding the decoded image at every step);
- with equal logits everywhere the kept positions must vary from one random stream to the next
  and between the images of a batch;
- the noise law: one strong and 1, 11 or 15 weak masked tokens, one decoded; the strong one must
  win at the Gumbel law's rate on log-probabilities with scale tau * (1 - t/T) (2000 images per
  case); other spaces, scales and laws (wrong sign, Gaussian) give other rates;
- with sample_temperature t > 0 the predictions follow softmax(logits / t).
"""

from __future__ import annotations

import math

import torch

from labcore.checkers import decoding_laws as laws
from labcore.checkers.fallback import record
from labcore.checkers.fixtures import FixedLogits
from labcore.checkers.ownership import Watch
from labcore.checkers.report import (CheckResult, call, changed, describe, fail, ok, run_probes, short, snapshot,
                                     uses_reference)
from labcore.decoding import DecodingSettings, decode_step
from labcore.schedules import gamma

K, N, T = 8, 16, 8                            # codebook size (mask id K), tokens per image (4x4), steps
RATIOS = (1 / 8, 3 / 8, 5 / 8, 7 / 8, 1.0)    # the deterministic cases' steps
SCHEDULES = ("cosine", "linear", "square", "cubic")  # the counts are checked under each
# the images' initial masked counts and how many are still masked: every count mistake differs from
# the right counts at some ratio and schedule (tests/test_checkers_decoding.py proves it)
M0 = (15, 14, 9, 2)
REMAINING = (15, 10, 9, 2)
# the noise cases: (ratio, tau, the numbers of weak tokens); s = tau * (1 - ratio) = 1.0 and 0.6
NOISE_RUNS = ((1 / 8, 8 / 7, (1, 15)), (5 / 8, 1.6, (1, 11)))
P_STRONG, P_WEAK, NOISE_IMAGES = 0.95, 0.14, 2000   # the candidates' probabilities, images per case
Z = 4.5                                       # tolerance of the sampling probe, in standard deviations
SAMPLES = 2000                                # masked tokens sampled with sample_temperature > 0


def settings_for(schedule="cosine", choice_temperature: float = 0.0, sample_temperature: float = 0.0):
    return DecodingSettings(schedule=schedule, total_iter=T, choice_temperature=choice_temperature,
                            sample_temperature=sample_temperature)


class Runner:
    """Runs the student's step on the stub with copies of the inputs (the generator and torch's
    global stream both seeded); records the inputs it changed and labcore's decoding code that ran."""

    def __init__(self, step, watch: bool):
        self.step, self.mutated = step, []
        self.watch = Watch("decode" if watch else None)

    def __call__(self, logits, tokens, masked, m0, ratio, settings, seed: int = 0):
        torch.manual_seed(seed)
        args = (tokens.clone(), masked.clone(), m0.clone())
        before = snapshot(*args)
        with self.watch:
            out = call(self.step, FixedLogits(logits), *args, ratio, settings, K, torch.Generator().manual_seed(seed))
        moved = changed(before, *args)
        if moved and len(self.mutated) < 3:
            self.mutated.append(f"t/T = {ratio:.3f}: your step changed its input "
                                + ", ".join(("tokens", "masked", "m0")[i] for i in moved))
        return tuple(out) if isinstance(out, (tuple, list)) else out


def check_decode_step(step, seed: int = 0) -> CheckResult:
    """Check a decoding step with ``decode_step``'s signature. ``str()`` of the result is the report."""
    return record("decode_step", step, _check(step, seed, own=True))


def probe_decode_step(step, seed: int = 0) -> CheckResult:
    """The probes alone, without the test of whose code it is: for labcore's own steps (``decode_step``,
    ``labcore.decoding_variants``' classic mistakes), whose behaviour the tests pin down."""
    return _check(step, seed, own=False)


def _check(step, seed: int, own: bool) -> CheckResult:
    state: dict = {}
    run = Runner(step, watch=own)
    result = run_probes("check_decode_step", [
        ("returns (tokens, masked, filled): (B, N) ids, bool, ids", lambda: _probe_shape(run, state)),
        ("predicts codebook ids only, never the mask token K", lambda: _probe_mask_token(run)),
        ("known tokens are never re-masked or changed", lambda: _probe_known(run)),
        ("keeps the most confident predictions (by probability)", lambda: _probe_confidence(run)),
        ("how many stay masked: floor(gamma(t/T) * M0), clamped", lambda: _probe_counts(run, state)),
        ("tokens still masked hold the mask id K", lambda: _probe_reset(state)),
        ("equals labcore's decode_step with both temperatures 0", lambda: _probe_exact(state)),
        ("the noise differs per token and per image", lambda: _probe_ties(run, state)),
        ("the noise: Gumbel on log p, scale tau * (1 - t/T)", lambda: _probe_noise(run, state)),
        ("sample_temperature t > 0 samples softmax(logits / t)", lambda: _probe_sampling(run)),
        ("the caller's tokens, masked and m0 are left unchanged", lambda: _probe_inputs(run)),
    ], "decode.error", seed, lambda: state.update(_deterministic_cases()), own=step if own else None)
    if run.watch.ran:
        names = ", ".join(dict.fromkeys(run.watch.ran))
        return CheckResult("check_decode_step", [uses_reference("decode", "your step ran " + names)],
                           seconds=result.seconds)
    return result


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
    logits = torch.randn(4, N, K + 1) * 2                                             # (4, N, K+1)
    logits[..., K] = -30.0
    m0, settings = torch.tensor(M0), settings_for("cosine")
    refs = [decode_step(FixedLogits(logits), tokens, masked, m0, r, settings, K) for r in RATIOS]
    return dict(tokens=tokens, masked=masked, m0=m0, logits=logits, refs=refs)


def _run_cases(run, state, schedule: str) -> list:
    return [run(state["logits"], state["tokens"], state["masked"], state["m0"], r, settings_for(schedule))
            for r in RATIOS]


def _probe_shape(run, state):
    state["outs"] = outs = _run_cases(run, state, "cosine")
    shape, ids = tuple(state["tokens"].shape), state["tokens"].dtype
    for r, out in zip(RATIOS, outs):
        got = ", ".join(describe(t) for t in out) if isinstance(out, tuple) else describe(out)
        good = isinstance(out, tuple) and len(out) == 3 and all(torch.is_tensor(t) and t.shape == shape for t in out)
        if not good:
            return fail("decode.shape", f"ratio {r:.3f}, tokens {shape}: expected 3 tensors {shape}, got {got}")
        if (out[0].dtype, out[1].dtype, out[2].dtype) != (ids, torch.bool, ids):
            return fail("decode.dtype", f"ratio {r:.3f}: expected tokens {ids}, masked bool, filled {ids} "
                                        f"(the input tokens' dtype), got {got}")
    return ok()


def _probe_counts(run, state):
    """The counts under each schedule against the right rule, every count mistake and every
    fixed schedule; the first candidate that gives every count seen is named."""
    m0, rem = state["m0"], state["masked"].sum(1)
    got, candidates, fixed = {}, {}, {}
    for schedule in SCHEDULES:
        outs = state["outs"] if schedule == "cosine" else _run_cases(run, state, schedule)
        got[schedule] = [out[1].sum(1) for out in outs]
        candidates[schedule] = [laws.count_candidates(r, m0, rem, gamma(schedule), N, T) for r in RATIOS]
        fixed[schedule] = [laws.fixed_schedule_counts(r, m0, rem) for r in RATIOS]
    table = _count_table(got, candidates)
    for i, (mistake, _) in enumerate(candidates["cosine"][0]):
        if all(torch.equal(g, c[i][1]) for s in SCHEDULES for g, c in zip(got[s], candidates[s])):
            return ok() if mistake is None else fail(mistake, table)
    for j, schedule in enumerate(laws.FIXED_SCHEDULES):
        if all(torch.equal(g, f[j][1]) for s in SCHEDULES for g, f in zip(got[s], fixed[s])):
            return fail("decode.ignores_schedule", f"the counts are {schedule}'s under every schedule\n{table}")
    return fail("decode.wrong_result", table)


def _count_table(got, candidates) -> str:
    lines = [f"M0 {list(M0)}, still masked {list(REMAINING)}, T = {T}:"]
    for schedule in SCHEDULES:
        for r, g, c in zip(RATIOS, got[schedule], candidates[schedule]):
            if not torch.equal(g, c[0][1]):
                lines.append(f"{schedule}, t/T = {r:.3f}: expected {c[0][1].tolist()} masked after the step, "
                             f"got {g.tolist()}")
    return "\n".join(lines[:9])


def _probe_reset(state):
    for r, (tokens, masked, filled) in zip(RATIOS, state["outs"]):
        if not (tokens[masked] == K).all() or not torch.equal(tokens[~masked], filled[~masked]):
            return fail("decode.masked_not_reset", f"t/T = {r:.3f}, image 0: masked {short(masked[0].long())}"
                                                   f"\n  tokens {short(tokens[0])}")
    return ok()


def _probe_exact(state):
    for r, out, ref in zip(RATIOS, state["outs"], state["refs"]):
        for part, got, want in zip(("tokens", "masked", "filled"), out, ref):
            if not torch.equal(got, want):
                b = int((got != want).any(1).nonzero()[0])
                return fail("decode.wrong_result", f"t/T = {r:.3f}, image {b}, {part}:\n"
                            f"  expected {short(want[b].long())}\n  got      {short(got[b].long())}")
    return ok()


def _probe_inputs(run):
    if run.mutated:
        return fail("decode.mutates_input", "\n".join(run.mutated) + "\n(an in-place operation: x[...] = ..., "
                    "x.masked_fill_(...); decode's trace then shows the same mask at every step)")
    return ok()


# ----------------------------------------------------------------------------- hand-made logits

def _log_probs(top, p_top: float, k: int = K) -> torch.Tensor:
    """(..., K+1) logits = log-probabilities with p_top on class ``top``, the rest of the K codes
    equal, the mask token at -30."""
    rest = (1 - p_top) / (k - 1)
    logits = torch.full((*top.shape, K + 1), math.log(rest))
    logits.scatter_(-1, top[..., None], math.log(p_top))
    logits[..., K] = -30.0
    return logits


def _probe_mask_token(run):
    masked = _masked_map([6, 6])
    tokens = torch.randint(0, K, (2, N)).masked_fill(masked, K)
    logits = torch.randn(2, N, K + 1)
    logits[..., K] = 10.0                                                              # the mask token wins argmax
    _, _, filled = run(logits, tokens, masked, torch.tensor([6, 6]), 0.5, settings_for())
    if (filled[masked] == K).any():
        return fail("decode.predicts_mask_token", f"the stub gives the mask token the highest logit: "
                    f"filled {short(filled[0])}")
    return ok()


def _probe_known(run):
    """Known tokens have near-flat logits (the least confident) whose argmax is another id."""
    masked = _masked_map([6, 6, 6, 6])                                                  # (4, N)
    tokens = torch.randint(0, K, (4, N)).masked_fill(masked, K)
    argmax = torch.where(masked, torch.randint(0, K, (4, N)), (tokens + 1) % K)        # (4, N) never a known token
    logits = _log_probs(argmax, 0.9) + 0.01 * torch.randn(4, N, K + 1)
    logits[~masked] = _log_probs(argmax[~masked], 0.13)                                 # known: flat, argmax wrong
    new_tokens, new_masked, filled = run(logits, tokens, masked, torch.tensor([6] * 4), 0.5,
                                              settings_for())
    known = ~masked
    detail = (f"image 0: known {short(known[0].long())}\n  tokens in  {short(tokens[0])}\n"
              f"  tokens out {short(new_tokens[0])}")
    found = []
    if (new_masked & known).any():
        found.append(fail("decode.remasks_known", detail))
    # a known token re-masked holds K in tokens: judge it by the filled map alone
    changed = known & (((new_tokens != tokens) & ~new_masked) | (filled != tokens))
    if changed.any():
        to_argmax = ((new_tokens == argmax) | (filled == argmax))[changed].all()
        found.append(fail("decode.overwrites_known" if to_argmax else "decode.reencodes", detail))
    return found or ok()


def _probe_confidence(run):
    """All 16 masked, n = 8 stay masked: confidence rising with position (as log-probabilities),
    then with a raw-logit order opposite to the probability order."""
    masked, m0 = torch.ones(1, N, dtype=torch.bool), torch.tensor([N])
    tokens, top = torch.full((1, N), K), torch.randint(0, K, (1, N))
    settings = settings_for("linear")
    rising = torch.cat([_log_probs(top[:, i], 0.2 + 0.05 * i) for i in range(N)])[None]  # (1, N, K+1)
    low_half = torch.arange(N)[None] < N // 2
    got = run(rising, tokens, masked, m0, 0.5, settings)[1]
    if torch.equal(got, ~low_half):
        return fail("decode.keeps_least_confident", f"confidence rises with position: expected masked "
                    f"{short(low_half.long())}, got {short(got.long())}")
    crowded = torch.full((1, N, K + 1), -5.0)   # first half: max logit 5.5 among 5's (p ~ 0.19); second: 3 (p ~ 1)
    crowded[0, : N // 2, :K] = 5.0
    crowded[0, torch.arange(N), top[0]] = torch.where(low_half[0], 5.5, 3.0) + 0.01 * torch.arange(N)
    got = run(crowded, tokens, masked, m0, 0.5, settings)[1]
    if torch.equal(got, ~low_half):
        return fail("decode.confidence_from_logits", f"first half: higher logits, lower probabilities; "
                    f"expected masked {short(low_half.long())}, got {short(got.long())}")
    return ok()


# ----------------------------------------------------------------------------- the noise

def _probe_ties(run, state):
    """All 16 tokens masked with the same logits: only the noise decides which 8 stay masked."""
    masked, tokens = torch.ones(4, N, dtype=torch.bool), torch.full((4, N), K)
    logits = _log_probs(torch.zeros(4, N, dtype=torch.long), 0.5)
    settings = settings_for("linear", choice_temperature=4.5)
    runs = [run(logits, tokens, masked, torch.tensor([N] * 4), 0.5, settings, seed=100 + s)[1]
            for s in range(12)]
    across_streams = all(torch.equal(r, runs[0]) for r in runs)
    within_batch = all((r == r[0]).all() for r in runs)
    detail = f"equal logits, 12 random streams: image 0 kept masked {short(runs[0][0].long())} ..."
    if across_streams and within_batch:
        state["shared"] = True
        return fail("decode.shared_gumbel", detail + " every time, in every image")
    if within_batch:
        return fail("decode.noise_shared_across_batch", "equal logits: the 4 images of a batch keep the "
                                                        "same positions masked")
    if across_streams:
        return [ok(), "the same positions stay masked for every random stream: the noise ignores the "
                      "generator and torch's seed (a fixed seed inside the step?)"]
    return ok()


def _noise_run(run, ratio: float, tau: float, weak_counts, seed: int) -> list:
    """One call: NOISE_IMAGES images per number m of weak tokens, each with one strong masked token
    (p = P_STRONG) and m weak ones (p = P_WEAK), M0 = N so that m stay masked (one decoded).
    Returns (the strong token's win rate among the images where exactly one was decoded, that count) per m."""
    ms = torch.tensor(weak_counts).repeat_interleave(NOISE_IMAGES)                   # (B,) m per image
    B, rows = len(ms), torch.arange(len(ms))
    order = torch.rand(B, N).argsort(dim=1)                                           # (B, N) random positions
    masked = order <= ms[:, None]                                                     # (B, N) m + 1 masked
    strong = order.argmin(dim=1)                                                      # (B,) where order == 0
    tokens = torch.randint(0, K, (B, N)).masked_fill(masked, K)                       # (B, N)
    logits = _log_probs(torch.randint(0, K, (B, N)), P_WEAK)                          # (B, N, K+1)
    logits[rows, strong] = _log_probs(torch.randint(0, K, (B,)), P_STRONG)            # (B, K+1)
    settings = settings_for("cubic", choice_temperature=tau)
    new = run(logits, tokens, masked, torch.full((B,), N), ratio, settings, seed=seed)[1]  # (B, N)
    valid = ~(new & ~masked).any(1) & ((masked & ~new).sum(1) == 1)                  # (B,) exactly one decoded
    wins = valid & ~new[rows, strong]                                                 # (B,)
    out = []
    for m in weak_counts:
        v = valid & (ms == m)                                                         # (B,)
        out.append((wins[v].sum().item() / max(v.sum().item(), 1), v.sum().item()))
    return out


def _noise_cases(space: str, scale: str) -> list:
    """(a, b, m, group) per case under a hypothesis: the candidates' confidences in ``space``
    ("log" or "prob") and the noise's scale ("anneal" tau (1 - t/T), "none" tau, "gamma" tau gamma(t/T))."""
    a, b = (math.log(P_STRONG), math.log(P_WEAK)) if space == "log" else (P_STRONG, P_WEAK)
    cases = []
    for ratio, tau, weak_counts in NOISE_RUNS:
        s = tau * {"anneal": 1 - ratio, "none": 1.0, "gamma": gamma("cubic")(ratio)}[scale]
        cases += [(a / s, b / s, m, ratio) for m in weak_counts]
    return cases


_NOISE_HYPOTHESES = [([], "log", "anneal"), (["decode.gumbel_on_probs"], "prob", "anneal"),
                     (["decode.no_annealing"], "log", "none"), (["decode.anneal_with_gamma"], "log", "gamma"),
                     (["decode.gumbel_on_probs", "decode.no_annealing"], "prob", "none"),
                     (["decode.gumbel_on_probs", "decode.anneal_with_gamma"], "prob", "gamma")]


def _probe_noise(run, state):
    if state.get("shared"):
        return []  # no per-token noise: nothing to measure
    observed = [case for i, (r, tau, ms) in enumerate(NOISE_RUNS) for case in _noise_run(run, r, tau, ms, 200 + i)]
    if min(n for _, n in observed) < NOISE_IMAGES // 2:
        return ["the noise was not measured: the step did not decode exactly one of the masked tokens"]
    right = [laws.strong_rate(a, b, m, 1.0) for a, b, m, _ in _noise_cases("log", "anneal")]
    table = "\n".join(f"t/T {r:.3f}, tau {tau:.3f}: strong (p {P_STRONG}) against {m} weak (p {P_WEAK}): "
                      f"the strong one decoded in {rate:.1%} of {n} images, expected {p:.1%}"
                      for (r, tau, m), (rate, n), p in zip([(r, tau, m) for r, tau, ms in NOISE_RUNS for m in ms],
                                                          observed, right))
    table += ("\n(one of the masked tokens is decoded; Gumbel noise: the strong one's odds are "
              "p^(1/s) / (m p_weak^(1/s)))")
    for ids, space, scale in _NOISE_HYPOTHESES:
        cases = _noise_cases(space, scale)
        if laws.chi2(observed, [laws.strong_rate(a, b, m, 1.0) for a, b, m, _ in cases]) < laws.CHI2_LIMIT:
            return ok(table) if not ids else [fail(i, table) for i in ids]
    if laws.best_free_scale(observed, [(a, b, m, g) for a, b, m, g in _noise_cases("log", "none")]) < laws.CHI2_FREE:
        return fail("decode.noise_scale", table)
    return fail("decode.noise_law", table)


def _probe_sampling(run):
    """One masked token per image with p = (0.6, 0.3, 0.1) and t = 2: q = p^(1/2), normalised."""
    B, p = SAMPLES, torch.tensor([0.6, 0.3, 0.1] + [1e-9] * (K - 3))
    masked = torch.zeros(B, N, dtype=torch.bool)
    masked[:, 0] = True
    tokens = torch.randint(0, K, (B, N)).masked_fill(masked, K)
    logits = _log_probs(torch.randint(0, K, (B, N)), 0.9)
    logits[:, 0, :K], logits[:, 0, K] = p.log(), -30.0
    filled = run(logits, tokens, masked, torch.ones(B, dtype=torch.long), 0.5,
                      settings_for(sample_temperature=2.0), seed=300)[2]
    q = p.sqrt() / p.sqrt().sum()
    freq = torch.bincount(filled[:, 0].clamp(0, K), minlength=K + 1)[:3].double() / B
    detail = (f"p = (0.6, 0.3, 0.1), t = 2: expected ids 0, 1, 2 in {short((q[:3] * 100).round())} % of {B} "
              f"samples, got {short((freq * 100).round())} %")
    if all(abs(f - w) <= Z * math.sqrt(w * (1 - w) / B) + 0.02 for f, w in zip(freq.tolist(), q[:3].tolist())):
        return ok(detail)
    return fail("decode.sample_temperature", detail)
