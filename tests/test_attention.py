"""labcore.attention against torch.nn.MultiheadAttention (the reference implementation)."""

import math

import pytest
import torch
import torch.nn as nn

from labcore.attention import MultiHeadAttention
from labcore.checkers import check_attention, copy_into_torch_mha

DIM, HEADS = 64, 8


def _reference_output(module, x):
    ref = copy_into_torch_mha(module, module.num_heads).eval()
    with torch.no_grad():
        return ref(x, x, x, need_weights=False)[0]


@pytest.mark.parametrize("fused", [False, True])
def test_matches_torch_multihead_attention(fused):
    torch.manual_seed(0)
    mha = MultiHeadAttention(DIM, HEADS, attn_drop=0.1, fused=fused).eval()
    x = torch.randn(3, 20, DIM)
    with torch.no_grad():
        got = mha(x)
    assert got.shape == (3, 20, DIM)
    assert (got - _reference_output(mha, x)).abs().max().item() <= 1e-5


def test_explicit_and_fused_paths_agree_and_weights_are_a_distribution():
    torch.manual_seed(1)
    mha = MultiHeadAttention(DIM, HEADS, attn_drop=0.0).eval()
    x = torch.randn(2, 16, DIM)
    with torch.no_grad():
        explicit, weights = mha(x, return_attention=True)
        mha.fused = True
        fused = mha(x)
    assert (explicit - fused).abs().max().item() <= 1e-5
    assert weights.shape == (2, HEADS, 16, 16)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, HEADS, 16))
    # the weights are softmax(QK^T / sqrt(d_k)) of the module's own q and k
    q, k, _ = mha.qkv(x).view(2, 16, 3, HEADS, DIM // HEADS).permute(2, 0, 3, 1, 4)
    torch.testing.assert_close(weights, (q @ k.transpose(-2, -1) / math.sqrt(DIM // HEADS)).softmax(-1))


def test_dropout_only_in_training_mode():
    torch.manual_seed(2)
    mha = MultiHeadAttention(DIM, HEADS, attn_drop=0.5)
    x = torch.randn(2, 16, DIM)
    with torch.no_grad():
        train_out = mha(x)
        eval_out = mha.eval()(x)
    assert not torch.allclose(train_out, eval_out)
    torch.testing.assert_close(eval_out, mha(x))


def test_dim_must_divide_into_heads():
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadAttention(30, 8)


class StudentAttention(nn.Module):
    """What a student might write: separate query/key/value projections and an 'out' layer."""

    def __init__(self, dim, num_heads, scale=True):
        super().__init__()
        self.num_heads, self.scale = num_heads, scale
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        split = lambda t: t.view(B, N, self.num_heads, -1).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-2, -1)
        if self.scale:
            scores = scores / math.sqrt(C // self.num_heads)
        return self.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(B, N, C))


def test_check_attention_passes_correct_modules(capsys):
    torch.manual_seed(3)
    result = check_attention(StudentAttention(DIM, HEADS), num_heads=HEADS, verbose=True)
    assert result.passed and result.max_error <= 1e-5
    assert "PASS" in capsys.readouterr().out


@pytest.mark.parametrize("fused", [False, True])
def test_labcores_own_module_is_not_the_students(fused):
    """labcore's MultiHeadAttention is right, but it is the solution: no points for it."""
    result = check_attention(MultiHeadAttention(DIM, HEADS, fused=fused))
    assert not result.passed and result.mistakes == ["attention.uses_reference"]
    assert "labcore.attention.MultiHeadAttention" in str(result)


def test_check_attention_fails_a_broken_module(capsys):
    torch.manual_seed(4)
    forgot_scale = StudentAttention(DIM, HEADS, scale=False)  # forgot 1/sqrt(d_k)
    result = check_attention(forgot_scale, num_heads=HEADS, verbose=True)
    assert not result.passed and result.max_error > 1e-3 and "attention.no_scaling" in result.mistakes
    assert "FAIL" in capsys.readouterr().out
    # a wrong head count is caught too
    result = check_attention(StudentAttention(DIM, 4), num_heads=HEADS, verbose=False)
    assert not result.passed and "attention.num_heads" in result.mistakes


def test_check_attention_explains_unknown_layouts():
    class NoProjections(nn.Module):
        num_heads = 2

        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(8, 8)

    result = check_attention(NoProjections())
    assert not result.passed and result.mistakes == ["attention.layout"]
    assert "qkv" in str(result) and "lin" in str(result)  # what it looked for, and what the module has


def test_projections_of_unexpected_sizes_are_a_report_not_a_traceback():
    class HalfWidth(StudentAttention):
        def __init__(self, dim, num_heads, attn_drop):
            super().__init__(dim, num_heads)
            self.query = nn.Linear(dim, dim // 2)

    with pytest.raises(ValueError, match="unexpected sizes"):
        copy_into_torch_mha(HalfWidth(DIM, HEADS, 0.0), HEADS)
    result = check_attention(HalfWidth)
    assert result.mistakes == ["attention.layout"] and "32 -> 16" in str(result)


def test_an_exception_in_init_is_a_report():
    class Raises(StudentAttention):
        def __init__(self, dim, num_heads, attn_drop):
            raise RuntimeError("not written yet")

    result = check_attention(Raises)
    assert result.mistakes == ["attention.error"] and "not written yet" in str(result)


def test_the_check_is_recorded_and_torch_is_left_as_it_was():
    from labcore.checkers.fallback import last_check

    forward, functional = nn.MultiheadAttention.forward, torch.nn.functional.multi_head_attention_forward

    class ByGetattr(StudentAttention):     # reaches labcore's class at run time only
        def forward(self, x):
            import importlib
            cls = getattr(importlib.import_module("labcore." + "attention"), "MultiHead" + "Attention")
            inner = cls(x.shape[-1], self.num_heads, 0.0)
            return inner.eval()(x)

    result = check_attention(ByGetattr(DIM, HEADS), num_heads=HEADS)
    assert result.mistakes == ["attention.uses_reference"] and last_check("MultiHeadAttention") is result
    assert nn.MultiheadAttention.forward is forward
    assert torch.nn.functional.multi_head_attention_forward is functional
    assert "forward" not in vars(MultiHeadAttention) or MultiHeadAttention.forward.__name__ == "forward"
