"""Checker of exercise 7, the Frechet distance of FID (Heusel et al. 2017).

What the student writes (pytorch-fid's ``calculate_frechet_distance`` signature)::

    def frechet_distance(mu1, sigma1, mu2, sigma2):
        # mu (d,) means, sigma (d, d) covariances (numpy float64) of two Gaussians
        ...  # -> d^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2)), one real number

References: labcore's ``fid.frechet_distance`` (exact, no complex ``sqrtm``) on diagonal, full and
singular covariances (fewer samples than dimensions, as FID's 2048 features of fewer than 2048
images: there ``sqrtm`` is complex and its modulus is far from its real part). Wrong values are
matched against the classic slips: no square root, an element-wise one, the modulus of the complex
one, an element-wise product, no factor 2, a missing or unsquared mean term, the square root of the
whole distance. The result must be one real number that ``float()`` takes (a Python float, a NumPy
scalar, a 0-d array or tensor): labcore's notebook formats it and subtracts it from its own.

``reference_frechet_distance`` is labcore's distance with the exercise's signature: what notebook
04 runs until the student's passes (``yours_or_reference``).
"""

from __future__ import annotations

import dataclasses
import numbers
import warnings

import numpy as np
import scipy.linalg
import torch

from labcore.checkers.fallback import record
from labcore.checkers.report import CheckResult, call, describe, fail, ok, run_probes, snapshot, unchanged
from labcore.fid import Stats, frechet_distance as labcore_frechet

NAMES = ("mu1", "sigma1", "mu2", "sigma2")
_LEAVES = "leaves mu1, sigma1, mu2, sigma2 as they were"


def reference_frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """labcore's Frechet distance (``labcore.fid.frechet_distance``, exact, no complex ``sqrtm``)
    with the exercise's signature: what notebook 04 runs when the student's has not passed
    (``yours_or_reference``). At least 0 (identical Gaussians give -1e-14 by rounding)."""
    return max(0.0, labcore_frechet(Stats(mu1, sigma1, 0), Stats(mu2, sigma2, 0), note_few=False))


def _sqrtm(a: np.ndarray) -> np.ndarray:
    """scipy's matrix square root, complex as it comes (its "singular matrix" warnings hushed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return scipy.linalg.sqrtm(a)


def _slips(mu1, s1, mu2, s2) -> list[tuple[str, float]]:
    """(mistake id, the value that mistake gives) on one case."""
    diff = mu1 - mu2                                                      # (d,)
    mean = diff @ diff
    covmean = _sqrtm(s1 @ s2)                                             # (d, d), complex when singular
    with np.errstate(invalid="ignore"):
        elementwise = np.sqrt(np.abs(s1 @ s2))                            # (d, d)
    trace = np.trace(s1) + np.trace(s2)
    right_trace = trace - 2 * np.trace(covmean.real)
    roots = (_sqrtm(s1) @ _sqrtm(s2)).real                                # (d, d)
    return [("frechet.no_sqrt", mean + trace - 2 * np.trace(s1 @ s2)),
            ("frechet.elementwise_sqrt", mean + trace - 2 * np.trace(elementwise)),
            ("frechet.sqrt_of_trace", mean + trace - 2 * np.sqrt(np.trace(s1 @ s2))),
            ("frechet.elementwise_sqrt", mean + trace - 2 * np.sqrt(np.abs(np.diag(s1) * np.diag(s2))).sum()),
            ("frechet.abs_of_complex", mean + trace - 2 * np.trace(np.abs(covmean))),
            ("frechet.elementwise_product", mean + trace - 2 * np.trace(_sqrtm(s1 * s2).real)),
            ("frechet.product_of_roots", mean + trace - 2 * np.trace(roots)),
            ("frechet.missing_factor_2", mean + trace - np.trace(covmean.real)),
            ("frechet.sum_not_trace", mean + trace - 2 * covmean.real.sum()),
            ("frechet.sum_not_trace", mean + s1.sum() + s2.sum() - 2 * covmean.real.sum()),
            ("frechet.missing_mean_term", right_trace),
            ("frechet.mean_not_squared", np.sqrt(mean) + right_trace),
            ("frechet.mean_not_squared", np.abs(diff).sum() + right_trace),
            ("frechet.mean_not_squared", diff.sum() + right_trace),
            ("frechet.sqrt_of_distance", np.sqrt(max(mean + right_trace, 0.0)))]


def _singular(seed: int, n: int = 3, d: int = 6) -> tuple:
    """(mu1, sigma1, mu2, sigma2) of two sets of n < d samples: singular covariances, as FID's 2048
    features of fewer than 2048 images. The zero eigenvalues of S1 S2 come out slightly negative
    by rounding, so ``scipy.linalg.sqrtm`` returns a complex matrix for most such cases."""
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, d)), rng.normal(size=(n, d)) + 0.5                # (n, d) samples
    return x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)


def _cases() -> list[tuple[str, tuple]]:
    """(label, (mu1, sigma1, mu2, sigma2)): three singular pairs (where the modulus of the complex
    sqrtm is 44 %, 51 % and 19 % off, and float32 costs ~1e-3), diagonal, identical, full, swapped."""
    rng = np.random.default_rng(0)
    d = 6
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d) * 0.5 + 1.0                 # (d,), (d,)
    diag1, diag2 = np.diag(rng.uniform(0.5, 2.0, d)), np.diag(rng.uniform(0.2, 3.0, d))  # (d, d)
    a, b = rng.normal(size=(d, 2 * d)), rng.normal(size=(d, 2 * d)) + 0.3        # (d, 2d)
    full1 = a @ a.T / (2 * d) + 0.5 * np.ones((d, d))   # (d, d) positive entries: an element-wise sqrt stays finite
    full2 = b @ b.T / (2 * d) + 0.2 * np.ones((d, d))   # (d, d)
    return [("covariances of 3 samples in d = 6 (singular)", _singular(2)),
            ("covariances of 2 samples in d = 6 (singular)", _singular(3, n=2)),
            ("covariances of 4 samples in d = 10 (singular)", _singular(1, n=4, d=10)),
            ("diagonal covariances", (mu1, diag1, mu2, diag2)),
            ("identical Gaussians", (mu1, full1, mu1, full1)), ("full covariances", (mu1, full1, mu2, full2)),
            ("full, swapped", (mu2, full2, mu1, full1))]


def check_frechet_distance(frechet_distance, seed: int = 0) -> CheckResult:
    """Check ``frechet_distance(mu1, sigma1, mu2, sigma2)`` on small Gaussians (d = 6 and 10).
    ``str()`` of the result is the report."""
    state: dict = {"results": []}
    result = run_probes("check_frechet_distance", [
        ("returns one real number", lambda: _probe_type(frechet_distance, state)),
        *[(label, lambda case=case: _probe_case(frechet_distance, case, state)) for label, case in _cases()],
        ("keeps the inputs' float64 precision", lambda: _probe_precision(state)),
        (_LEAVES, lambda: state.get("moved") or ok()),
    ], "frechet.error", seed, own=frechet_distance)
    return record("frechet_distance", frechet_distance, result)


def _run(frechet_distance, case: tuple, state: dict):
    """The student's distance on copies of ``case``; the first change it made to one of them is
    kept in ``state["moved"]`` (a ``frechet.mutates_input`` finding, labelled as the last probe that
    reports it: the first probe reports it too when it fails, the others are then skipped)."""
    args = tuple(a.copy() for a in case)
    before = snapshot(*args)
    out = call(frechet_distance, *args)
    state["results"].append(out)
    moved = unchanged("frechet.mutates_input", before, args, NAMES)
    if not moved.ok:
        state.setdefault("moved", dataclasses.replace(moved, label=_LEAVES))
    return out


def _real_number(out) -> float | None:
    """``out`` as a float when it is ONE real number ``float()`` takes: a Python or NumPy int or
    float, a 0-d real array or tensor. None for containers (even of one element), complex
    numbers, booleans, strings and None."""
    if isinstance(out, (bool, np.bool_, str, bytes)):
        return None
    if isinstance(out, numbers.Real):
        return float(out)
    if isinstance(out, np.ndarray) and out.ndim == 0 and out.dtype.kind in "iuf":
        return float(out)
    if torch.is_tensor(out) and out.dim() == 0 and (out.is_floating_point() or out.dtype in (torch.int32, torch.int64)):
        return float(out)
    return None


def _is_complex(out) -> bool:
    if torch.is_tensor(out):
        return bool(out.is_complex())
    return isinstance(out, complex) or np.iscomplexobj(out)


def _probe_type(frechet_distance, state):
    for seed in (0, 1, 2):   # singular covariances: sqrtm's result is complex for all three
        out = _run(frechet_distance, _singular(seed), state)
        case = f"covariances of 3 samples in d = 6 (singular, seed {seed}): "
        moved = [m for m in [state.get("moved")] if m]                # reported here too: the rest is skipped
        if _is_complex(out):
            return [fail("frechet.complex_result", f"{case}got {describe(out)}: {out!r}"), *moved]
        if _real_number(out) is None:
            return [fail("frechet.not_a_number", f"{case}got {describe(out)}: one real number is needed "
                         "(float() of it), as labcore formats and subtracts it"), *moved]
    return ok()


def _probe_case(frechet_distance, case, state):
    mu1, s1, mu2, s2 = case
    want = reference_frechet_distance(mu1, s1, mu2, s2)
    out = _run(frechet_distance, case, state)
    got = _real_number(out)
    if got is None:
        return fail("frechet.complex_result" if _is_complex(out) else "frechet.not_a_number",
                    f"d = {len(mu1)}: got {describe(out)}")
    detail = f"d = {len(mu1)}: expected {want:.6f}, got {got:.6f}"
    if abs(got - want) <= 1e-5 * max(1.0, abs(want)):
        return ok()
    for mistake, value in _slips(mu1, s1, mu2, s2):
        if np.isfinite(value) and abs(got - value) <= 1e-5 * max(1.0, abs(value)) and abs(value - want) > 1e-4:
            return fail(mistake, detail)
    if abs(got - want) <= 1e-3 * max(1.0, abs(want)) and not state.get("hinted"):
        state["hinted"] = True                                         # the hint once, on the first close case
        detail += ("\nclose, but not within 1e-5: compute in float64 (in float32 the square roots of the "
                   "near-zero eigenvalues of singular covariances cost ~1e-3)")
    return fail("frechet.wrong_value", detail)


def _probe_precision(state):
    """Every result in float64 (or a Python number): a float32 one rounds FID's 2048 x 2048 sums."""
    for out in state["results"]:
        dtype = getattr(out, "dtype", None)
        if dtype is not None and str(dtype).replace("torch.", "") in ("float32", "float16", "bfloat16"):
            return fail("frechet.low_precision", f"got {describe(out)} from float64 inputs")
    return ok()
