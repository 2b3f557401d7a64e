"""Helpers shared by the test files: the tiny random models at the tests' sizes (K=64 codes, 16x16
tokens, a 1-layer transformer of width 32: fast on a 2-core CPU, same shapes and code paths as the
real ones), built by the one factory of tiny models, ``labcore.checkers.fixtures``. Import them
with ``from shared_fixtures import ...`` (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

TINY_K = 64
# the tests' transformer: 16x16 tokens, width 32, and the dropout of TransformerConfig's defaults
TINY_TRANSFORMER = {"N": 256, "dim": 32, "hidden_dim": 64, "dropout": 0.1, "attn_drop": 0.1}


def tiny_vqgan_config(latent_dim: int = 8, K: int = TINY_K):
    from labcore.checkers import fixtures  # lazy: collecting a test file that needs no model imports no torch

    return fixtures.tiny_vqgan_config(K, latent_dim)


def tiny_vqgan(seed: int = 0, **config):
    """A random VQGAN (eval mode) with a freshly initialised codebook; ``config``: K, latent_dim, ..."""
    from labcore.checkers import fixtures  # lazy: as above

    return fixtures.tiny_vqgan(**{"K": TINY_K, **config}, seed=seed, spread_codebook=False)


def tiny_transformer(seed: int = 0, **config):
    """A random transformer (eval mode); ``config``: K, N or TransformerConfig fields (n_layers=2, ...)."""
    from labcore.checkers import fixtures  # lazy: as above

    return fixtures.tiny_transformer(**{"K": TINY_K, **TINY_TRANSFORMER, **config}, seed=seed)


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
