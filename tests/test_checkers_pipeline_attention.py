"""Exercise 2 in the real model: ``labcore.checkers.attention.with_attention`` puts a student's
attention class into a copy of the transformer, holding the same weights.

A correct class, whatever its layout (labcore's fused ``qkv`` + ``proj``, or ``query``/``key``/
``value`` + ``out`` written with einsum), gives the original's logits up to float error; a wrong
one (no 1/sqrt(d_k), softmax over the queries) gives other logits. The original is never touched.
(Also: notebook 00's stand-in for exercise 1, ``reference_encode_to_z``, is labcore's: its checker says so.)
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from labcore.attention import MultiHeadAttention
from labcore.checkers import check_attention
from labcore.checkers.attention import load_attention_weights, with_attention
from labcore.transformer import BidirectionalTransformer, TransformerConfig

pytestmark = pytest.mark.usefixtures("one_thread")


class EinsumAttention(nn.Module):
    """Correct, written unlike labcore's: separate projections, einsum, an `out` layer, forward(x)."""

    def __init__(self, dim, num_heads, attn_drop):
        super().__init__()
        self.num_heads, self.d_k = num_heads, dim // num_heads
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.attn_drop = nn.Dropout(attn_drop)
        self.out = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, _ = x.shape
        q, k, v = (f(x).view(B, N, self.num_heads, self.d_k) for f in (self.query, self.key, self.value))
        scores = torch.einsum("bihd,bjhd->bhij", q, k) / math.sqrt(self.d_k)        # (B, H, N, N)
        out = torch.einsum("bhij,bjhd->bihd", self.attn_drop(scores.softmax(-1)), v)  # (B, N, H, d_k)
        return self.out(out.reshape(B, N, -1))


class NoScaling(EinsumAttention):      # the classic mistake: no / sqrt(d_k)
    def forward(self, x):
        B, N, _ = x.shape
        q, k, v = (f(x).view(B, N, self.num_heads, self.d_k) for f in (self.query, self.key, self.value))
        out = torch.einsum("bhij,bjhd->bihd", torch.einsum("bihd,bjhd->bhij", q, k).softmax(-1), v)
        return self.out(out.reshape(B, N, -1))


class SoftmaxOverQueries(nn.Module):   # fused layout, softmax over the wrong axis
    def __init__(self, dim, num_heads, attn_drop):
        super().__init__()
        self.num_heads = num_heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        w = (q @ k.transpose(-2, -1) / math.sqrt(C // self.num_heads)).softmax(dim=-2)
        return self.proj((w @ v).transpose(1, 2).reshape(B, N, C))


class NoBias(EinsumAttention):         # correct math, but its layers cannot hold a bias
    def __init__(self, dim, num_heads, attn_drop):
        super().__init__(dim, num_heads, attn_drop)
        self.query = nn.Linear(dim, dim, bias=False)


def _transformer(seed: int = 0) -> BidirectionalTransformer:
    """Two blocks, 4 heads, dropout on (eval mode turns it off), random non-zero biases."""
    cfg = TransformerConfig(num_image_tokens=16, num_codebook_vectors=8, dim=32, n_layers=2, hidden_dim=64,
                            num_heads=4, dropout=0.1, attn_drop=0.1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BidirectionalTransformer(cfg)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))    # non-zero biases, less uniform logits
    return model.eval()


def _tokens(model, batch=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.config.num_codebook_vectors + 1, (batch, model.config.num_image_tokens), generator=g)


def _logits(model, tokens):
    with torch.no_grad():
        return model(tokens)


@pytest.mark.parametrize("cls", [MultiHeadAttention, EinsumAttention])
def test_correct_class_gives_the_same_logits(cls):
    original = _transformer()
    tokens = _tokens(original)
    yours = with_attention(original, cls)
    assert all(type(block.Attention) is cls for block in yours.blocks)
    assert not yours.training
    diff = (_logits(yours, tokens) - _logits(original, tokens)).abs().max().item()
    assert diff <= 1e-5, diff


@pytest.mark.parametrize("cls", [NoScaling, SoftmaxOverQueries])
def test_wrong_class_gives_other_logits(cls):
    assert not check_attention(cls).passed
    original = _transformer()
    tokens = _tokens(original)
    diff = (_logits(with_attention(original, cls), tokens) - _logits(original, tokens)).abs().max().item()
    assert diff > 1e-3, diff


def test_original_is_untouched_and_random_stream_kept():
    original = _transformer()
    before = {k: v.clone() for k, v in original.state_dict().items()}
    modules = [block.Attention for block in original.blocks]
    torch.manual_seed(123)
    want = torch.rand(3)
    torch.manual_seed(123)
    yours = with_attention(original, EinsumAttention)
    assert torch.equal(torch.rand(3), want)                  # the caller's random stream
    assert [block.Attention for block in original.blocks] == modules
    assert all(torch.equal(v, original.state_dict()[k]) for k, v in before.items())
    with torch.no_grad():                                     # the copy's weights are its own
        yours.blocks[0].Attention.query.weight.zero_()
    assert torch.equal(original.blocks[0].Attention.qkv.weight, before["blocks.0.Attention.qkv.weight"])


def test_training_mode_is_kept():
    original = _transformer().train()
    yours = with_attention(original, EinsumAttention)
    assert yours.training and all(block.Attention.training for block in yours.blocks)


def test_attention_weights_only_from_a_class_that_returns_them():
    original = _transformer()
    tokens = _tokens(original)
    with torch.no_grad():
        logits, maps = with_attention(original, MultiHeadAttention)(tokens, return_attention=True)
        want, want_maps = original(tokens, return_attention=True)
        assert (logits - want).abs().max().item() <= 1e-5 and len(maps) == len(want_maps)
        with pytest.raises(ValueError, match="returns no attention weights"):
            with_attention(original, EinsumAttention)(tokens, return_attention=True)


def test_a_class_that_cannot_hold_the_weights_is_refused():
    with pytest.raises(ValueError, match="no bias"):
        with_attention(_transformer(), NoBias)


def test_load_attention_weights_between_layouts():
    torch.manual_seed(0)
    source, x = MultiHeadAttention(32, 4, 0.0).eval(), torch.randn(2, 5, 32)
    target = load_attention_weights(EinsumAttention(32, 4, 0.0).eval(), source)
    back = load_attention_weights(MultiHeadAttention(32, 4, 0.0).eval(), target)
    with torch.no_grad():
        assert (target(x) - source(x)).abs().max().item() <= 1e-6
        assert torch.equal(back(x), source(x))


def test_bundled_transformer_same_predictions():
    model_files = pytest.importorskip("labcore.model_files")
    try:
        original = model_files.load_bundled_transformer()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    tokens = _tokens(original, batch=2)
    tokens[:, ::2] = original.mask_token_id                  # half the tokens masked
    want = _logits(original, tokens)
    got = _logits(with_attention(original, EinsumAttention), tokens)
    assert (got - want).abs().max().item() <= 1e-4           # logits of size ~10: fused vs explicit kernels
    assert torch.equal(got.argmax(-1), want.argmax(-1))


def test_reference_encode_to_z_is_not_the_students():
    """Notebook 00's stand-in for the student's encode_to_z (exercise 1) until theirs passes: labcore's
    solution, so its checker gives no points for it."""
    from labcore.checkers import check_encode_to_z
    from labcore.checkers.tokens import reference_encode_to_z

    assert check_encode_to_z(reference_encode_to_z).mistakes == ["encode.uses_reference"]
