"""Checker of exercise 7, the Frechet distance of FID (Heusel et al. 2017).

What the student writes (pytorch-fid's ``calculate_frechet_distance`` signature)::

    def frechet_distance(mu1, sigma1, mu2, sigma2):
        # mu (d,) means, sigma (d, d) covariances (numpy float64) of two Gaussians
        ...  # -> d^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2)), one float

References: the closed form on diagonal covariances (tr sqrt(S1 S2) = sum sqrt(s1_i s2_i)),
labcore's ``fid.frechet_distance`` and pytorch-fid's own function on full covariances. Wrong
values are matched against the classic slips: no square root, an element-wise one, no factor 2,
an unsquared mean term, the square root of the whole distance.

``reference_frechet_distance`` is labcore's distance with the exercise's signature: what notebook
04 runs until the student's passes (``yours_or_reference``).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from labcore.checkers.report import call, describe, fail, ok, run_probes
from labcore.fid import Stats
from labcore.fid import frechet_distance as labcore_frechet


def reference_frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """labcore's Frechet distance (``labcore.fid.frechet_distance``, exact, no complex ``sqrtm``)
    with the exercise's signature: what notebook 04 runs when the student's has not passed
    (``yours_or_reference``). At least 0 (identical Gaussians give -1e-14 by rounding)."""
    return max(0.0, labcore_frechet(Stats(mu1, sigma1, 0), Stats(mu2, sigma2, 0), note_few=False))


def _slips(mu1, s1, mu2, s2) -> list[tuple[str, float]]:
    """(mistake id, the value that mistake gives) on one case."""
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        covmean = scipy.linalg.sqrtm(s1 @ s2).real
        elementwise = np.sqrt(np.abs(s1 @ s2))
    trace = np.trace(s1) + np.trace(s2)
    right_trace = trace - 2 * np.trace(covmean)
    return [("frechet.no_sqrt", diff @ diff + trace - 2 * np.trace(s1 @ s2)),
            ("frechet.elementwise_sqrt", diff @ diff + trace - 2 * np.trace(elementwise)),
            ("frechet.elementwise_sqrt", diff @ diff + trace - 2 * np.sqrt(np.abs(np.diag(s1) * np.diag(s2))).sum()),
            ("frechet.missing_factor_2", diff @ diff + trace - np.trace(covmean)),
            ("frechet.mean_not_squared", np.sqrt(diff @ diff) + right_trace),
            ("frechet.mean_not_squared", np.abs(diff).sum() + right_trace),
            ("frechet.mean_not_squared", diff.sum() + right_trace),
            ("frechet.sqrt_of_distance", np.sqrt(max(diff @ diff + right_trace, 0.0)))]


def _singular(seed: int, n: int = 3, d: int = 6) -> tuple:
    """(mu1, sigma1, mu2, sigma2) of two sets of n < d samples: singular covariances, as FID's 2048
    features of fewer than 2048 images. The zero eigenvalues of S1 S2 come out slightly negative
    by rounding, so ``scipy.linalg.sqrtm`` returns a complex matrix for most such cases (SciPy 1.16+
    returns a real one when it can: the type probe tries three)."""
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, d)), rng.normal(size=(n, d)) + 0.5
    return x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)


def _cases() -> list[tuple[str, tuple]]:
    """(name, (mu1, sigma1, mu2, sigma2)), d = 6: covariances of 3 samples (singular), diagonal,
    identical, full."""
    rng = np.random.default_rng(0)
    d = 6
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d) * 0.5 + 1.0
    diag1, diag2 = np.diag(rng.uniform(0.5, 2.0, d)), np.diag(rng.uniform(0.2, 3.0, d))
    a, b = rng.normal(size=(d, 2 * d)), rng.normal(size=(d, 2 * d)) + 0.3
    full1 = a @ a.T / (2 * d) + 0.5 * np.ones((d, d))   # positive entries: an element-wise sqrt stays finite
    full2 = b @ b.T / (2 * d) + 0.2 * np.ones((d, d))
    return [("covariances of 3 samples (singular)", _singular(0)), ("diagonal covariances", (mu1, diag1, mu2, diag2)),
            ("identical Gaussians", (mu1, full1, mu1, full1)), ("full covariances", (mu1, full1, mu2, full2)),
            ("full, swapped", (mu2, full2, mu1, full1))]


def check_frechet_distance(frechet_distance, seed: int = 0):
    """Check ``frechet_distance(mu1, sigma1, mu2, sigma2)`` on small Gaussians (d = 6). ``str()``
    of the result is the report."""
    return run_probes("check_frechet_distance", [
        ("returns one real number", lambda: _probe_type(frechet_distance)),
        *[(name, lambda name=name, case=case: _probe_case(frechet_distance, name, case)) for name, case in _cases()],
    ], "frechet.error", seed)


def _value(out) -> float | None:
    """``out`` as a float when it is one real number (float, numpy scalar, 0-d array or tensor)."""
    if _is_complex(out):
        return None
    try:
        arr = np.asarray(out.detach().cpu() if hasattr(out, "detach") else out, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return float(arr.reshape(-1)[0]) if arr.size == 1 else None


def _is_complex(out) -> bool:
    if callable(getattr(out, "is_complex", None)):              # a torch tensor
        return bool(out.is_complex())
    return isinstance(out, complex) or np.iscomplexobj(out)


def _probe_type(frechet_distance):
    name = "returns one real number"
    for seed in (0, 1, 2):   # singular covariances: sqrtm's result is complex for most of them
        mu1, s1, mu2, s2 = _singular(seed)
        out = call(frechet_distance, mu1.copy(), s1.copy(), mu2.copy(), s2.copy())
        case = f"covariances of 3 samples in d = 6 (singular, seed {seed}): "
        if _is_complex(out):
            return fail(name, "frechet.complex_result", f"{case}got {describe(out)}: {out!r}")
        if _value(out) is None:
            return fail(name, "frechet.not_a_number", f"{case}got {describe(out)}")
    return ok(name)


def _probe_case(frechet_distance, name, case):
    mu1, s1, mu2, s2 = case
    want = reference_frechet_distance(mu1, s1, mu2, s2)
    got = _value(call(frechet_distance, mu1.copy(), s1.copy(), mu2.copy(), s2.copy()))
    detail = f"d = {len(mu1)}: expected {want:.6f}, got {got if got is None else f'{got:.6f}'}"
    if got is not None and abs(got - want) <= 1e-5 * max(1.0, abs(want)):
        return ok(name)
    if got is not None:
        for mistake, value in _slips(mu1, s1, mu2, s2):
            if np.isfinite(value) and abs(got - value) <= 1e-5 * max(1.0, abs(value)) and abs(value - want) > 1e-6:
                return fail(name, mistake, detail)
        if abs(got - want) <= 1e-3 * max(1.0, abs(want)):
            detail += ("\nclose, but not within 1e-5: compute in float64 (in float32 the square roots of the "
                       "near-zero eigenvalues of singular covariances cost ~1e-4)")
    return fail(name, "frechet.wrong_value", detail)
