"""Helpers shared by the test files: the tiny random models (K=64 codes, 16x16 tokens, a 1-layer
transformer: fast on a 2-core CPU, same shapes and code paths as the real ones). Import them with
``from shared_fixtures import ...`` (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

TINY_K = 64


def tiny_vqgan_config(latent_dim: int = 8, K: int = TINY_K):
    from labcore.vqgan import VQGANConfig

    return VQGANConfig(enc_channels=[32, 32, 32, 32], dec_channels=[32, 32, 32], latent_dim=latent_dim,
                       num_codebook_vectors=K)


def tiny_transformer_config(K: int = TINY_K, **overrides):
    from labcore.transformer import TransformerConfig

    return TransformerConfig(**{"num_codebook_vectors": K, "dim": 32, "n_layers": 1, "hidden_dim": 64,
                                "num_heads": 2, **overrides})


def tiny_vqgan(seed: int = 0, **config):
    import torch

    from labcore.vqgan import VQGAN

    torch.manual_seed(seed)
    return VQGAN(tiny_vqgan_config(**config)).eval()


def tiny_transformer(seed: int = 0, **config):
    import torch

    from labcore.transformer import BidirectionalTransformer

    torch.manual_seed(seed)
    return BidirectionalTransformer(tiny_transformer_config(**config)).eval()


# Fixtures of the figure tests (tests/test_viz.py, tests/test_checkers_pipeline_decoding.py): a test
# file takes them with ``from shared_fixtures import close_figures, maskgit, test_set``.

@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def maskgit():
    """The tiny random MaskGit (a 2-layer transformer), in eval mode."""
    from labcore.maskgit import MaskGit
    return MaskGit(tiny_vqgan(), tiny_transformer(n_layers=2)).eval()


@pytest.fixture(scope="module")
def test_set():
    """The bundled emoji64 test set."""
    from labcore.data import InpaintingTestSet
    return InpaintingTestSet()
