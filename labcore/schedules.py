"""Mask-scheduling functions gamma of MaskGIT (Chang et al. 2022, section 3.2).

gamma(r) is the share of an image's tokens still masked at progress r in [0, 1]: gamma(0) = 1
(all masked), gamma(1) = 0 (none), non-increasing in between. Training draws r ~ U(0, 1) and masks
ceil(gamma(r) * N) tokens; decoding with T steps keeps floor(gamma(t / T) * M0) tokens masked
after step t (clamped: ``labcore.decoding``). linear, cosine and square are the course's three;
cosine is the paper's choice (concave: few tokens are revealed early, when the model knows least).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

_SCHEDULE_FORMULAS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": lambda r: 1 - r,
    "cosine": lambda r: torch.cos(r * math.pi / 2),
    "square": lambda r: 1 - r**2,
    "cubic": lambda r: 1 - r**3,
    "sqrt": lambda r: 1 - torch.sqrt(r),
    "log": lambda r: 1 - torch.log1p((math.e - 1) * r),         # 1 - ln(1 + (e-1) r)
    "exp": lambda r: 1 - torch.expm1(r) / (math.e - 1),         # 1 - (e^r - 1) / (e - 1)
    "arccos": lambda r: torch.arccos(r) / (math.pi / 2),
}
SCHEDULES: tuple[str, ...] = tuple(_SCHEDULE_FORMULAS)
COURSE_SCHEDULES: tuple[str, ...] = ("linear", "cosine", "square")  # the course's three, in its order

GammaFn = Callable[[float | torch.Tensor], float | torch.Tensor]


def gamma(name: str) -> GammaFn:
    """The mask-scheduling function called ``name`` (one of ``SCHEDULES``).

    It takes a float or a tensor r in [0, 1] (values outside are clamped) and returns the same
    kind: a float for a float, a tensor of r's dtype for a floating tensor.
    """
    key = str(name).strip().lower()
    if key not in _SCHEDULE_FORMULAS:
        raise ValueError(f"unknown mask schedule {name!r}; choose one of: {', '.join(SCHEDULES)}")
    formula = _SCHEDULE_FORMULAS[key]

    def schedule(r):
        x = torch.as_tensor(r, dtype=torch.float64).clamp(0, 1)
        # exact end points (cos(pi/2) is 6e-17, not 0), and no rounding outside [0, 1]
        y = torch.where(x <= 0, 1.0, torch.where(x >= 1, 0.0, formula(x))).clamp(0, 1)
        if torch.is_tensor(r):
            return y.to(r.dtype) if r.is_floating_point() else y
        return float(y)

    schedule.__name__ = f"gamma_{key}"
    return schedule


def as_gamma(schedule: str | GammaFn) -> GammaFn:
    return gamma(schedule) if isinstance(schedule, str) else schedule
