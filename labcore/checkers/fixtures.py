"""The one factory of tiny models, for the checkers and the tests: small enough for a CPU in
milliseconds, the same classes and code paths as the real ones (``labcore.vqgan``,
``labcore.transformer``), built from parameters under their own seed (the caller's random stream
is left as it was). The defaults are the checkers' sizes; ``tests/shared_fixtures.py`` passes the
tests' own. ``FixedLogits`` is a stub transformer whose logits are made by hand, so that each
mistake of a decoding step shows."""

from __future__ import annotations

import torch
from torch import nn

from labcore.transformer import BidirectionalTransformer, TransformerConfig
from labcore.vqgan import VQGAN, VQGANConfig


def tiny_vqgan_config(K: int = 32, latent_dim: int = 8, **overrides) -> VQGANConfig:
    """A VQGAN of four 32-channel levels (64x64 images to 16x16 tokens unless ``overrides`` say
    otherwise) with K codebook vectors of size ``latent_dim``."""
    return VQGANConfig(**{"enc_channels": [32, 32, 32, 32], "dec_channels": [32, 32, 32], "latent_dim": latent_dim,
                          "num_codebook_vectors": K, **overrides})


def tiny_transformer_config(K: int = 8, N: int = 16, **overrides) -> TransformerConfig:
    """A one-layer bidirectional transformer over N tokens and K codes (+ the mask token), without
    dropout unless ``overrides`` set it: the same input always gives the same output."""
    return TransformerConfig(**{"num_image_tokens": N, "num_codebook_vectors": K, "dim": 16, "n_layers": 1,
                                "hidden_dim": 32, "num_heads": 2, "dropout": 0.0, "attn_drop": 0.0, **overrides})


def tiny_vqgan(K: int = 32, img_resolution: int = 64, latent_resolution: int = 16, seed: int = 0,
               spread_codebook: bool = True, **config) -> VQGAN:
    """A random VQGAN (eval mode) of ``tiny_vqgan_config(K, **config)``. ``spread_codebook``: its K
    codebook vectors are encoder outputs of random images, so that the nearest-codebook ids of an
    image are spread over the whole codebook (a freshly initialised codebook maps most tokens to a
    handful of ids)."""
    cfg = tiny_vqgan_config(K, img_resolution=img_resolution, latent_resolution=latent_resolution, **config)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        vqgan = VQGAN(cfg).eval()
        if spread_codebook:
            z = vqgan.quant_conv(vqgan.encoder(torch.randn(8, 3, img_resolution, img_resolution)))  # (8, D, h, w)
            z = z.permute(0, 2, 3, 1).reshape(-1, cfg.latent_dim)                                  # (8*h*w, D)
            vqgan.codebook.embedding.weight.copy_(z[torch.randperm(len(z))[:K]])                  # (K, D)
    return vqgan


def tiny_transformer(K: int = 8, N: int = 16, seed: int = 0, output_bias_std: float = 0.0,
                     **config) -> BidirectionalTransformer:
    """A random transformer (eval mode) of ``tiny_transformer_config(K, N, **config)``.

    Freshly initialised, its predictions are almost uniform (every loss is about log(K + 1)); an
    ``output_bias_std`` > 0 draws the output bias table (N, K+1) from N(0, std^2), so that the
    losses of different batches differ clearly (a mean over batches is then told from one batch's)."""
    cfg = tiny_transformer_config(K, N, **config)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        model = BidirectionalTransformer(cfg).eval()
        if output_bias_std > 0:
            model.bias.normal_(0.0, output_bias_std)                           # (N, K+1)
    return model


class FixedLogits(nn.Module):
    """A stand-in transformer that returns hand-made logits (B, N, K+1), whatever its input, and
    records the token maps it was given (``seen``). It holds one unused parameter, so that
    ``next(transformer.parameters()).device`` (notebook 02's idiom) works as on a real model."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits
        self.anchor = nn.Parameter(torch.zeros(()), requires_grad=False)      # () never used: a device to read
        self.seen: list[torch.Tensor] = []

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self.seen.append(tokens.detach().clone())
        return self.logits.to(tokens.device).clone()                          # (B, N, K+1)
