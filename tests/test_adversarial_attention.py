"""Adversarial suite of exercise 2, ``check_attention(MultiHeadAttention)``: classes written from
notebook 01's signature and docstring (``MultiHeadAttention(dim, num_heads, attn_drop)``, given
``qkv``/``attn_drop``/``proj``, ``forward(x)``: (B, N, dim) -> (B, N, dim)) by someone trying to
fool the checker: other dtypes and containers, mutated inputs, shape coincidences, dropout in the
wrong place, labcore's own solution reached in every way we could think of; and correct classes
written unlike labcore's (loops, bmm, einsum, SDPA, other names, a tuple back).
"""

from __future__ import annotations

import importlib
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import labcore.attention
from labcore.checkers import attention as checker_module, check_attention

from adversarial_cases import Case, assert_case

CHECK = check_attention
pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:Implicit dimension choice for softmax:UserWarning")]


class Course(nn.Module):
    """The given __init__ and a forward in small steps; each wrong class changes one step."""

    def __init__(self, dim, num_heads, attn_drop):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)

    def thirds(self, x):                                   # (B, N, dim) -> q, k, v each (B, N, dim)
        return self.qkv(x).chunk(3, dim=-1)

    def split(self, t):                                    # (B, N, dim) -> (B, H, N, d_k)
        B, N, _ = t.shape
        return t.unflatten(-1, (self.num_heads, self.head_dim)).permute(0, 2, 1, 3)

    def scores(self, q, k):                                # (B, H, N, N)
        return torch.matmul(q, k.transpose(2, 3)) * self.head_dim ** -0.5

    def weights(self, s):                                  # (B, H, N, N), rows sum to 1
        return self.attn_drop(torch.softmax(s, dim=3))

    def merge(self, o):                                    # (B, H, N, d_k) -> (B, N, dim)
        return o.permute(0, 2, 1, 3).flatten(2)

    def forward(self, x):
        q, k, v = (self.split(t) for t in self.thirds(x))
        return self.proj(self.merge(self.weights(self.scores(q, k)) @ v))


# ----------------------------------------------------------------------------- wrong: the math

class NoScale(Course):
    def scores(self, q, k): return q @ k.transpose(-1, -2)


class ScaleByDim(Course):
    def scores(self, q, k): return q @ k.transpose(-1, -2) / math.sqrt(self.num_heads * self.head_dim)


class ScaleByDk(Course):                   # forgot the root
    def scores(self, q, k): return q @ k.transpose(-1, -2) / self.head_dim


class ScaleMultiplied(Course):
    def scores(self, q, k): return q @ k.transpose(-1, -2) * math.sqrt(self.head_dim)


class SoftmaxQueries(Course):
    def weights(self, s): return self.attn_drop(s.softmax(-2))


class SoftmaxHeads(Course):
    def weights(self, s): return self.attn_drop(s.softmax(1))


class SoftmaxImplicitDim(Course):          # F.softmax without dim picks dim 1 on a 4-d tensor
    def weights(self, s): return self.attn_drop(F.softmax(s))


class SoftmaxBatch(Course):
    def weights(self, s): return self.attn_drop(s.softmax(0))


class SplitByReshape(Course):              # (B, N, dim) read as (B, H, N, d_k)
    def split(self, t): return t.reshape(t.shape[0], self.num_heads, t.shape[1], self.head_dim)


class MergeByReshape(Course):
    def merge(self, o): return o.reshape(o.shape[0], o.shape[2], -1)


class AttendOverHeads(Course):             # split without moving the heads forward: (B, N, H, d_k)
    def split(self, t): return t.unflatten(-1, (self.num_heads, self.head_dim))
    def merge(self, o): return o.flatten(2)


class InterleavedQKV(Course):              # reads qkv as (B, N, H, 3, d_k)
    def thirds(self, x):
        B, N, C = x.shape
        return [t.reshape(B, N, C) for t in self.qkv(x).view(B, N, self.num_heads, 3, self.head_dim).unbind(3)]


class QueriesKeysSwapped(Course):
    def thirds(self, x):
        k, q, v = self.qkv(x).chunk(3, dim=-1)
        return q, k, v


class KeysValuesSwapped(Course):
    def thirds(self, x):
        q, v, k = self.qkv(x).chunk(3, dim=-1)
        return q, k, v


class CausalMask(Course):                  # a GPT habit: MaskGIT is bidirectional
    def scores(self, q, k):
        s = super().scores(q, k)
        n = s.shape[-1]
        return s.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf"))


class SdpaCausal(Course):
    def forward(self, x):
        q, k, v = (self.split(t) for t in self.thirds(x))
        return self.proj(self.merge(F.scaled_dot_product_attention(q, k, v, is_causal=True)))


class NoProj(Course):
    def forward(self, x):
        q, k, v = (self.split(t) for t in self.thirds(x))
        return self.merge(self.weights(self.scores(q, k)) @ v)


class SigmoidWeights(Course):              # weights in (0, 1) that do not sum to 1
    def weights(self, s): return self.attn_drop(torch.sigmoid(s))


class ResidualInside(Course):              # the block adds x itself: adding it here counts it twice
    def forward(self, x): return x + super().forward(x)


class BatchAndTokensSwapped(Course):       # B and N swapped in the head split (fine when B == N)
    def split(self, t):
        B, N, _ = t.shape
        return t.reshape(N, B, self.num_heads, self.head_dim).transpose(1, 2).reshape(B, self.num_heads, N, -1)


class HalfPrecisionInside(Course):         # computes in float16, returns float32: close, not equal
    def scores(self, q, k): return super().scores(q.half(), k.half()).float()


# ----------------------------------------------------------------------------- wrong: sizes and heads

class EightHeads(Course):
    def __init__(self, dim, num_heads, attn_drop):
        super().__init__(dim, 8, attn_drop)


class FourHeadsConstant(Course):           # right for the notebook's 4 heads only
    def __init__(self, dim, num_heads, attn_drop):
        super().__init__(dim, 4, attn_drop)


class HeadSizeEight(Course):               # d_k = 8 hard-coded: right for dim 32, 4 heads only
    def __init__(self, dim, num_heads, attn_drop):
        super().__init__(dim, num_heads, attn_drop)
        self.head_dim = 8


class HeadsAndSizeSwapped(Course):         # d_k heads of num_heads channels
    def split(self, t): return t.unflatten(-1, (self.head_dim, self.num_heads)).transpose(1, 2)


class BatchAsTokens(Course):               # N taken from x.shape[0]
    def split(self, t): return t.view(t.shape[0], t.shape[0], self.num_heads, self.head_dim).transpose(1, 2)


# ----------------------------------------------------------------------------- wrong: dropout

class DropoutAlwaysOn(Course):
    def weights(self, s): return F.dropout(s.softmax(-1), self.attn_drop.p)


class DropoutTrainingTrue(Course):
    def weights(self, s): return F.dropout(s.softmax(-1), self.attn_drop.p, training=True)


class NoDropout(Course):
    def weights(self, s): return s.softmax(-1)


class DropoutOnOutput(Course):
    def forward(self, x):
        q, k, v = (self.split(t) for t in self.thirds(x))
        return self.proj(self.attn_drop(self.merge(self.scores(q, k).softmax(-1) @ v)))


class DropoutOnValues(Course):
    def forward(self, x):
        q, k, v = (self.split(t) for t in self.thirds(x))
        return self.proj(self.merge(self.scores(q, k).softmax(-1) @ self.attn_drop(v)))


class DropoutOnScores(Course):
    def weights(self, s): return self.attn_drop(s).softmax(-1)


class DropoutRateHardCoded(Course):
    def __init__(self, dim, num_heads, attn_drop):
        super().__init__(dim, num_heads, attn_drop)
        self.attn_drop = nn.Dropout(0.1)


class DropoutNotRescaled(Course):          # a hand-made mask without the 1 / (1 - p)
    def weights(self, s):
        w = s.softmax(-1)
        if self.training:
            w = w * (torch.rand_like(w) >= self.attn_drop.p)
        return w


class DropoutAfterProj(Course):
    def forward(self, x): return self.attn_drop(super().forward(x))


# ----------------------------------------------------------------------------- wrong: types, shapes, inputs

class ComputesInFloat64(Course):
    def forward(self, x): return super().forward(x).double()


class Float64Scale(Course):                # a 1-element float64 tensor promotes the scores: matmul with v raises
    def scores(self, q, k): return q @ k.transpose(-1, -2) * torch.tensor([self.head_dim], dtype=torch.float64).rsqrt()


class Float64Zero(Course):                 # a float64 tensor added at the end promotes the output
    def forward(self, x): return super().forward(x) + torch.zeros(1, dtype=torch.float64)


class BaddbmmFloat32(Course):              # right in float32; a float32 tensor in baddbmm raises in float64
    def scores(self, q, k):
        B, H, N, d = q.shape
        s = torch.baddbmm(torch.zeros(1, 1, 1), q.reshape(B * H, N, d), k.reshape(B * H, N, d).transpose(1, 2),
                          beta=0.0, alpha=d ** -0.5)
        return s.view(B, H, N, N)


class ReturnsHalf(Course):
    def forward(self, x): return super().forward(x).half()


class HardCodedFloat32(Course):            # right for float32 only
    def forward(self, x): return super().forward(x).to(torch.float32)


class ReturnsNumpy(Course):
    def forward(self, x): return super().forward(x).detach().numpy()


class ReturnsList(Course):
    def forward(self, x): return super().forward(x).tolist()


class ReturnsHeads(Course):
    def forward(self, x):
        q, k, v = (self.split(t) for t in self.thirds(x))
        return self.weights(self.scores(q, k)) @ v


class ReturnsFlat(Course):
    def forward(self, x): return super().forward(x).flatten(0, 1)


class ReturnsWeightsFirst(Course):
    def forward(self, x):
        q, k, v = (self.split(t) for t in self.thirds(x))
        w = self.weights(self.scores(q, k))
        return w, self.proj(self.merge(w @ v))


class ResidualIntoX(Course):               # right output, but x now holds x + output
    def forward(self, x):
        out = super().forward(x)
        x += out
        return out


class CentersXInPlace(Course):
    def forward(self, x):
        x.sub_(x.mean(-1, keepdim=True))
        return super().forward(x)


class ShrinksItsWeights(Course):           # edits its own projection at every call
    def forward(self, x):
        with torch.no_grad():
            self.proj.weight.mul_(0.999)
        return super().forward(x)


class Detached(Course):
    def forward(self, x): return super().forward(x).detach()


class UnderNoGrad(Course):
    def forward(self, x):
        with torch.no_grad():
            return super().forward(x)


class NumpyRoundTrip(Course):
    def forward(self, x): return torch.from_numpy(super().forward(x).detach().numpy())


class WeightsThroughData(Course):
    def thirds(self, x): return F.linear(x, self.qkv.weight.data, self.qkv.bias.data).chunk(3, dim=-1)


class XDetached(Course):
    def forward(self, x): return super().forward(x.detach())


# ----------------------------------------------------------------------------- wrong: construction and layout

class NoAttnDrop(Course):                  # the signature without attn_drop
    def __init__(self, dim, num_heads):
        super().__init__(dim, num_heads, 0.0)


class KeywordOnlyDropout(Course):
    def __init__(self, dim, num_heads, *, attn_drop=0.0):
        super().__init__(dim, num_heads, attn_drop)


class RaisesInInit(Course):
    def __init__(self, dim, num_heads, attn_drop):
        super().__init__(dim, num_heads, attn_drop)
        raise RuntimeError("not written yet")


class LowRankProjections(nn.Module):       # q/k/v of dim // 2 channels: unexpected sizes
    def __init__(self, dim, num_heads, attn_drop):
        super().__init__()
        self.num_heads = num_heads
        self.query, self.key, self.value = (nn.Linear(dim, dim // 2) for _ in range(3))
        self.out = nn.Linear(dim // 2, dim)

    def forward(self, x):
        q, k, v = self.query(x), self.key(x), self.value(x)
        return self.out((q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])).softmax(-1) @ v)


class OtherNames(Course):                  # W_q ... instead of the course's names
    def __init__(self, dim, num_heads, attn_drop):
        super().__init__(dim, num_heads, attn_drop)
        self.W_qkv, self.W_o = self.qkv, self.proj
        del self.qkv, self.proj

    def thirds(self, x): return self.W_qkv(x).chunk(3, dim=-1)

    def forward(self, x):
        q, k, v = (self.split(t) for t in self.thirds(x))
        return self.W_o(self.merge(self.weights(self.scores(q, k)) @ v))


class FourDimInput(Course):
    def forward(self, x):
        B, N, C, _ = x.shape
        return x


# ----------------------------------------------------------------------------- wrong: labcore's solution

class SubclassesLabcore(labcore.attention.MultiHeadAttention):
    pass


class HoldsLabcore(nn.Module):
    def __init__(self, dim, num_heads, attn_drop):
        super().__init__()
        self.inner = labcore.attention.MultiHeadAttention(dim, num_heads, attn_drop)
        self.qkv, self.proj = self.inner.qkv, self.inner.proj

    def forward(self, x): return self.inner(x)


class WrapsTorchMHA(Course):
    def forward(self, x):
        mha = nn.MultiheadAttention(x.shape[-1], self.num_heads, batch_first=True)
        with torch.no_grad():
            mha.in_proj_weight.copy_(self.qkv.weight)
            mha.in_proj_bias.copy_(self.qkv.bias)
            mha.out_proj.weight.copy_(self.proj.weight)
            mha.out_proj.bias.copy_(self.proj.bias)
        return mha.eval()(x, x, x, need_weights=False)[0]


class FunctionalMHA(Course):
    def forward(self, x):
        t = x.transpose(0, 1)
        out, _ = F.multi_head_attention_forward(t, t, t, x.shape[-1], self.num_heads, self.qkv.weight, self.qkv.bias,
                                                None, None, False, 0.0, self.proj.weight, self.proj.bias,
                                                training=False, need_weights=False)
        return out.transpose(0, 1)


class ImportsInside(Course):
    def forward(self, x):
        from labcore.attention import MultiHeadAttention as Helper
        return Helper.forward(self, x)


_SOLUTION = labcore.attention.MultiHeadAttention


def _helper(module, x):
    return _SOLUTION.forward(module, x)


class ThroughAHelper(Course):
    def forward(self, x): return _helper(self, x)


class ByGetattr(Course):                   # no name of labcore's class in the code
    def forward(self, x):
        cls = getattr(importlib.import_module("labcore." + "attention"), "MultiHead" + "Attention")
        return cls.forward(self, x)


class ByGetattrInstance(Course):
    def forward(self, x):
        cls = getattr(importlib.import_module("labcore." + "attention"), "MultiHead" + "Attention")
        inner = cls(x.shape[-1], self.num_heads, 0.0)
        inner.load_state_dict({"qkv.weight": self.qkv.weight, "qkv.bias": self.qkv.bias,
                               "proj.weight": self.proj.weight, "proj.bias": self.proj.bias})
        return inner.eval()(x)


class CheckersMath(Course):
    def forward(self, x):
        lay = checker_module.layout(self)
        return checker_module.explicit_attention(x, lay, self.num_heads)


class CheckersTorchCopy(Course):
    def forward(self, x): return checker_module.copy_into_torch_mha(self, self.num_heads)(x, x, x)[0]


# ----------------------------------------------------------------------------- correct, unlike labcore's

class Loops(nn.Module):
    """Python loops over images, heads and queries."""

    def __init__(self, dim, num_heads, attn_drop):
        super().__init__()
        self.h, self.d = num_heads, dim // num_heads
        self.qkv, self.proj, self.drop = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim), nn.Dropout(attn_drop)

    def forward(self, x):
        q, k, v = self.qkv(x).split(x.shape[-1], dim=-1)
        rows = []
        for b in range(x.shape[0]):
            heads = []
            for h in range(self.h):
                c = slice(h * self.d, (h + 1) * self.d)
                w = (q[b, :, c] @ k[b, :, c].T / math.sqrt(self.d)).softmax(-1)      # (N, N)
                heads.append(self.drop(w) @ v[b, :, c])                              # (N, d)
            rows.append(torch.cat(heads, dim=-1))
        return self.proj(torch.stack(rows))


class Bmm(Course):
    """(B*H, N, d) batches and torch.baddbmm for the scaled scores."""

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = (t.reshape(B, N, self.num_heads, -1).transpose(1, 2).reshape(B * self.num_heads, N, -1)
                   for t in self.thirds(x))
        s = torch.baddbmm(q.new_zeros(1, 1, 1), q, k.transpose(1, 2), beta=0.0, alpha=self.head_dim ** -0.5)
        out = torch.bmm(self.attn_drop(s.softmax(-1)), v)                      # (B*H, N, d)
        return self.proj(out.view(B, self.num_heads, N, -1).transpose(1, 2).reshape(B, N, C))


class SdpaDropout(Course):
    """F.scaled_dot_product_attention, with dropout_p in training (allowed: a torch primitive)."""

    def forward(self, x):
        q, k, v = (self.split(t) for t in self.thirds(x))
        p = self.attn_drop.p if self.training else 0.0
        return self.proj(self.merge(F.scaled_dot_product_attention(q, k, v, dropout_p=p)))


class EinsumNoBias(nn.Module):
    """query/key/value without bias, out, einsum, F.dropout(training=self.training)."""

    def __init__(self, dim, num_heads, attn_drop):
        super().__init__()
        self.n_heads, self.p = num_heads, attn_drop
        self.query, self.key, self.value = (nn.Linear(dim, dim, bias=False) for _ in range(3))
        self.out = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = (f(x).view(B, N, self.n_heads, -1) for f in (self.query, self.key, self.value))
        w = torch.einsum("bnhd,bmhd->bhnm", q / math.sqrt(q.shape[-1]), k).softmax(-1)
        w = F.dropout(w, self.p, training=self.training)
        return self.out(torch.einsum("bhnm,bmhd->bnhd", w, v).reshape(B, N, C))


class ReturnsWeightsToo(Course):
    """Returns (output, weights), as labcore's module does with return_attention."""

    def forward(self, x):
        q, k, v = (self.split(t) for t in self.thirds(x))
        w = self.weights(self.scores(q, k))
        return self.proj(self.merge(w @ v)), w


class Float64Inside(Course):
    """The scores in float64, cast back to x's dtype."""

    def scores(self, q, k): return (q.double() @ k.double().transpose(-1, -2) / math.sqrt(self.head_dim)).to(q.dtype)


class LogSumExp(Course):
    """The softmax written as exp(s - logsumexp(s)); the scale on q first."""

    def scores(self, q, k): return (q / self.head_dim ** 0.5) @ k.transpose(-1, -2)
    def weights(self, s): return self.attn_drop((s - s.logsumexp(-1, keepdim=True)).exp())


class OwnBase(Course):
    """Builds on the student's own Course class and a helper of their own."""

    def forward(self, x): return _own_helper(self, x)


def _own_helper(module, x):
    q, k, v = (module.split(t) for t in module.thirds(x))
    return module.proj(module.merge(module.weights(module.scores(q, k)) @ v))


WRONG = [
    ("no scaling", NoScale, "attention.no_scaling"),
    ("divided by sqrt(dim)", ScaleByDim, "attention.scale_by_dim"),
    ("divided by d_k, no root", ScaleByDk, "attention.wrong_scale"),
    ("multiplied by sqrt(d_k)", ScaleMultiplied, "attention.wrong_scale"),
    ("softmax over the queries", SoftmaxQueries, "attention.softmax_axis"),
    ("softmax over the heads", SoftmaxHeads, "attention.softmax_axis"),
    ("F.softmax without dim", SoftmaxImplicitDim, "attention.softmax_axis"),
    ("softmax over the batch", SoftmaxBatch, "attention.softmax_axis"),
    ("split by reshape", SplitByReshape, "attention.head_split"),
    ("merge by reshape", MergeByReshape, "attention.head_split"),
    ("attends over the heads", AttendOverHeads, "attention.head_split"),
    ("qkv read per head", InterleavedQKV, "attention.qkv_split"),
    ("queries and keys swapped", QueriesKeysSwapped, "attention.qkv_split"),
    ("keys and values swapped", KeysValuesSwapped, "attention.qkv_split"),
    ("causal mask", CausalMask, "attention.causal_mask"),
    ("SDPA is_causal", SdpaCausal, "attention.causal_mask"),
    ("no output projection", NoProj, "attention.no_output_projection"),
    ("sigmoid weights", SigmoidWeights, "attention.wrong_output"),
    ("residual inside", ResidualInside, "attention.wrong_output"),
    ("B and N swapped in the split", BatchAndTokensSwapped, "attention.wrong_output"),
    ("float16 scores", HalfPrecisionInside, "attention.wrong_output"),
    ("8 heads hard-coded", EightHeads, "attention.num_heads"),
    ("4 heads hard-coded", FourHeadsConstant, "attention.num_heads"),
    ("d_k = 8 hard-coded", HeadSizeEight, "attention.num_heads"),
    ("heads and head size swapped", HeadsAndSizeSwapped, "attention.num_heads"),
    ("N from x.shape[0]", BatchAsTokens, "attention.error"),
    ("F.dropout default training", DropoutAlwaysOn, "attention.dropout_in_eval"),
    ("F.dropout training=True", DropoutTrainingTrue, "attention.dropout_in_eval"),
    ("attn_drop never applied", NoDropout, "attention.no_dropout"),
    ("dropout on the output", DropoutOnOutput, "attention.dropout_misplaced"),
    ("dropout on the values", DropoutOnValues, "attention.dropout_misplaced"),
    ("dropout on the scores", DropoutOnScores, "attention.dropout_misplaced"),
    ("dropout rate hard-coded", DropoutRateHardCoded, "attention.dropout_misplaced"),
    ("dropout not rescaled", DropoutNotRescaled, "attention.dropout_misplaced"),
    ("dropout after proj", DropoutAfterProj, "attention.dropout_misplaced"),
    ("returns float64", ComputesInFloat64, "attention.dtype"),
    ("float64 scale: matmul raises", Float64Scale, "attention.error"),
    ("float64 zero added", Float64Zero, "attention.dtype"),
    ("baddbmm on a float32 tensor", BaddbmmFloat32, "attention.dtype"),
    ("returns float16", ReturnsHalf, "attention.dtype"),
    ("float32 hard-coded", HardCodedFloat32, "attention.dtype"),
    ("returns an ndarray", ReturnsNumpy, "attention.not_a_tensor"),
    ("returns a list", ReturnsList, "attention.not_a_tensor"),
    ("returns the heads", ReturnsHeads, "attention.shape"),
    ("returns (B*N, dim)", ReturnsFlat, "attention.shape"),
    ("returns (weights, output)", ReturnsWeightsFirst, "attention.shape"),
    ("adds the output into x", ResidualIntoX, "attention.mutates_input"),
    ("centers x in place", CentersXInPlace, "attention.mutates_input"),
    ("edits its own weights", ShrinksItsWeights, "attention.mutates_input"),
    ("output detached", Detached, "attention.no_gradient"),
    ("under no_grad", UnderNoGrad, "attention.no_gradient"),
    ("numpy round trip", NumpyRoundTrip, "attention.no_gradient"),
    ("weights through .data", WeightsThroughData, "attention.no_gradient"),
    ("x detached", XDetached, "attention.no_gradient"),
    ("__init__ without attn_drop", NoAttnDrop, "attention.signature"),
    ("keyword-only attn_drop", KeywordOnlyDropout, "attention.signature"),
    ("raises in __init__", RaisesInInit, "attention.error"),
    ("projections of dim // 2", LowRankProjections, "attention.layout"),
    ("other layer names", OtherNames, "attention.layout"),
    ("unpacks four sizes", FourDimInput, "attention.error"),
    ("subclasses labcore's", SubclassesLabcore, "attention.uses_reference"),
    ("holds labcore's", HoldsLabcore, "attention.uses_reference"),
    ("wraps torch's MultiheadAttention", WrapsTorchMHA, "attention.uses_reference"),
    ("F.multi_head_attention_forward", FunctionalMHA, "attention.uses_reference"),
    ("imports labcore's inside forward", ImportsInside, "attention.uses_reference"),
    ("labcore's through an alias and a helper", ThroughAHelper, "attention.uses_reference"),
    ("labcore's by getattr", ByGetattr, "attention.uses_reference"),
    ("labcore's instance by getattr", ByGetattrInstance, "attention.uses_reference"),
    ("the checker's explicit math", CheckersMath, "attention.uses_reference"),
    ("the checker's torch copy", CheckersTorchCopy, "attention.uses_reference"),
]
RIGHT = [Course, Loops, Bmm, SdpaDropout, EinsumNoBias, ReturnsWeightsToo, Float64Inside, LogSumExp, OwnBase]

CASES = [Case(name, cls, expect) for name, cls, expect in WRONG] + [Case(cls.__name__, cls) for cls in RIGHT]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case):
    assert_case(CHECK, case)
