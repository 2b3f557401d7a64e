"""The checkers of exercises 1 (encode), 2 (attention), 3 (gamma) and 7 (frechet), proven on
student code.

For every specific mistake id of these exercises (``labcore.checkers.mistakes``) a wrong
implementation written the way a student writes it must fail with that id; several correct
implementations, written differently from labcore's, must pass with no mistake; the report names
the mistake and its fix. ``test_every_mistake_has_a_wrong_implementation`` fails when an id is
added to the table without a case here.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn as nn
import torch.nn.functional as F

from labcore.checkers import (MISTAKES, check_attention, check_encode_to_z, check_frechet_distance, check_gamma,
                              mistakes_of)

EXERCISES = ("attention", "encode", "gamma", "frechet")
CHECKERS = {"attention": check_attention, "encode": check_encode_to_z, "gamma": check_gamma,
            "frechet": check_frechet_distance}


pytestmark = [pytest.mark.usefixtures("one_thread"),   # tiny tensors: one torch thread is faster
              # np.cos on a torch tensor (the course's gamma template): NumPy 2 deprecation, not ours
              pytest.mark.filterwarnings("ignore:__array_wrap__ must accept:DeprecationWarning")]


def _run(exercise: str, student):
    return CHECKERS[exercise](student)


def _assert_caught(result, mistake: str):
    assert not result.passed, f"the checker passed a wrong implementation that plants {mistake}:\n{result}"
    assert mistake in result.mistakes, f"expected {mistake} among the diagnosed {result.mistakes}:\n{result}"


def _assert_passes(result):
    assert result.passed and not result.mistakes, f"the checker failed a correct implementation:\n{result}"


# ============================================================================ 1. attention
# A student's module written step by step, correct; each wrong variant overrides one step.

class Student(nn.Module):
    def __init__(self, dim, num_heads, attn_drop):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)

    def split(self, t, B, N):                                     # (B, N, dim) -> (B, H, N, d_k)
        return t.view(B, N, self.num_heads, self.head_dim).transpose(1, 2)

    def scores(self, q, k):
        return q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)

    def weights(self, scores):
        return self.attn_drop(scores.softmax(dim=-1))

    def merge(self, out, B, N):                                   # (B, H, N, d_k) -> (B, N, dim)
        return out.transpose(1, 2).reshape(B, N, -1)

    def project(self, out):
        return self.proj(out)

    def forward(self, x):
        B, N, _ = x.shape
        q, k, v = (self.split(t, B, N) for t in self.qkv(x).chunk(3, dim=-1))
        return self.project(self.merge(self.weights(self.scores(q, k)) @ v, B, N))


class PerHeadLayers(nn.Module):      # attention.layout: one Linear per head (no qkv/query/key/value + proj)
    def __init__(self, dim, num_heads, attn_drop):
        super().__init__()
        self.num_heads, d = num_heads, dim // num_heads
        self.heads = nn.ModuleList(nn.Linear(dim, 3 * d) for _ in range(num_heads))
        self.linear = nn.Linear(dim, dim)

    def forward(self, x):
        outs = []
        for head in self.heads:
            q, k, v = head(x).chunk(3, dim=-1)
            outs.append((q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1) @ v)
        return self.linear(torch.cat(outs, dim=-1))


class NotMerged(Student):            # attention.shape: returns the heads (B, H, N, d_k), forgot merge + proj
    def merge(self, out, B, N): return out
    def project(self, out): return out


class NoScaling(Student):            # attention.no_scaling: forgot / sqrt(d_k)
    def scores(self, q, k): return q @ k.transpose(-2, -1)


class ScaleByDim(Student):           # attention.scale_by_dim: / sqrt(dim), the whole width
    def scores(self, q, k): return q @ k.transpose(-2, -1) / math.sqrt(self.num_heads * self.head_dim)


class SoftmaxOverQueries(Student):   # attention.softmax_axis: softmax over the queries (dim=-2)
    def weights(self, scores): return self.attn_drop(scores.softmax(dim=-2))


class SoftmaxOverHeads(Student):     # attention.softmax_axis: softmax(dim=1) on (B, H, N, N)
    def weights(self, scores): return self.attn_drop(F.softmax(scores, dim=1))


class SplitByView(Student):          # attention.head_split: view(B, H, N, d_k) without the transpose
    def split(self, t, B, N): return t.reshape(B, self.num_heads, N, self.head_dim)


class MergeByReshape(Student):       # attention.head_split: merged by reshape without transpose(1, 2)
    def merge(self, out, B, N): return out.reshape(B, N, -1)


class ProjNotApplied(Student):       # attention.no_output_projection: self.proj defined, never called
    def project(self, out): return out


class NoProjLayer(Student):          # attention.no_output_projection: no output projection at all
    def __init__(self, dim, num_heads, attn_drop):
        super().__init__(dim, num_heads, attn_drop)
        del self.proj

    def project(self, out): return out


class HardCodedHeads(Student):       # attention.num_heads: 8 heads whatever num_heads says
    def __init__(self, dim, num_heads, attn_drop):
        super().__init__(dim, 8, attn_drop)


class DropoutAlwaysOn(Student):      # attention.dropout_in_eval: F.dropout's training=True default
    def weights(self, scores): return F.dropout(scores.softmax(dim=-1), p=0.5)


class KeysValuesSwapped(Student):    # attention.qkv_split: scores against v, weights @ k
    def forward(self, x):
        B, N, _ = x.shape
        q, k, v = (self.split(t, B, N) for t in self.qkv(x).chunk(3, dim=-1))
        return self.project(self.merge(self.weights(self.scores(q, v)) @ k, B, N))


class Raises(Student):               # attention.error: unpacks (B, N, C) as two values
    def forward(self, x):
        B, C = x.shape
        return x


class SigmoidWeights(Student):       # attention.wrong_output (generic): sigmoid, rows do not sum to 1
    def weights(self, scores): return self.attn_drop(torch.sigmoid(scores))


class NoAttnDropArg(Student):        # attention.signature: __init__ without attn_drop
    def __init__(self, dim, num_heads):
        super().__init__(dim, num_heads, 0.0)


class ReturnsNumpy(Student):         # attention.not_a_tensor: a NumPy array back
    def forward(self, x): return super().forward(x).detach().numpy()


class ReturnsFloat64(Student):       # attention.dtype: float64 for a float32 x
    def forward(self, x): return super().forward(x).double()


class ScaleByDk(Student):            # attention.wrong_scale: / d_k, without the square root
    def scores(self, q, k): return q @ k.transpose(-2, -1) / self.head_dim


class CausalMask(Student):           # attention.causal_mask: GPT's triangular mask
    def scores(self, q, k):
        s = super().scores(q, k)
        return s.masked_fill(torch.ones_like(s, dtype=torch.bool).triu(1), float("-inf"))


class NoDropout(Student):            # attention.no_dropout: attn_drop never applied
    def weights(self, scores): return scores.softmax(dim=-1)


class DropoutAfterProj(Student):     # attention.dropout_misplaced: on the output, not the weights
    def weights(self, scores): return scores.softmax(dim=-1)
    def project(self, out): return self.attn_drop(self.proj(out))


class Detached(Student):             # attention.no_gradient: the output detached
    def forward(self, x): return super().forward(x).detach()


class ResidualIntoX(Student):        # attention.mutates_input: adds its output into x
    def forward(self, x):
        out = super().forward(x)
        x += out
        return out


def _subclass_of_labcores():         # attention.uses_reference: labcore's own class, subclassed
    from labcore.attention import MultiHeadAttention

    class Mine(MultiHeadAttention):
        pass
    return Mine


# ----------------------------------------------------------------------------- correct attentions

class LoopOverHeads(nn.Module):
    """Separate query/key/value layers and an explicit loop over the heads' channel slices."""

    def __init__(self, dim, num_heads, attn_drop):
        super().__init__()
        self.num_heads, self.d_k = num_heads, dim // num_heads
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(attn_drop)

    def forward(self, x):
        q, k, v = self.query(x), self.key(x), self.value(x)
        heads = []
        for h in range(self.num_heads):
            cols = slice(h * self.d_k, (h + 1) * self.d_k)
            w = torch.softmax(q[..., cols] @ k[..., cols].transpose(1, 2) / self.d_k ** 0.5, dim=-1)
            heads.append(self.drop(w) @ v[..., cols])
        return self.out(torch.cat(heads, dim=-1))


class Einsum(nn.Module):
    """Fused qkv split by a (B, N, 3, H, d) view, einsum for the scores and the weighted sum,
    dropout by F.dropout(training=self.training), returns (out, weights)."""

    def __init__(self, dim, num_heads, attn_drop):
        super().__init__()
        self.num_heads, self.p = num_heads, attn_drop
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.num_heads, C // self.num_heads).unbind(2)   # (B, N, H, d)
        w = torch.einsum("bqhd,bkhd->bhqk", q, k).mul(q.shape[-1] ** -0.5).softmax(-1)
        w = F.dropout(w, self.p, training=self.training)
        out = torch.einsum("bhqk,bkhd->bqhd", w, v).reshape(B, N, C)
        return self.proj(out), w


class SDPA(nn.Module):
    """F.scaled_dot_product_attention on q/k/v layers without bias, dropout only in training."""

    def __init__(self, dim, num_heads, attn_drop):
        super().__init__()
        self.num_heads, self.attn_drop = num_heads, attn_drop
        self.q, self.k, self.v = (nn.Linear(dim, dim, bias=False) for _ in range(3))
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = (t.unflatten(-1, (self.num_heads, -1)).permute(0, 2, 1, 3) for t in (self.q(x), self.k(x), self.v(x)))
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return self.out_proj(out.permute(0, 2, 1, 3).flatten(2))


class ExpOverSum(Student):
    """The course layout with the softmax written out (exp, max-shifted, over the sum of the row)."""

    def weights(self, scores):
        e = (scores - scores.amax(-1, keepdim=True)).exp()
        return self.attn_drop(e / e.sum(-1, keepdim=True))


# ============================================================================ 2. encode_to_z

def encode_returns_tuple(vqgan, images):        # encode.returns_tuple: returns what vqgan.encode returns
    return vqgan.encode(images)


def encode_returns_mapping_and_ids(vqgan, images):   # encode.returns_tuple: the NYCU template's (z_q, ids)
    z_q, ids, _ = vqgan.encode(images)
    return z_q, ids.view(len(images), -1)


def encode_returns_z_q(vqgan, images):          # encode.returns_vectors: the quantized vectors
    return vqgan.encode(images)[0]


def encode_returns_z_q_flat(vqgan, images):     # encode.returns_vectors: the vectors, flattened (B, D*256)
    return vqgan.encode(images)[0].flatten(1)


def encode_not_flattened(vqgan, images):        # encode.shape: the (B, 16, 16) map
    return vqgan.encode(images)[1]


def encode_flattened_batch(vqgan, images):      # encode.shape: one row for the whole batch
    return vqgan.encode(images)[1].flatten()


def encode_int32(vqgan, images):                # encode.dtype: int32 ids
    return vqgan.encode(images)[1].flatten(1).int()


def encode_float_ids(vqgan, images):            # encode.dtype: float ids
    return vqgan.encode(images)[1].flatten(1).float()


def encode_transposed(vqgan, images):           # encode.transposed: column by column
    return vqgan.encode(images)[1].permute(0, 2, 1).reshape(len(images), -1)


def encode_without_quant_conv(vqgan, images):   # encode.skips_quant_conv: encoder straight into the codebook
    return vqgan.codebook(vqgan.encoder(images))[1].flatten(1)


def encode_renormalised(vqgan, images):         # encode.wrong_ids (generic): normalises the images again
    return vqgan.encode(images * 2 - 1)[1].flatten(1)


def encode_raises(vqgan, images):               # encode.error: calls a method the VQGAN does not have
    return vqgan.encode_to_z(images)


def encode_as_list(vqgan, images):              # encode.not_a_tensor: the right ids, as a Python list
    return vqgan.encode(images)[1].flatten(1).tolist()


def encode_reversed(vqgan, images):             # encode.wrong_order: the sequence read backwards
    return vqgan.encode(images)[1].flatten(1).flip(1)


def encode_batch_last(vqgan, images):           # encode.mixes_images: the batch axis moved behind the map
    return vqgan.encode(images)[1].permute(1, 2, 0).reshape(len(images), -1)


def encode_clamps_images(vqgan, images):        # encode.mutates_input: clamps the caller's images in place
    return vqgan.encode(images.clamp_(-1, 1))[1].flatten(1)


def encode_via_encode_to_indices(vqgan, images):   # encode.uses_reference: the VQGAN's own answer
    return vqgan.encode_to_indices(images).flatten(1)


# ----------------------------------------------------------------------------- correct encoders

def encode_via_encode(vqgan, images):
    _, indices, _ = vqgan.encode(images)
    return indices.view(images.shape[0], -1)


def encode_via_codebook_module(vqgan, images):
    with torch.no_grad():
        z = vqgan.quant_conv(vqgan.encoder(images))
        return vqgan.codebook(z)[1].reshape(len(images), 256)


def encode_via_cdist(vqgan, images):
    """encoder, quant_conv, then the nearest codebook vector by torch.cdist."""
    z = vqgan.quant_conv(vqgan.encoder(images))                         # (B, D, 16, 16)
    B, D, h, w = z.shape
    flat = z.permute(0, 2, 3, 1).reshape(-1, D)                         # (B*256, D), row by row
    return torch.cdist(flat, vqgan.codebook.embedding.weight).argmin(dim=1).view(B, h * w)


def encode_via_broadcast(vqgan, images):
    """Squared distances by broadcasting over (B, h, w, K, D), argmin, flatten(1)."""
    z = vqgan.quant_conv(vqgan.encoder(images)).permute(0, 2, 3, 1)    # (B, h, w, D)
    e = vqgan.codebook.embedding.weight                                 # (K, D)
    return ((z.unsqueeze(-2) - e) ** 2).sum(-1).argmin(-1).flatten(1).long()


# ============================================================================ 3. gamma_func

def gamma_course(mode):
    """The course's template, filled in with numpy (np.cos takes tensors too)."""
    if mode == "linear":
        return lambda r: 1 - r
    elif mode == "cosine":
        return lambda r: np.cos(r * np.pi / 2)
    elif mode == "square":
        return lambda r: 1 - r ** 2
    else:
        raise NotImplementedError(mode)


def _gamma_with(**formulas):
    """gamma_func(mode) of the course template with some formulas replaced (a planted mistake)."""
    def gamma_func(mode):
        if mode in formulas:
            return formulas[mode]
        return gamma_course(mode)
    gamma_func.__name__ = f"template_with_wrong_{'_'.join(formulas)}"
    return gamma_func


def gamma_forgot_return(mode):              # gamma.not_callable: builds the schedule, forgets `return`
    if mode == "linear":
        schedule = lambda r: 1 - r  # noqa: E731, F841
    elif mode in ("cosine", "square"):
        schedule = gamma_course(mode)  # noqa: F841
    else:
        raise ValueError(mode)


def _linear_no_return(r):                   # gamma.not_a_number: the def computes, returns None
    1 - r


def gamma_math_cos(mode):                   # gamma.no_tensor_input: math.cos takes one float only
    if mode == "cosine":
        return lambda r: math.cos(math.pi * r / 2)
    return gamma_course(mode)


def gamma_unknown_falls_back(mode):         # gamma.unknown_mode: any other name gets cosine
    if mode == "linear":
        return lambda r: 1 - r
    if mode == "square":
        return lambda r: 1 - r ** 2
    return lambda r: np.cos(r * np.pi / 2)


def gamma_revealed_share(mode):             # gamma.reversed: returns the share revealed, not masked
    return {"linear": lambda r: r, "cosine": lambda r: 1 - np.cos(r * np.pi / 2),
            "square": lambda r: r ** 2}[mode]


def gamma_raises(mode):                     # gamma.error: the 'square' TODO left in
    if mode == "square":
        raise NotImplementedError("TODO")
    return gamma_course(mode)


GAMMA_WRONG = {  # mistake id -> the template with one formula replaced by the slip
    "gamma.not_a_number": _gamma_with(linear=_linear_no_return),                # a def without return
    "gamma.sin_cos_swap": _gamma_with(cosine=lambda r: np.sin(r * np.pi / 2)),  # sin for cos
    "gamma.cosine_period": _gamma_with(cosine=lambda r: np.cos(r * np.pi)),     # a half turn, gamma(1) = -1
    "gamma.r_squared": _gamma_with(square=lambda r: r ** 2),                    # forgot the 1 -
    "gamma.reversed": _gamma_with(linear=lambda r: r),                          # the share revealed
    "gamma.wrong_mode": _gamma_with(square=lambda r: 1 - r),                    # copy-pasted linear
    "gamma.wrong_values": _gamma_with(cosine=lambda r: np.cos(r * np.pi / 2) ** 2),   # squared by mistake
    "gamma.square_of_linear": _gamma_with(square=lambda r: (1 - r) ** 2),      # the square of linear
    "gamma.not_a_tensor": _gamma_with(linear=lambda r: 1 - (r.numpy() if torch.is_tensor(r) else r)),  # NumPy
    "gamma.tensor_shape": _gamma_with(linear=lambda r: (1 - r).reshape(-1, 1) if torch.is_tensor(r) else 1 - r),
    "gamma.tensor_dtype": _gamma_with(linear=lambda r: (1 - r).half() if torch.is_tensor(r) else 1 - r),
}


def gamma_mutates_r(mode):                  # gamma.mutates_input: scales the caller's tensor of ratios in place
    def cosine(r):
        r *= math.pi / 2
        return torch.cos(torch.as_tensor(r))
    return cosine if mode == "cosine" else gamma_course(mode)


def gamma_labcores(mode):                   # gamma.uses_reference: labcore's own schedules
    from labcore.schedules import gamma
    return gamma(mode)


# ----------------------------------------------------------------------------- correct schedules

def gamma_torch(mode):
    """torch throughout: a float comes back as a 0-d tensor."""
    formulas = {"linear": lambda r: 1 - r, "cosine": lambda r: torch.cos(r * torch.pi / 2),
                "square": lambda r: 1 - r.pow(2)}
    if mode not in formulas:
        raise ValueError(f"unknown mode {mode!r}")
    return lambda r: formulas[mode](torch.as_tensor(r, dtype=torch.float64))


def gamma_math_or_torch(mode):
    """math for a float, torch for a tensor."""
    def cosine(r):
        return torch.cos(r * math.pi / 2) if torch.is_tensor(r) else math.cos(r * math.pi / 2)
    return {"linear": lambda r: 1.0 - r, "cosine": cosine, "square": lambda r: 1.0 - r * r}[mode]   # KeyError


def gamma_def_per_mode(mode):
    """A named def per mode, with numpy in float32 (rounding ~1e-7) and explicit end points."""
    def linear(r):
        return 1 - r

    def cosine(r):   # a float comes back as a float, a tensor as a tensor of r's dtype
        x = np.asarray(r, dtype=np.float32)
        y = np.where(x >= 1, 0.0, np.cos(x * np.float32(np.pi / 2)))
        return torch.from_numpy(y).to(r.dtype) if torch.is_tensor(r) else float(y)

    def square(r):
        return (1 - r) * (1 + r)

    if mode not in ("linear", "cosine", "square"):
        raise NotImplementedError(f"no schedule {mode}")
    return {"linear": linear, "cosine": cosine, "square": square}[mode]


# ============================================================================ 7. frechet_distance

def _sqrtm(sigma1, sigma2):
    with warnings.catch_warnings():     # singular products: "Matrix is singular" LinAlgWarning
        warnings.simplefilter("ignore")
        return scipy.linalg.sqrtm(sigma1 @ sigma2)


def frechet_array(mu1, sigma1, mu2, sigma2):        # frechet.not_a_number: forgot to sum the squares
    covmean = _sqrtm(sigma1, sigma2).real
    return (mu1 - mu2) ** 2 + np.trace(sigma1 + sigma2 - 2 * covmean)


def frechet_complex(mu1, sigma1, mu2, sigma2):      # frechet.complex_result: sqrtm without .real
    diff = mu1 - mu2
    return diff @ diff + np.trace(sigma1 + sigma2 - 2 * _sqrtm(sigma1, sigma2))


def frechet_no_sqrt(mu1, sigma1, mu2, sigma2):      # frechet.no_sqrt: tr(S1 S2), no square root
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1 + sigma2 - 2 * sigma1 @ sigma2))


def frechet_np_sqrt(mu1, sigma1, mu2, sigma2):      # frechet.elementwise_sqrt: np.sqrt of the matrix
    diff = mu1 - mu2
    with np.errstate(invalid="ignore"):
        return float(diff @ diff + np.trace(sigma1 + sigma2 - 2 * np.sqrt(sigma1 @ sigma2)))


def frechet_no_factor_2(mu1, sigma1, mu2, sigma2):  # frechet.missing_factor_2
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1 + sigma2 - _sqrtm(sigma1, sigma2).real))


def frechet_norm(mu1, sigma1, mu2, sigma2):         # frechet.mean_not_squared: |mu1 - mu2|, not squared
    return float(np.linalg.norm(mu1 - mu2) + np.trace(sigma1 + sigma2 - 2 * _sqrtm(sigma1, sigma2).real))


def frechet_sqrt(mu1, sigma1, mu2, sigma2):         # frechet.sqrt_of_distance: returns d, not d^2
    diff = mu1 - mu2
    with np.errstate(invalid="ignore"):
        return float(np.sqrt(diff @ diff + np.trace(sigma1 + sigma2 - 2 * _sqrtm(sigma1, sigma2).real)))


def frechet_product_of_roots(mu1, sigma1, mu2, sigma2):   # frechet.product_of_roots: sqrt(S1) sqrt(S2)
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cross = (scipy.linalg.sqrtm(sigma1) @ scipy.linalg.sqrtm(sigma2)).real
    return float(diff @ diff + np.trace(sigma1 + sigma2 - 2 * cross))


def frechet_float32(mu1, sigma1, mu2, sigma2):      # frechet.wrong_value (generic) and .low_precision: float32
    mu1, sigma1, mu2, sigma2 = (torch.tensor(a, dtype=torch.float32) for a in (mu1, sigma1, mu2, sigma2))
    tr_covmean = torch.linalg.eigvals(sigma1 @ sigma2).real.clamp(min=0).sqrt().sum()
    return ((mu1 - mu2) ** 2).sum() + sigma1.trace() + sigma2.trace() - 2 * tr_covmean


def frechet_raises(mu1, sigma1, mu2, sigma2):       # frechet.error: torch has no matrix sqrtm
    return torch.linalg.sqrtm(torch.from_numpy(sigma1 @ sigma2))


def frechet_abs(mu1, sigma1, mu2, sigma2):          # frechet.abs_of_complex: the modulus of the complex sqrtm
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1 + sigma2 - 2 * np.abs(_sqrtm(sigma1, sigma2))))


def frechet_star(mu1, sigma1, mu2, sigma2):         # frechet.elementwise_product: sigma1 * sigma2
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        covmean = scipy.linalg.sqrtm(sigma1 * sigma2).real
    return float(diff @ diff + np.trace(sigma1 + sigma2 - 2 * covmean))


def frechet_root_of_trace(mu1, sigma1, mu2, sigma2):   # frechet.sqrt_of_trace: sqrt(tr(S1 S2))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.sqrt(np.trace(sigma1 @ sigma2)))


def frechet_sum(mu1, sigma1, mu2, sigma2):          # frechet.sum_not_trace: every entry of covmean summed
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * _sqrtm(sigma1, sigma2).real.sum())


def frechet_no_mean(mu1, sigma1, mu2, sigma2):      # frechet.missing_mean_term
    return float(np.trace(sigma1 + sigma2 - 2 * _sqrtm(sigma1, sigma2).real))


def frechet_offset_in_place(mu1, sigma1, mu2, sigma2):   # frechet.mutates_input: sigma1 += eps I, the caller's
    sigma1 += np.eye(len(mu1)) * 1e-6
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1 + sigma2 - 2 * _sqrtm(sigma1, sigma2).real))


def frechet_calls_labcore(mu1, sigma1, mu2, sigma2):     # frechet.uses_reference: labcore's own distance
    from labcore import fid
    return fid.frechet_distance(fid.Stats(mu1, sigma1, 0), fid.Stats(mu2, sigma2, 0), note_few=False)


# ----------------------------------------------------------------------------- correct distances

def frechet_pytorch_fid_style(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's recipe: scipy sqrtm, an offset when it is not finite, .real."""
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1, sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean.real))


def frechet_eigenvalues(mu1, sigma1, mu2, sigma2):
    """tr sqrt(S1 S2) = sum of the square roots of the eigenvalues of S1 S2 (real, >= 0)."""
    eigenvalues = np.linalg.eigvals(sigma1 @ sigma2).real.clip(min=0)
    return np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.sqrt(eigenvalues).sum()


def frechet_torch_tensor(mu1, sigma1, mu2, sigma2):
    """torch (float64): symmetric route S1^1/2 S2 S1^1/2 by eigh, a 0-d tensor back."""
    mu1, sigma1, mu2, sigma2 = (torch.as_tensor(a) for a in (mu1, sigma1, mu2, sigma2))
    w, v = torch.linalg.eigh(sigma1)
    root1 = v @ torch.diag(w.clamp(min=0).sqrt()) @ v.T
    cross = torch.linalg.eigvalsh(root1 @ sigma2 @ root1).clamp(min=0).sqrt().sum()
    return (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * cross


def frechet_torch_float(mu1, sigma1, mu2, sigma2):
    """torch.linalg.eigvals of the product (complex), real part, returned as a float."""
    s1, s2 = torch.from_numpy(sigma1), torch.from_numpy(sigma2)
    tr_covmean = torch.linalg.eigvals(s1 @ s2).real.clamp(min=0).sqrt().sum()
    diff = torch.from_numpy(mu1 - mu2)
    return (diff @ diff + torch.trace(s1 + s2) - 2 * tr_covmean).item()


# ============================================================================ the cases

WRONG = [  # (mistake id, wrong implementation); several rows may plant the same id
    ("attention.layout", PerHeadLayers),
    ("attention.shape", NotMerged),
    ("attention.no_scaling", NoScaling),
    ("attention.scale_by_dim", ScaleByDim),
    ("attention.softmax_axis", SoftmaxOverQueries),
    ("attention.softmax_axis", SoftmaxOverHeads),
    ("attention.head_split", SplitByView),
    ("attention.head_split", MergeByReshape),
    ("attention.no_output_projection", ProjNotApplied),
    ("attention.no_output_projection", NoProjLayer),
    ("attention.num_heads", HardCodedHeads),
    ("attention.dropout_in_eval", DropoutAlwaysOn),
    ("attention.qkv_split", KeysValuesSwapped),
    ("attention.wrong_output", SigmoidWeights),
    ("attention.error", Raises),
    ("attention.signature", NoAttnDropArg),
    ("attention.not_a_tensor", ReturnsNumpy),
    ("attention.dtype", ReturnsFloat64),
    ("attention.wrong_scale", ScaleByDk),
    ("attention.causal_mask", CausalMask),
    ("attention.no_dropout", NoDropout),
    ("attention.dropout_misplaced", DropoutAfterProj),
    ("attention.no_gradient", Detached),
    ("attention.mutates_input", ResidualIntoX),
    ("attention.uses_reference", _subclass_of_labcores()),
    ("encode.returns_tuple", encode_returns_tuple),
    ("encode.returns_tuple", encode_returns_mapping_and_ids),
    ("encode.returns_vectors", encode_returns_z_q),
    ("encode.returns_vectors", encode_returns_z_q_flat),
    ("encode.shape", encode_not_flattened),
    ("encode.shape", encode_flattened_batch),
    ("encode.dtype", encode_int32),
    ("encode.dtype", encode_float_ids),
    ("encode.transposed", encode_transposed),
    ("encode.skips_quant_conv", encode_without_quant_conv),
    ("encode.wrong_ids", encode_renormalised),
    ("encode.error", encode_raises),
    ("encode.not_a_tensor", encode_as_list),
    ("encode.wrong_order", encode_reversed),
    ("encode.mixes_images", encode_batch_last),
    ("encode.mutates_input", encode_clamps_images),
    ("encode.uses_reference", encode_via_encode_to_indices),
    ("gamma.not_callable", gamma_forgot_return),
    ("gamma.no_tensor_input", gamma_math_cos),
    ("gamma.unknown_mode", gamma_unknown_falls_back),
    ("gamma.reversed", gamma_revealed_share),
    ("gamma.error", gamma_raises),
    ("gamma.mutates_input", gamma_mutates_r),
    ("gamma.uses_reference", gamma_labcores),
    *[(mistake, fn) for mistake, fn in GAMMA_WRONG.items()],
    ("frechet.not_a_number", frechet_array),
    ("frechet.complex_result", frechet_complex),
    ("frechet.no_sqrt", frechet_no_sqrt),
    ("frechet.elementwise_sqrt", frechet_np_sqrt),
    ("frechet.missing_factor_2", frechet_no_factor_2),
    ("frechet.mean_not_squared", frechet_norm),
    ("frechet.sqrt_of_distance", frechet_sqrt),
    ("frechet.product_of_roots", frechet_product_of_roots),
    ("frechet.wrong_value", frechet_float32),
    ("frechet.low_precision", frechet_float32),
    ("frechet.error", frechet_raises),
    ("frechet.abs_of_complex", frechet_abs),
    ("frechet.elementwise_product", frechet_star),
    ("frechet.sum_not_trace", frechet_sum),
    ("frechet.sqrt_of_trace", frechet_root_of_trace),
    ("frechet.missing_mean_term", frechet_no_mean),
    ("frechet.mutates_input", frechet_offset_in_place),
    ("frechet.uses_reference", frechet_calls_labcore),
]

CORRECT = {
    "attention": [LoopOverHeads, Einsum, SDPA, ExpOverSum],
    "encode": [encode_via_encode, encode_via_codebook_module, encode_via_cdist, encode_via_broadcast],
    "gamma": [gamma_course, gamma_torch, gamma_math_or_torch, gamma_def_per_mode],
    "frechet": [frechet_pytorch_fid_style, frechet_eigenvalues, frechet_torch_tensor, frechet_torch_float],
}


def _param_id(mistake, student):
    return f"{mistake}[{student.__name__}]"


@pytest.mark.parametrize("mistake, student", [pytest.param(m, s, id=_param_id(m, s)) for m, s in WRONG])
def test_wrong_implementation_is_caught(mistake, student):
    _assert_caught(_run(MISTAKES[mistake].exercise, student), mistake)


def test_every_mistake_has_a_wrong_implementation():
    planted = {mistake for mistake, _ in WRONG}
    assert planted <= set(MISTAKES), f"ids not in labcore/checkers/mistakes.py: {sorted(planted - set(MISTAKES))}"
    specific = {i for ex in EXERCISES for i, m in mistakes_of(ex).items() if not m.generic}
    missing = sorted(specific - planted)
    assert not missing, f"mistake ids without a wrong implementation in WRONG: {missing}"
    # the generic fallbacks are proven too
    generic = {i for ex in EXERCISES for i, m in mistakes_of(ex).items() if m.generic}
    assert generic <= planted, f"generic ids without a case: {sorted(generic - planted)}"


@pytest.mark.parametrize("exercise, student",
                         [pytest.param(ex, s, id=f"{ex}[{s.__name__}]") for ex, ss in CORRECT.items() for s in ss])
def test_correct_implementation_passes(exercise, student):
    _assert_passes(_run(exercise, student))


def test_attention_instance_with_num_heads():
    """An instance (not the class) is checked with num_heads= or its .num_heads."""
    torch.manual_seed(0)
    _assert_passes(check_attention(LoopOverHeads(48, 6, 0.1)))
    _assert_passes(check_attention(SDPA(48, 6, 0.0), num_heads=6))
    _assert_caught(check_attention(Student(48, 6, 0.0), num_heads=3), "attention.num_heads")


def test_attention_check_leaves_training_mode_as_it_was():
    module = Student(32, 4, 0.5).train()
    check_attention(module)
    assert module.training


def test_checkers_do_not_touch_the_callers_random_stream():
    torch.manual_seed(123)
    np.random.seed(123)
    want = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(123)
    for exercise, students in CORRECT.items():
        _run(exercise, students[0])
    assert torch.equal(torch.rand(3), want[0]) and np.array_equal(np.random.rand(3), want[1])


# pytorch-fid 0.3 passes sqrtm(disp=False), deprecated in SciPy 1.17
@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")
def test_pytorch_fids_own_function_is_not_the_students():
    """pytorch-fid's function itself earns no points; its recipe typed in passes (CORRECT)."""
    fid_score = pytest.importorskip("pytorch_fid.fid_score")
    _assert_caught(check_frechet_distance(fid_score.calculate_frechet_distance), "frechet.uses_reference")


def test_frechet_float32_is_told_to_use_float64():
    report = str(check_frechet_distance(frechet_float32))
    assert "compute in float64" in report, f"a float32 implementation should get the float64 hint:\n{report}"


def test_labcore_s_gamma_passes_every_probe_but_is_not_the_student_s(monkeypatch):
    from labcore.checkers import ownership, report
    from labcore.schedules import gamma
    assert check_gamma(gamma).mistakes == ["gamma.uses_reference"]
    monkeypatch.setattr(report, "reaches", lambda obj, exercise: [])
    assert check_gamma(gamma).mistakes == ["gamma.uses_reference"]       # seen running inside the call
    monkeypatch.setattr(ownership, "reference_codes", lambda exercise: {})
    _assert_passes(check_gamma(gamma))


REPORTED = {  # one wrong implementation per exercise whose report is read
    "attention": ("attention.no_scaling", NoScaling),
    "encode": ("encode.transposed", encode_transposed),
    "gamma": ("gamma.sin_cos_swap", GAMMA_WRONG["gamma.sin_cos_swap"]),
    "frechet": ("frechet.missing_factor_2", frechet_no_factor_2),
}


@pytest.mark.parametrize("exercise", EXERCISES)
def test_report_names_the_mistake_and_the_fix(exercise):
    mistake, student = REPORTED[exercise]
    report = str(_run(exercise, student))
    m = MISTAKES[mistake]
    assert "FAIL" in report.splitlines()[0], f"the first line must say FAIL:\n{report}"
    for what, text in (("id", f"[{mistake}]"), ("message", m.message), ("fix", f"fix: {m.fix}")):
        assert text in report, f"the report does not show the mistake's {what} ({text!r}):\n{report}"


@pytest.mark.parametrize("exercise", EXERCISES)
def test_report_of_a_pass(exercise):
    report = str(_run(exercise, CORRECT[exercise][0]))
    assert report.splitlines()[0].startswith(f"{CHECKERS[exercise].__name__}: PASS"), report
    assert "fix:" not in report, report


@pytest.mark.parametrize("exercise", EXERCISES)
def test_checker_is_fast(exercise):
    """Each checker runs in well under 2 s (a notebook cell): the median of 3 runs."""
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        _run(exercise, CORRECT[exercise][0])
        times.append(time.perf_counter() - t0)
    assert sorted(times)[1] < 2.0, f"check of {exercise}: median {sorted(times)[1]:.2f} s over 3 runs"
