"""Checker of exercise 3, the mask schedules gamma of MaskGIT (Chang et al. 2022, section 3.2).

What the student writes::

    def gamma_func(mode):                  # 'linear', 'cosine' or 'square'
        ...                                # -> a function r -> gamma(r), the share still masked

gamma(0) = 1, gamma(1) = 0, non-increasing: linear 1 - r, cosine cos(pi r / 2), square 1 - r^2
(reference: ``labcore.schedules.gamma``). The schedule must take a float (decoding calls it with
t/T) and a tensor of ratios (labcore's training calls it with one ratio per image). Wrong values
are matched against the classic slips: sin for cos, r^2 for 1 - r^2, the schedule reversed, the
angle of the cosine, another mode's formula.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from labcore.checkers.report import CheckResult, StudentError, call, describe, fail, ok, run_probes
from labcore.schedules import gamma

MODES = ("linear", "cosine", "square")
POINTS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)

# per mode, (mistake id, formula) for the classic slips, most specific first
_SLIPS = {
    "cosine": [("gamma.sin_cos_swap", lambda r: math.sin(math.pi * r / 2)),
               ("gamma.cosine_period", lambda r: math.cos(math.pi * r)),
               ("gamma.cosine_period", lambda r: math.cos(r))],
    "square": [("gamma.r_squared", lambda r: r * r)],
}


def _number(value) -> float | None:
    """``value`` as a float when it is one number (float, int, 0-d or 1-element tensor/array)."""
    if isinstance(value, (bool, str)) or value is None:
        return None
    if torch.is_tensor(value) or isinstance(value, np.ndarray):
        return float(value.reshape(-1)[0]) if value.reshape(-1).shape[0] == 1 else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def check_gamma(gamma_func, seed: int = 0) -> CheckResult:
    """Check ``gamma_func(mode)`` for the three modes: values at r = 0, 0.1, ..., 1, a tensor of
    ratios, an unknown mode refused. ``str()`` of the result is the report."""
    schedules: dict = {}
    probes = [("gamma_func(mode) returns a function giving one number", lambda: _probe_types(gamma_func, schedules))]
    probes += [(f"{mode}: the closed form at r = 0 ... 1", lambda mode=mode: _probe_values(mode, schedules))
               for mode in MODES]
    probes += [("takes a tensor of ratios (one per image)", lambda: _probe_tensor(schedules)),
               ("an unknown mode is refused", lambda: _probe_unknown(gamma_func))]
    return run_probes("check_gamma", probes, "gamma.error", seed)


def _probe_types(gamma_func, schedules):
    name = "gamma_func(mode) returns a function giving one number"
    for mode in MODES:
        fn = call(gamma_func, mode)
        if not callable(fn):
            return fail(name, "gamma.not_callable", f"gamma_func({mode!r}) returned {describe(fn)}")
        value = call(fn, 0.5)
        if _number(value) is None:
            return fail(name, "gamma.not_a_number", f"gamma_func({mode!r})(0.5) returned {describe(value)}")
        schedules[mode] = fn
    return ok(name)


def _table(fn, want) -> str:
    got = [_number(call(fn, r)) for r in POINTS]
    return "\n".join(["r:        " + "  ".join(f"{r:6.2f}" for r in POINTS),
                      "expected: " + "  ".join(f"{w:6.3f}" for w in want),
                      "got:      " + "  ".join("  none" if g is None else f"{g:6.3f}" for g in got)])


def _probe_values(mode, schedules):
    name = f"{mode}: the closed form at r = 0 ... 1"
    fn, ref = schedules[mode], gamma(mode)
    got = [_number(call(fn, r)) for r in POINTS]
    want = [ref(r) for r in POINTS]
    if None not in got and all(abs(g - w) <= 1e-6 for g, w in zip(got, want)):
        return ok(name)
    detail = _table(fn, want)
    if None in got:
        return fail(name, "gamma.not_a_number", detail)
    slips = _SLIPS.get(mode, []) + [("gamma.wrong_mode", gamma(m)) for m in MODES if m != mode]
    slips += [("gamma.reversed", lambda r: ref(1 - r)), ("gamma.reversed", lambda r: 1 - ref(r))]
    for mistake, formula in slips:
        if all(abs(g - formula(r)) <= 1e-6 for g, r in zip(got, POINTS)):
            return fail(name, mistake, detail)
    if got[0] < got[-1]:
        return fail(name, "gamma.reversed", detail)
    return fail(name, "gamma.wrong_values", detail)


def _probe_tensor(schedules):
    """The schedule on a tensor of ratios gives what it gives one float at a time (right or wrong:
    wrong values are the value probes' finding, not this one's)."""
    name = "takes a tensor of ratios (one per image)"
    r = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    for mode, fn in schedules.items():
        one_at_a_time = [_number(call(fn, float(x))) for x in r]
        if None in one_at_a_time:
            continue   # not a number for a float: the value probe names it
        try:
            out = call(fn, r.clone())
            values = torch.as_tensor(np.asarray(out, dtype=np.float64)).reshape(-1)
        except (StudentError, TypeError, ValueError, RuntimeError) as err:
            return fail(name, "gamma.no_tensor_input", f"gamma_func({mode!r})(torch.tensor([0.1, 0.5, 0.9])) "
                                                       f"raised {err}")
        if values.shape != (3,):
            return fail(name, "gamma.no_tensor_input", f"gamma_func({mode!r})(a tensor of 3 ratios) returned "
                                                       f"{describe(out)}, expected 3 values")
        want = torch.tensor(one_at_a_time, dtype=torch.float64)
        if (values - want).abs().max() > 1e-6:
            return fail(name, "gamma.no_tensor_input", f"{mode}: on a tensor, expected {want.tolist()} (what it "
                                                       f"gives one float at a time), got {values.tolist()}")
    return ok(name)


def _probe_unknown(gamma_func):
    name = "an unknown mode is refused"
    try:
        fn = gamma_func("cosinus")
    except Exception:  # noqa: BLE001 - any exception refuses the name
        return ok(name)
    if callable(fn):
        return fail(name, "gamma.unknown_mode", "gamma_func('cosinus') returned a schedule instead of raising")
    return ok(name)
