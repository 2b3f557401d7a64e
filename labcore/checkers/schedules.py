"""Checker of exercise 3, the mask schedules gamma of MaskGIT (Chang et al. 2022, section 3.2).

What the student writes::

    def gamma_func(mode):                  # 'linear', 'cosine' or 'square'
        ...                                # -> a function r -> gamma(r), the share still masked

gamma(0) = 1, gamma(1) = 0, non-increasing: linear 1 - r, cosine cos(pi r / 2), square 1 - r^2
(reference: ``labcore.schedules.gamma``). The schedule must take a float (decoding calls it with
t/T and multiplies the result with a tensor: a number must come back) and a tensor of ratios
(labcore's training calls it with one ratio per image and rounds the result with torch: a tensor
of r's shape must come back, r itself unchanged). Types come first, for every mode; then the
values, matched against the classic slips: sin for cos, r^2 for 1 - r^2, (1 - r)^2, the schedule
reversed, the angle of the cosine, another mode's formula. An unknown mode must raise.

``Watch`` tells whether labcore's own code runs inside a student's call (a name built at run
time, which the static walk of ``ownership.reaches`` cannot see); the masking checker uses it too.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from labcore.checkers.fallback import record
from labcore.checkers.ownership import Watch
from labcore.checkers.report import (CheckResult, StudentError, call, describe, fail, ok, run_probes, snapshot,
                                     unchanged, uses_reference)
from labcore.schedules import gamma

MODES = ("linear", "cosine", "square")
POINTS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
UNKNOWN = ("cosinus", "quadratic", "")                     # names no schedule may answer to
REFUSALS = (ValueError, NotImplementedError, LookupError, AssertionError)
TYPES = "a function, a number for a float r, a tensor of r's shape for a tensor r"   # what the first probe checks

# per mode, (mistake id, formula) for the classic slips, most specific first
_SLIPS = {
    "cosine": [("gamma.sin_cos_swap", lambda r: math.sin(math.pi * r / 2)),
               ("gamma.cosine_period", lambda r: math.cos(math.pi * r)),
               ("gamma.cosine_period", lambda r: math.cos(r))],
    "square": [("gamma.r_squared", lambda r: r * r), ("gamma.square_of_linear", lambda r: (1 - r) ** 2)],
}


def _number(value) -> float | None:
    """``value`` as a float when it is one number decoding can use (a Python or NumPy number, a
    0-d tensor); None for anything else (a list, an array, a tensor of one element, None)."""
    if isinstance(value, (bool, np.bool_)) or value is None:
        return None
    if torch.is_tensor(value):
        return float(value) if value.dim() == 0 else None
    if isinstance(value, (int, float, np.number)):
        return float(value)
    return None


def check_gamma(gamma_func, seed: int = 0) -> CheckResult:
    """Check ``gamma_func(mode)`` for the three modes: the types it returns for a float and a
    tensor of ratios, the values at r = 0, 0.1, ..., 1, an unknown mode refused. ``str()`` of the
    result is the report."""
    schedules: dict = {}
    probes = [(f"each mode: {TYPES}", lambda: _probe_types(gamma_func, schedules))]
    probes += [(f"{mode}: the closed form at r = 0 ... 1", lambda mode=mode: _probe_values(mode, schedules))
               for mode in MODES]
    probes += [("a tensor of ratios gives what floats give", lambda: _probe_tensor(schedules)),
               ("an unknown mode is refused (raises)", lambda: _probe_unknown(gamma_func))]
    result = run_probes("check_gamma", probes, "gamma.error", seed, own=gamma_func)
    return record("gamma_func", gamma_func, result)


def _probe_types(gamma_func, schedules):
    """Per mode one finding (type before value): each mode's slip is named, not only the first."""
    found = []
    with Watch("gamma") as watch:
        for mode in MODES:
            found.append(_types_of(gamma_func, mode, schedules))
    if watch.ran:
        return uses_reference("gamma", "your schedule runs labcore's " + ", ".join(dict.fromkeys(watch.ran)))
    return [dataclasses.replace(f, label=f"{mode}: {TYPES}") for mode, f in zip(MODES, found)]


def _types_of(gamma_func, mode, schedules):
    """The finding of one mode's types (labelled by ``_probe_types``)."""
    fn = call(gamma_func, mode)
    if not callable(fn):
        return fail("gamma.not_callable", f"gamma_func({mode!r}) returned {describe(fn)}")
    value = call(fn, 0.5)
    if _number(value) is None:
        return fail("gamma.not_a_number", f"gamma_func({mode!r})(0.5) returned {describe(value)}: decoding "
                                          "multiplies it with a tensor (a float or a 0-d tensor works)")
    for r in (torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64), torch.rand(5), torch.tensor([0.3])):  # (3,) (5,) (1,)
        before = snapshot(r)
        try:
            out = call(fn, r)
        except StudentError as err:
            return fail("gamma.no_tensor_input", f"gamma_func({mode!r})(a tensor {describe(r)}) raised {err}")
        moved = unchanged("gamma.mutates_input", before, (r,), ("r",))
        if not moved.ok:
            return moved
        wrong = _tensor_kind(mode, r, out)
        if wrong is not None:
            return fail(*wrong)
    schedules[mode] = fn
    return ok()


def _tensor_kind(mode, r, out):
    """(mistake id, detail) when ``out`` is not a floating tensor of r's shape, at least r's precision."""
    given = f"gamma_func({mode!r})(a tensor {describe(r)}) returned {describe(out)}"
    if not torch.is_tensor(out):
        return "gamma.not_a_tensor", given + ": labcore's training rounds the shares with torch"
    if out.shape != r.shape:
        return "gamma.tensor_shape", given + f": one share per ratio, shape {tuple(r.shape)}"
    if not out.is_floating_point() or torch.finfo(out.dtype).eps > torch.finfo(r.dtype).eps:
        return "gamma.tensor_dtype", given + f": a floating dtype at least as precise as r's ({r.dtype})"
    return None


def _table(fn, want) -> str:
    got = [_number(call(fn, r)) for r in POINTS]
    return "\n".join(["r:        " + "  ".join(f"{r:6.2f}" for r in POINTS),
                      "expected: " + "  ".join(f"{w:6.3f}" for w in want),
                      "got:      " + "  ".join("  none" if g is None else f"{g:6.3f}" for g in got)])


def _probe_values(mode, schedules):
    fn, ref = schedules[mode], gamma(mode)
    got = [_number(call(fn, r)) for r in POINTS]
    want = [ref(r) for r in POINTS]
    if None not in got and all(abs(g - w) <= 1e-6 for g, w in zip(got, want)):
        return ok()
    detail = _table(fn, want)
    if None in got:
        return fail("gamma.not_a_number", detail)
    slips = _SLIPS.get(mode, []) + [("gamma.wrong_mode", gamma(m)) for m in MODES if m != mode]
    slips += [("gamma.reversed", lambda r: ref(1 - r)), ("gamma.reversed", lambda r: 1 - ref(r))]
    for mistake, formula in slips:
        if all(abs(g - formula(r)) <= 1e-6 for g, r in zip(got, POINTS)):
            return fail(mistake, detail)
    if got[0] < got[-1]:
        return fail("gamma.reversed", detail)
    return fail("gamma.wrong_values", detail)


def _probe_tensor(schedules):
    """The schedule on a tensor of ratios gives what it gives one float at a time (right or wrong:
    wrong values are the value probes' finding, not this one's), in float64 and in float32."""
    for mode, fn in schedules.items():
        for points in (POINTS, (0.6, 0.05, 0.45, 0.3)):                      # the second: unsorted, max below 1
            floats = torch.tensor([_number(call(fn, r)) for r in points], dtype=torch.float64)  # (P,)
            for dtype, tol in ((torch.float64, 1e-6), (torch.float32, 1e-5)):
                r = torch.tensor(points, dtype=dtype)                                          # (P,)
                before = snapshot(r)
                got = call(fn, r)                                                              # (P,)
                moved = unchanged("gamma.mutates_input", before, (r,), ("r",))
                if not moved.ok:
                    return moved
                got = torch.as_tensor(got).double()                                            # (P,)
                if (got - floats).abs().max() > tol:
                    return fail("gamma.no_tensor_input",
                                f"{mode}, r a {dtype} tensor of {list(points)}: expected "
                                f"{[round(v, 4) for v in floats.tolist()]} (what floats give), "
                                f"got {[round(v, 4) for v in got.tolist()]}")
    return ok()


def _probe_unknown(gamma_func):
    for mode in UNKNOWN:
        try:
            fn = gamma_func(mode)
        except REFUSALS:
            continue
        except Exception as err:  # noqa: BLE001 - a slip in the refusal itself (NameError, AttributeError, ...)
            return fail("gamma.unknown_mode", f"gamma_func({mode!r}) raised {StudentError(err)}, a slip "
                                              "rather than a refusal (expected ValueError)")
        what = "a schedule" if callable(fn) else describe(fn)
        return fail("gamma.unknown_mode", f"gamma_func({mode!r}) returned {what} instead of raising")
    return ok()
