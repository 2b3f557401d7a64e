"""What ``check_decode_step`` compares a student's step with: the counts each count mistake
gives, the law of the choice noise, and labcore's own decoding code watched while the step runs.

Counts: n = floor(gamma(t/T) * M0), clamped to [1, remaining - 1], 0 at t/T = 1. Each count
mistake is the same rule with ONE part written otherwise (``count_candidates``); the checker
names the first candidate that gives every count it saw, over several schedules.

Noise law: k masked tokens, one strong (log p = a) and m = k - 1 weak ones (log p = b), and the
step decodes exactly one of them. With confidences c_i = log p_i + s * g_i, g_i standard Gumbel,
the strong one is decoded with probability w_a / (w_a + m * w_b), w = exp(log p / s) (the
Gumbel-max trick). Gumbel noise of the wrong sign, or Gaussian noise of any scale, make other
rates: its odds are not proportional to 1 / m (two tokens cannot tell them apart, 2 and 16 can).
"""

from __future__ import annotations

import math

import torch

from labcore.decoding import masked_count_after_step
from labcore.schedules import gamma

FIXED_SCHEDULES = ("linear", "cosine", "square", "cubic")   # a hard-coded schedule is one of these
CHI2_LIMIT = 30.0     # chi-square (4 cases, 1 df each) a right law stays under: p about 5e-6
CHI2_FREE = 25.0      # the same with one free scale per ratio (2 df): p about 4e-6


# ----------------------------------------------------------------------------- the counts

def _rule(ratio, m0, remaining, g, rounding=torch.floor, r=None, bounds="both", last_zero=True):
    """n per image, as the rule computes it with one part changed (m0 may be one number for all)."""
    r = ratio if r is None else r
    share = torch.as_tensor(g(r), dtype=torch.float64)                            # () gamma at r
    n = rounding(share * torch.as_tensor(m0).double()).long().expand_as(remaining)  # (B,)
    if bounds == "both":
        n = torch.clamp(torch.minimum(n, remaining - 1), min=1)                     # (B,)
    elif bounds == "upper":
        n = torch.minimum(n, remaining - 1)                                         # (B,)
    elif bounds == "lower":
        n = torch.clamp(n, min=1)                                                   # (B,)
    elif bounds == "remaining":
        n = torch.clamp(torch.minimum(n, remaining), min=1)                         # (B,)
    if last_zero and ratio >= 1:
        n = torch.zeros_like(n)                                                     # (B,)
    return torch.where(remaining > 0, n, torch.zeros_like(n))                       # (B,)


def count_candidates(ratio: float, m0, remaining, g, n_tokens: int, total_iter: int) -> list:
    """(mistake id or None, the counts it gives) for one step; the right rule first."""
    half_up = lambda x: torch.floor(x + 0.5)                                       # noqa: E731
    T = total_iter
    rules = [(None, {}), ("decode.count_from_current", dict(m0=remaining)),
             ("decode.count_ceil", dict(rounding=torch.ceil)), ("decode.count_round", dict(rounding=torch.round)),
             ("decode.count_round", dict(rounding=half_up)), ("decode.count_from_n", dict(m0=n_tokens)),
             ("decode.m0_not_per_image", dict(m0=m0.max())), ("decode.m0_not_per_image", dict(m0=m0[0])),
             ("decode.m0_not_per_image", dict(m0=m0.double().mean())),
             ("decode.count_batch_sum", dict(m0=m0.sum())), ("decode.count_batch_sum", dict(m0=remaining.sum())),
             ("decode.count_ratio", dict(r=min(ratio * T / (T - 1), 1.0))),
             ("decode.count_ratio", dict(r=max(ratio - 1 / T, 0.0))),
             ("decode.count_ratio", dict(r=min(ratio + 1 / T, 1.0))),
             ("decode.count_ratio", dict(r=1 - ratio)),
             ("decode.count_bounds", dict(bounds="none", last_zero=False)),
             ("decode.count_bounds", dict(bounds="none")),
             ("decode.count_bounds", dict(last_zero=False)), ("decode.count_bounds", dict(bounds="upper")),
             ("decode.count_bounds", dict(bounds="lower")), ("decode.count_bounds", dict(bounds="remaining"))]
    out = []
    for mistake, change in rules:
        change.setdefault("m0", m0)
        out.append((mistake, _rule(ratio, remaining=remaining, g=g, **change)))
    return out


def fixed_schedule_counts(ratio: float, m0, remaining) -> list:
    """(schedule name, the right rule's counts with that schedule), whatever settings say."""
    return [(name, masked_count_after_step(ratio, m0, remaining, gamma(name))) for name in FIXED_SCHEDULES]


# ----------------------------------------------------------------------------- the noise law

def strong_rate(a: float, b: float, m: int, s: float) -> float:
    """P(the strong candidate is decoded) with confidences x + s * Gumbel: a strong, m weak at b."""
    if s <= 0:
        return 1.0 if a > b else 0.0
    return 1 / (1 + m * math.exp((b - a) / s))


def chi2(observed, predicted) -> float:
    """sum over cases of n (rate - p)^2 / (p (1 - p)): observed (rate, n) pairs, predicted p."""
    return sum(n * (rate - p) ** 2 / max(p * (1 - p), 1e-4) for (rate, n), p in zip(observed, predicted))


def best_free_scale(observed, cases) -> float:
    """The smallest chi-square of a Gumbel law with ONE free scale per group of cases (a ratio):
    the noise is Gumbel, only its scale is off. cases: (a, b, m, group)."""
    total = 0.0
    for group in sorted({c[3] for c in cases}):
        idx = [i for i, c in enumerate(cases) if c[3] == group]
        total += min(chi2([observed[i] for i in idx], [strong_rate(*cases[i][:3], s / 100) for i in idx])
                     for s in range(2, 600, 2))
    return total


