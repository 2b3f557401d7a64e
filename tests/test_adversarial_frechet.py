"""Adversarial suite of ``check_frechet_distance`` (exercise 7), written from notebook 04's signature
and docstring only, by someone trying to fool the checker:

    def frechet_distance(mu1, sigma1, mu2, sigma2):
        '''The Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), as one Python float.
        mu1, mu2 (d,) means, numpy float64; sigma1, sigma2 (d, d) covariances, numpy float64'''

Containers, strings, None and complex numbers for the one real number; float32 work; every classic
slip of the formula (no root, element-wise root, the modulus of the complex root, an element-wise
product, roots multiplied, a sum for a trace, a missing factor or term, an unsquared mean term, the
root of the whole); inputs changed in place; and labcore's or pytorch-fid's own distance reached every
way must each be named; distances written unlike labcore's (pytorch-fid's recipe copied, eigenvalues,
torch, SVD, loops, other return types) must pass.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

from labcore import fid
from labcore.checkers import (
    check_frechet_distance,
    reference_frechet_distance as my_distance,  # an alias of labcore's
)
from labcore.checkers.frechet import reference_frechet_distance

from adversarial_cases import Case, assert_case

CHECK = check_frechet_distance


def _sqrtm(a):
    with warnings.catch_warnings():     # singular products: "Matrix is singular" warnings
        warnings.simplefilter("ignore")
        return scipy.linalg.sqrtm(a)


def _terms(mu1, sigma1, mu2, sigma2):
    """The squared mean distance and the real trace term, as the notebook's formula writes them."""
    diff = mu1 - mu2
    return diff @ diff, np.trace(sigma1 + sigma2 - 2 * _sqrtm(sigma1 @ sigma2).real)


def _right(mu1, sigma1, mu2, sigma2):
    return float(sum(_terms(mu1, sigma1, mu2, sigma2)))


# ----------------------------------------------------------------------------- not one real number

def per_dimension(mu1, sigma1, mu2, sigma2):
    return (mu1 - mu2) ** 2 + np.trace(sigma1 + sigma2 - 2 * _sqrtm(sigma1 @ sigma2).real)


def in_a_list(mu1, sigma1, mu2, sigma2):
    return [_right(mu1, sigma1, mu2, sigma2)]


def array_of_one(mu1, sigma1, mu2, sigma2):
    return np.array([_right(mu1, sigma1, mu2, sigma2)])


def forgot_return(mu1, sigma1, mu2, sigma2):
    _right(mu1, sigma1, mu2, sigma2)


def the_two_terms(mu1, sigma1, mu2, sigma2):
    return _terms(mu1, sigma1, mu2, sigma2)


def formatted(mu1, sigma1, mu2, sigma2):
    return f"{_right(mu1, sigma1, mu2, sigma2):.6f}"


def tensor_of_one(mu1, sigma1, mu2, sigma2):
    return torch.tensor([_right(mu1, sigma1, mu2, sigma2)], dtype=torch.float64)


def a_bool(mu1, sigma1, mu2, sigma2):
    return _right(mu1, sigma1, mu2, sigma2) > 0


# ----------------------------------------------------------------------------- complex

def no_real_part(mu1, sigma1, mu2, sigma2):
    diff = mu1 - mu2
    return diff @ diff + np.trace(sigma1 + sigma2 - 2 * _sqrtm(sigma1 @ sigma2))


def python_complex(mu1, sigma1, mu2, sigma2):
    diff = mu1 - mu2
    return complex(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(_sqrtm(sigma1 @ sigma2)))


def real_if_close(mu1, sigma1, mu2, sigma2):
    diff = mu1 - mu2
    covmean = np.real_if_close(_sqrtm(sigma1 @ sigma2))
    return diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def complex_tensor(mu1, sigma1, mu2, sigma2):
    s1, s2 = torch.from_numpy(sigma1), torch.from_numpy(sigma2)
    root = torch.linalg.eigvals(s1 @ s2).sqrt().sum()
    diff = torch.from_numpy(mu1 - mu2)
    return diff @ diff + s1.trace() + s2.trace() - 2 * root


# ----------------------------------------------------------------------------- the formula's slips

def no_sqrt(mu1, sigma1, mu2, sigma2):
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1 + sigma2 - 2 * sigma1 @ sigma2))


def np_sqrt(mu1, sigma1, mu2, sigma2):
    diff = mu1 - mu2
    with np.errstate(invalid="ignore"):
        return float(diff @ diff + np.trace(sigma1 + sigma2 - 2 * np.sqrt(sigma1 @ sigma2)))


def root_of_trace(mu1, sigma1, mu2, sigma2):
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.sqrt(np.trace(sigma1 @ sigma2)))


def abs_of_sqrtm(mu1, sigma1, mu2, sigma2):
    diff = mu1 - mu2
    covmean = np.abs(_sqrtm(sigma1 @ sigma2))
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def absolute_in_trace(mu1, sigma1, mu2, sigma2):
    diff = mu1 - mu2
    return float(np.sum(diff ** 2) + np.trace(sigma1 + sigma2) - 2 * np.absolute(_sqrtm(sigma1 @ sigma2)).trace())


def abs_of_real_sqrtm(mu1, sigma1, mu2, sigma2):
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1 + sigma2 - 2 * abs(_sqrtm(sigma1 @ sigma2))))


def star_product(mu1, sigma1, mu2, sigma2):
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1 + sigma2 - 2 * _sqrtm(sigma1 * sigma2).real))


def np_multiply(mu1, sigma1, mu2, sigma2):
    diff = mu1 - mu2
    covmean = _sqrtm(np.multiply(sigma1, sigma2)).real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def product_of_roots(mu1, sigma1, mu2, sigma2):
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1 + sigma2 - 2 * (_sqrtm(sigma1) @ _sqrtm(sigma2)).real))


def no_factor_2(mu1, sigma1, mu2, sigma2):
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1 + sigma2 - _sqrtm(sigma1 @ sigma2).real))


def sum_for_trace(mu1, sigma1, mu2, sigma2):
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * _sqrtm(sigma1 @ sigma2).real.sum())


def sum_of_everything(mu1, sigma1, mu2, sigma2):
    diff = mu1 - mu2
    return float(diff @ diff + np.sum(sigma1 + sigma2 - 2 * _sqrtm(sigma1 @ sigma2).real))


def no_mean_term(mu1, sigma1, mu2, sigma2):
    return float(np.trace(sigma1 + sigma2 - 2 * _sqrtm(sigma1 @ sigma2).real))


def norm_not_squared(mu1, sigma1, mu2, sigma2):
    return float(np.linalg.norm(mu1 - mu2) + np.trace(sigma1 + sigma2 - 2 * _sqrtm(sigma1 @ sigma2).real))


def l1_mean_term(mu1, sigma1, mu2, sigma2):
    return float(np.abs(mu1 - mu2).sum() + np.trace(sigma1 + sigma2 - 2 * _sqrtm(sigma1 @ sigma2).real))


def plain_difference(mu1, sigma1, mu2, sigma2):
    return float(np.sum(mu1 - mu2) + np.trace(sigma1 + sigma2 - 2 * _sqrtm(sigma1 @ sigma2).real))


def root_of_all(mu1, sigma1, mu2, sigma2):
    return float(np.sqrt(max(_right(mu1, sigma1, mu2, sigma2), 0.0)))


# ----------------------------------------------------------------------------- precision

def float32_scalar(mu1, sigma1, mu2, sigma2):
    return np.float32(_right(mu1, sigma1, mu2, sigma2))


def float32_torch(mu1, sigma1, mu2, sigma2):
    mu1, sigma1, mu2, sigma2 = (torch.tensor(a, dtype=torch.float32) for a in (mu1, sigma1, mu2, sigma2))
    root = torch.linalg.eigvals(sigma1 @ sigma2).real.clamp(min=0).sqrt().sum()
    return ((mu1 - mu2) ** 2).sum() + sigma1.trace() + sigma2.trace() - 2 * root


def float32_numpy_to_float(mu1, sigma1, mu2, sigma2):
    return _right(*(a.astype(np.float32) for a in (mu1, sigma1, mu2, sigma2)))


# ----------------------------------------------------------------------------- inputs changed in place

def offset_in_place(mu1, sigma1, mu2, sigma2, eps=1e-6):
    sigma1 += np.eye(len(mu1)) * eps
    sigma2 += np.eye(len(mu2)) * eps
    return _right(mu1, sigma1, mu2, sigma2)


def mean_in_place(mu1, sigma1, mu2, sigma2):
    mu1 -= mu2
    return float(mu1 @ mu1 + np.trace(sigma1 + sigma2 - 2 * _sqrtm(sigma1 @ sigma2).real))


def through_torch_in_place(mu1, sigma1, mu2, sigma2):
    s1 = torch.from_numpy(sigma1)
    s1.mul_(1.0 + 1e-12).add_(0.5)       # shares the caller's memory
    return _right(mu1, sigma1 - 0.5, mu2, sigma2)


def symmetrised_in_place(mu1, sigma1, mu2, sigma2):
    sigma1[...] = (sigma1 + sigma1.T) / 2 + 1e-3
    return _right(mu1, sigma1, mu2, sigma2)


# ----------------------------------------------------------------------------- only looks right

def plus_cross_term(mu1, sigma1, mu2, sigma2):
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1 + sigma2 + 2 * _sqrtm(sigma1 @ sigma2).real))


def mean_over_dims(mu1, sigma1, mu2, sigma2):
    return float(np.mean((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * _sqrtm(sigma1 @ sigma2).real))


def eigvalsh_of_product(mu1, sigma1, mu2, sigma2):
    ev = np.linalg.eigvalsh(sigma1 @ sigma2).clip(min=0)       # the product is not symmetric
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.sqrt(ev).sum())


def always_regularised(mu1, sigma1, mu2, sigma2):
    offset = np.eye(len(mu1)) * 1e-2
    return _right(mu1, sigma1 + offset, mu2, sigma2 + offset) - 0.0


def sigma1_squared(mu1, sigma1, mu2, sigma2):
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1 + sigma2 - 2 * _sqrtm(sigma1 @ sigma1).real))


def roots_of_entries(mu1, sigma1, mu2, sigma2):
    with np.errstate(invalid="ignore"):
        cross = np.sqrt(np.abs(sigma1)) @ np.sqrt(np.abs(sigma2))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1 + sigma2 - 2 * cross))


# ----------------------------------------------------------------------------- errors

def torch_sqrtm(mu1, sigma1, mu2, sigma2):
    return torch.linalg.sqrtm(torch.from_numpy(sigma1 @ sigma2))


def offset_of_2048(mu1, sigma1, mu2, sigma2):
    offset = np.eye(2048) * 1e-6
    return _right(mu1, sigma1 + offset, mu2, sigma2 + offset)


def strict_imaginary_check(mu1, sigma1, mu2, sigma2):
    covmean = _sqrtm(sigma1 @ sigma2)
    if np.iscomplexobj(covmean) and not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-12):
        raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
    return _right(mu1, sigma1, mu2, sigma2)


# ----------------------------------------------------------------------------- labcore's answer

def labcore_fid(mu1, sigma1, mu2, sigma2):
    return fid.frechet_distance(fid.Stats(mu1, sigma1, 0), fid.Stats(mu2, sigma2, 0), note_few=False)


def pytorch_fid_call(mu1, sigma1, mu2, sigma2):
    from pytorch_fid.fid_score import calculate_frechet_distance
    return float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))


def calls_reference(mu1, sigma1, mu2, sigma2):
    return reference_frechet_distance(mu1, sigma1, mu2, sigma2)


def calls_alias(mu1, sigma1, mu2, sigma2):
    return my_distance(mu1, sigma1, mu2, sigma2)


def _cross(a, b):
    return fid.trace_sqrt_product(fid.Stats(np.zeros(len(a)), a, 0), fid.Stats(np.zeros(len(b)), b, 0))


def cross_term_by_labcore(mu1, sigma1, mu2, sigma2):
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * _cross(sigma1, sigma2))


def imports_labcore_inside(mu1, sigma1, mu2, sigma2):
    import labcore.fid as f
    return f.frechet_distance(f.Stats(mu1, sigma1, 0), f.Stats(mu2, sigma2, 0))


# ----------------------------------------------------------------------------- correct, unlike labcore's

def as_in_the_notebook(mu1, sigma1, mu2, sigma2):
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def pytorch_fid_copied(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid 0.3's calculate_frechet_distance, typed in (its disp=False dropped)."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    assert mu1.shape == mu2.shape and sigma1.shape == sigma2.shape
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError("Imaginary component {}".format(np.max(np.abs(covmean.imag))))
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def eigenvalues(mu1, sigma1, mu2, sigma2):
    ev = np.linalg.eigvals(sigma2 @ sigma1).real.clip(min=0)
    return np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.sqrt(ev).sum()


def torch_symmetric(mu1, sigma1, mu2, sigma2):
    mu1, sigma1, mu2, sigma2 = (torch.as_tensor(a) for a in (mu1, sigma1, mu2, sigma2))
    w, v = torch.linalg.eigh(sigma1)
    root1 = v @ torch.diag(w.clamp(min=0).sqrt()) @ v.T
    cross = torch.linalg.eigvalsh(root1 @ sigma2 @ root1).clamp(min=0).sqrt().sum()
    return (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * cross


def torch_item(mu1, sigma1, mu2, sigma2):
    s1, s2 = torch.from_numpy(sigma1), torch.from_numpy(sigma2)
    root = torch.linalg.eigvals(s1 @ s2).real.clamp(min=0).sqrt().sum()
    diff = torch.from_numpy(mu1 - mu2)
    return (diff @ diff + torch.trace(s1 + s2) - 2 * root).item()


def nuclear_norm(mu1, sigma1, mu2, sigma2):
    """tr sqrt(S1 S2) = the nuclear norm of S1^1/2 S2^1/2 (both roots real: symmetric PSD)."""
    def root(s):
        w, v = np.linalg.eigh(s)
        return (v * np.sqrt(w.clip(min=0))) @ v.T
    cross = np.linalg.svd(root(sigma1) @ root(sigma2), compute_uv=False).sum()
    return float(np.dot(mu1 - mu2, mu1 - mu2) + np.trace(sigma1) + np.trace(sigma2) - 2 * cross)


def with_loops(mu1, sigma1, mu2, sigma2):
    covmean = _sqrtm(sigma1 @ sigma2).real
    mean_term, trace_term = 0.0, 0.0
    for i in range(len(mu1)):
        mean_term += (mu1[i] - mu2[i]) ** 2
        trace_term += sigma1[i, i] + sigma2[i, i] - 2 * covmean[i, i]
    return mean_term + trace_term


def scimath_roots(mu1, sigma1, mu2, sigma2):
    ev = np.linalg.eigvals(sigma1 @ sigma2)
    cross = np.lib.scimath.sqrt(ev).real.sum()
    return np.float64(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2) - 2 * cross)


def modulus_of_trace(mu1, sigma1, mu2, sigma2):
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * abs(np.trace(_sqrtm(sigma1 @ sigma2))))


def clipped_at_zero(mu1, sigma1, mu2, sigma2):
    return max(0.0, _right(mu1, sigma1, mu2, sigma2))


def zero_d_array(mu1, sigma1, mu2, sigma2):
    return np.array(_right(mu1, sigma1, mu2, sigma2))


CASES = [
    Case("forgot to sum the squares: (d,)", per_dimension, "frechet.not_a_number"),
    Case("a list of one", in_a_list, "frechet.not_a_number"),
    Case("an array of one", array_of_one, "frechet.not_a_number"),
    Case("forgot return (None)", forgot_return, "frechet.not_a_number"),
    Case("the two terms as a tuple", the_two_terms, "frechet.not_a_number"),
    Case("a formatted string", formatted, "frechet.not_a_number"),
    Case("a tensor of one", tensor_of_one, "frechet.not_a_number"),
    Case("a bool", a_bool, "frechet.not_a_number"),
    Case("sqrtm without .real", no_real_part, "frechet.complex_result"),
    Case("a Python complex", python_complex, "frechet.complex_result"),
    Case("np.real_if_close", real_if_close, "frechet.complex_result"),
    Case("a complex tensor", complex_tensor, "frechet.complex_result"),
    Case("no square root", no_sqrt, "frechet.no_sqrt"),
    Case("np.sqrt of the product", np_sqrt, "frechet.elementwise_sqrt"),
    Case("sqrt of the trace", root_of_trace, "frechet.sqrt_of_trace"),
    Case("np.abs of sqrtm", abs_of_sqrtm, "frechet.abs_of_complex"),
    Case("np.absolute(...).trace()", absolute_in_trace, "frechet.abs_of_complex"),
    Case("abs() of sqrtm", abs_of_real_sqrtm, "frechet.abs_of_complex"),
    Case("sqrtm(sigma1 * sigma2)", star_product, "frechet.elementwise_product"),
    Case("sqrtm(np.multiply)", np_multiply, "frechet.elementwise_product"),
    Case("sqrtm(S1) @ sqrtm(S2)", product_of_roots, "frechet.product_of_roots"),
    Case("no factor 2", no_factor_2, "frechet.missing_factor_2"),
    Case("sum of covmean for its trace", sum_for_trace, "frechet.sum_not_trace"),
    Case("np.sum for every trace", sum_of_everything, "frechet.sum_not_trace"),
    Case("no mean term", no_mean_term, "frechet.missing_mean_term"),
    Case("|mu1 - mu2|", norm_not_squared, "frechet.mean_not_squared"),
    Case("L1 mean term", l1_mean_term, "frechet.mean_not_squared"),
    Case("sum of mu1 - mu2", plain_difference, "frechet.mean_not_squared"),
    Case("square root of the whole", root_of_all, "frechet.sqrt_of_distance"),
    Case("np.float32 of the right value", float32_scalar, "frechet.low_precision"),
    Case("float32 torch", float32_torch, "frechet.low_precision"),
    Case("float32 numpy, float() back", float32_numpy_to_float, "frechet.wrong_value"),
    Case("eps offset added in place", offset_in_place, "frechet.mutates_input"),
    Case("mu1 -= mu2", mean_in_place, "frechet.mutates_input"),
    Case("through torch.from_numpy in place", through_torch_in_place, "frechet.mutates_input"),
    Case("sigma1[...] = symmetrised", symmetrised_in_place, "frechet.mutates_input"),
    Case("+ 2 tr sqrt", plus_cross_term, "frechet.wrong_value"),
    Case("mean over dimensions", mean_over_dims, "frechet.wrong_value"),
    Case("eigvalsh of the product", eigvalsh_of_product, "frechet.wrong_value"),
    Case("always regularised by 1e-2", always_regularised, "frechet.wrong_value"),
    Case("sqrtm(S1 @ S1)", sigma1_squared, "frechet.wrong_value"),
    Case("roots of the entries, multiplied", roots_of_entries, "frechet.wrong_value"),
    Case("torch.linalg.sqrtm", torch_sqrtm, "frechet.error"),
    Case("an offset of 2048", offset_of_2048, "frechet.error"),
    Case("imaginary check at 1e-12", strict_imaginary_check, "frechet.error"),
    Case("labcore.fid.frechet_distance", labcore_fid, "frechet.uses_reference"),
    Case("pytorch-fid's function, imported inside", pytorch_fid_call, "frechet.uses_reference"),
    Case("reference_frechet_distance", calls_reference, "frechet.uses_reference"),
    Case("an alias of it", calls_alias, "frechet.uses_reference"),
    Case("labcore's trace_sqrt_product via a helper", cross_term_by_labcore, "frechet.uses_reference"),
    Case("import labcore.fid inside", imports_labcore_inside, "frechet.uses_reference"),
    Case("is reference_frechet_distance", reference_frechet_distance, "frechet.uses_reference"),
    Case("a partial of labcore's", functools.partial(reference_frechet_distance), "frechet.uses_reference"),
    Case("a lambda around labcore's", lambda m1, s1, m2, s2: my_distance(m1, s1, m2, s2), "frechet.uses_reference"),
    Case("as in the notebook", as_in_the_notebook),
    Case("pytorch-fid's recipe, typed in", pytorch_fid_copied),
    Case("eigenvalues of S2 S1", eigenvalues),
    Case("torch, symmetric route, 0-d tensor", torch_symmetric),
    Case("torch eigvals, .item()", torch_item),
    Case("nuclear norm of the roots", nuclear_norm),
    Case("loops", with_loops),
    Case("scimath roots, np.float64", scimath_roots),
    Case("modulus of the complex trace", modulus_of_trace),
    Case("clipped at 0", clipped_at_zero),
    Case("a 0-d array", zero_d_array),
]


# pytorch-fid 0.3 passes sqrtm(disp=False), deprecated in SciPy 1.17
@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case):
    assert_case(CHECK, case)
