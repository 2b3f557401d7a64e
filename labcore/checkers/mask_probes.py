"""``check_mask_tokens`` and its probes, in the order they run (the fixed cases and labcore's
reference: ``labcore.checkers.masking``); ``check_masking``, both halves of exercise 4 at once.

Each takes the checker's ``state`` (the tokens, the first result, what every call saw) and
returns findings. Counts are judged per image against ceil(gamma(r) N), clamped to [1, N], with
the r each image gave the recording schedule; a wrong count is named by the rule it follows
(floor or round, N from the batch, the ratio itself instead of gamma(r), ...).
"""

from __future__ import annotations

import math

import torch

from labcore.checkers.fallback import record
from labcore.checkers.masked_loss import check_masked_loss
from labcore.checkers.masking import SHARE, B, K, N, Schedule, _masked, _run, constant
from labcore.checkers.report import CheckResult, check_pair, describe, fail, ok, run_probes, short, uses_reference

COUNT = math.ceil(SHARE * N)                                # 12 of 37


def check_masking(mask_tokens=None, masked_loss=None, seed: int = 0) -> CheckResult:
    """Check ``mask_tokens`` and/or ``masked_loss`` (give either or both): ``check_mask_tokens``
    and ``check_masked_loss`` in one report. ``str()`` of the result is the report."""
    return check_pair("check_masking", ("mask_tokens", mask_tokens, check_mask_tokens),
                      ("masked_loss", masked_loss, check_masked_loss), seed)


def check_mask_tokens(mask_tokens, seed: int = 0) -> CheckResult:
    """Check ``mask_tokens(tokens, mask_token_id, gamma_fn, generator=None)``; ``str()`` of the
    result is the report."""
    state: dict = {}

    def setup():
        state["tokens"] = torch.randint(0, K, (B, N))                              # (B, N)

    probes = [("mask_tokens returns (inputs, masked): (B, N) long, (B, N) bool", lambda: shape(mask_tokens, state)),
              ("inputs hold the mask id K exactly where masked", lambda: consistent(state)),
              (f"gamma fixed at {SHARE}: ceil(gamma * N) masked per image", lambda: count(state)),
              ("gamma fixed at 0 and 1: at least 1, at most N", lambda: ends(mask_tokens, state, seed)),
              ("each image draws its own r ~ U(0, 1) and masks ceil(gamma_fn(r) * N)",
               lambda: ratios(mask_tokens, state, seed)),
              ("each image masks its own positions, uniformly at random",
               lambda: positions(mask_tokens, state, seed)),
              ("every random number comes from the generator", lambda: generator(mask_tokens, state, seed)),
              ("the caller's tokens are left unchanged (every call)", lambda: in_place(state))]
    result = run_probes("check_mask_tokens", probes, "masking.error", seed, setup, own=mask_tokens)
    return record("mask_tokens", mask_tokens, result)


def shape(mask_tokens, state):
    state["constant"] = constant(SHARE)
    out = _run(mask_tokens, state, state["constant"], 1)
    if state["reached"]:
        return uses_reference("masking", "your mask_tokens runs labcore's " + ", ".join(sorted(set(state["reached"]))))
    state["out"] = out
    if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(torch.is_tensor(t) for t in out)):
        return fail("masking.shape", f"expected a pair of tensors (inputs, masked), got {describe(out)}"
                    + ("" if not isinstance(out, (tuple, list)) else f" holding {', '.join(map(describe, out))}"))
    inputs, masked = out
    want = f"tokens ({B}, {N}) int64: expected inputs ({B}, {N}) int64 and masked ({B}, {N}) bool, got " \
           f"{describe(inputs)} and {describe(masked)}"
    if inputs.dtype == torch.bool and masked.dtype == torch.long and inputs.shape == masked.shape == (B, N):
        return fail("masking.outputs_swapped", want)
    if inputs.shape != (B, N) or masked.shape != (B, N) or inputs.dtype != torch.long or masked.dtype != torch.bool:
        return fail("masking.shape", want)
    return ok()


def consistent(state):
    tokens, (inputs, masked) = state["tokens"], state["out"]
    at_k, changed = inputs == K, inputs != tokens                                    # (B, N), (B, N)
    detail = (f"image 0, K = {K}: tokens {short(tokens[0])}\n  inputs {short(inputs[0])}\n"
              f"  masked {short(masked[0].long())}")
    if torch.equal(at_k, masked) and not changed[~masked].any():
        return ok()
    if torch.equal(at_k, ~masked) or (torch.equal(at_k, masked) and int(masked.sum(1)[0]) == N - COUNT):
        return fail("masking.inverted", detail)
    if not at_k.any() and changed.any() and bool((inputs[masked] < K).all()):
        return fail("masking.mask_id_collides", detail)
    return fail("masking.inconsistent", detail)


def _rule(counts: torch.Tensor, shares: torch.Tensor, ratios: torch.Tensor | None = None) -> tuple[str, str] | None:
    """(mistake id, the rule the counts follow) when they are not ceil(shares * N) in [1, N]."""
    def same(rule):
        return bool((counts == rule.clamp(0, N)).all())

    low, high = torch.ceil(shares * N - 1e-4).clamp(1, N), torch.ceil(shares * N + 1e-4).clamp(1, N)
    if bool(((counts >= low) & (counts <= high)).all()):
        return None
    rules = [("masking.count_min_one", "ceil(gamma(r) * N) without the 'at least 1'", torch.ceil(shares * N)),
             ("masking.count_rounding", "floor(gamma(r) * N)", torch.floor(shares * N).clamp(min=1)),
             ("masking.count_rounding", "floor(gamma(r) * N)", torch.floor(shares * N)),
             ("masking.count_rounding", "round(gamma(r) * N)", torch.round(shares * N).clamp(min=1)),
             ("masking.count_from_batch", f"ceil(gamma(r) * B), N taken as the batch size {B}",
              torch.ceil(shares * B).clamp(min=1)),
             ("masking.inverted", "N - ceil(gamma(r) * N)", N - torch.ceil(shares * N).clamp(1, N)),
             ("masking.count", "ceil(gamma(r) * N) + 1", torch.ceil(shares * N).clamp(1, N) + 1)]
    if ratios is not None:
        rules += [("masking.ignores_gamma", "ceil(r * N), the ratio itself", torch.ceil(ratios * N).clamp(min=1)),
                  ("masking.ignores_gamma", "ceil((1 - r) * N)", torch.ceil((1 - ratios) * N).clamp(min=1)),
                  ("masking.ignores_gamma", "ceil(cos(pi r / 2) * N), a fixed cosine",
                   torch.ceil(torch.cos(ratios * math.pi / 2) * N).clamp(min=1)),
                  ("masking.ignores_gamma", "ceil((1 - r^2) * N), a fixed square",
                   torch.ceil((1 - ratios ** 2) * N).clamp(min=1))]
    return next(((i, text) for i, text, rule in rules if same(rule.long())), ("masking.count", "another rule"))


def count(state):
    counts = _masked(state["out"]).sum(1).double()                                   # (B,)
    found = _rule(counts, torch.full((B,), SHARE, dtype=torch.float64))
    if found is None:
        return ok()
    if not state["constant"].calls:
        found = ("masking.ignores_gamma", "a rule that never calls gamma_fn")
    return fail(found[0], f"N = {N}, gamma_fn(r) = {SHARE} for every r: expected {COUNT} masked per image "
                          f"(ceil({SHARE} * {N})), got {short(counts.long(), 12)}: looks like {found[1]}")


def ends(mask_tokens, state, seed):
    for value, want in ((0.0, 1), (1.0, N)):
        schedule = constant(value)
        counts = _masked(_run(mask_tokens, state, schedule, seed + 5)).sum(1)      # (B,)
        if not bool((counts == want).all()):
            mistake = "masking.ignores_gamma" if not schedule.calls else \
                "masking.count_min_one" if value == 0 and bool((counts == 0).any()) else \
                "masking.count_from_batch" if value == 1 and bool((counts == B).all()) else "masking.count"
            return fail(mistake, f"gamma_fn(r) = {value:g} for every r: expected {want} masked per image, "
                                 f"got {short(counts, 12)}")
    return ok()


def ratios(mask_tokens, state, seed):
    """Two recording schedules (linear and square): the count of each image against its own r."""
    drawn = []
    for i, (formula_name, formula) in enumerate((("1 - r", lambda x: 1 - x), ("1 - r^2", lambda x: 1 - x * x))):
        schedule = Schedule(formula, formula_name)
        counts = _masked(_run(mask_tokens, state, schedule, seed + 2 + i)).sum(1).double()     # (B,)
        r, shares = schedule.seen()                                                 # (M,), (M,)
        where = f"gamma_fn(r) = {formula_name}: "
        if r.numel() == 0:
            return fail("masking.ignores_gamma", where + f"gamma_fn was never called; masked per image "
                                                        f"{short(counts.long(), 12)}")
        if r.numel() == 1 or bool((r == r[0]).all()):
            return fail("masking.ratio_per_batch", where + f"gamma_fn got one ratio for all {B} images "
                                                           f"({r.numel()} value(s), all {float(r[0]):.3f})")
        if r.numel() % B:
            return fail("masking.count", where + f"gamma_fn got {r.numel()} ratios for {B} images: one each")
        chunks = [(r[i:i + B], shares[i:i + B]) for i in range(r.numel() - B, -1, -B)]  # each call's B, last first
        r, shares = next((c for c in chunks if _rule(counts, c[1], c[0]) is None), chunks[0])
        if r.min() < 0 or r.max() > 1:
            return fail("masking.ratio_law", where + f"ratios outside [0, 1]: {short(r, 8)}")
        found = _rule(counts, shares, r)
        if found is not None:
            want = torch.ceil(shares * N).clamp(1, N).long()
            return fail(found[0], where + f"r per image {short(r, 6)}\n  expected ceil(gamma(r) * {N}) "
                                         f"{short(want, 12)}\n  got {short(counts.long(), 12)}: looks like "
                                         f"{found[1]}")
        drawn.append(r)
    r = torch.cat(drawn).sort().values                                              # (2B,) sorted ratios
    ks = float((r - torch.arange(1, len(r) + 1, dtype=torch.float64) / len(r)).abs().max())  # Kolmogorov-Smirnov
    if ks > 0.3:
        return fail("masking.ratio_law", f"{len(r)} ratios given to gamma_fn: {short(r, 10)} are not "
                                         f"spread like U(0, 1) (largest gap to the uniform CDF {ks:.2f})")
    return ok()


def positions(mask_tokens, state, seed):
    first = _masked(state["out"])                                                   # (B, N)
    again = _masked(_run(mask_tokens, state, constant(SHARE), seed + 3))            # (B, N)
    if (first == first[0]).all():
        return fail("masking.same_positions", f"all {B} images mask positions {short(first[0].nonzero())}")
    if torch.equal(first, again):
        return fail("masking.same_positions", "two calls with other generator seeds masked the same positions")
    rows = torch.cat([first, again, _masked(_run(mask_tokens, state, constant(SHARE), seed + 4))])  # (3B, N)
    per_position = rows.sum(0).double()                                             # (N,)
    mean = per_position.mean()
    chi2 = float(((per_position - mean) ** 2 / mean.clamp(min=1e-9)).sum())
    one_block = [bool(((row[1:].long() - row[:-1].long()) == 1).sum() <= 1) for row in rows]  # one run of True
    if chi2 > (N - 1) + 6 * math.sqrt(2 * (N - 1)) or sum(one_block) > len(rows) / 2:
        return fail("masking.positions_not_uniform",
                    f"masked per position over {len(rows)} images (expect about {float(mean):.1f} each): "
                    f"{short(per_position.long(), N)}" + (f"; {sum(one_block)} images mask one block" if any(one_block)
                                                    else ""))
    return ok()


def generator(mask_tokens, state, seed):
    """The same seed twice: the same mask; another seed: another. generator=None: torch's global
    stream (the same global seed, the same mask; two calls in a row, two masks)."""
    if state.get("no_generator"):
        return fail("masking.ignores_generator", "mask_tokens takes no generator: labcore's training passes "
                                                 "one (a resumed run must draw the masks it would have drawn)")
    cases = []
    a, b = (_masked(_run(mask_tokens, state, constant(SHARE), seed + 6)) for _ in range(2))
    cases.append(("the same generator seed twice gave two different masks", not torch.equal(a, b)))
    c = _masked(_run(mask_tokens, state, constant(SHARE), seed + 7))
    cases.append(("two generator seeds gave the same mask", torch.equal(a, c)))
    torch.manual_seed(seed + 8)
    d, e = (_masked(_run(mask_tokens, state, constant(SHARE), None)) for _ in range(2))
    torch.manual_seed(seed + 8)
    f = _masked(_run(mask_tokens, state, constant(SHARE), None))
    cases.append(("generator=None: two calls in a row gave the same mask", torch.equal(d, e)))
    cases.append(("generator=None: the same torch.manual_seed gave two different masks (not torch's global "
                  "stream)", not torch.equal(d, f)))
    wrong = [text for text, bad in cases if bad]
    return fail("masking.ignores_generator", "; ".join(wrong)) if wrong else ok()


def in_place(state):
    return fail("masking.in_place", state["moved"]) if "moved" in state else ok()
