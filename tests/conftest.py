from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "lab-format"


@pytest.fixture(scope="session")
def lab_format() -> Path:
    """../shared/lab-format (the course's checkpoint fixtures), or skip."""
    if not SHARED.is_dir():
        pytest.skip(f"course fixtures not found at {SHARED} (the shared/ folder beside the repo)")
    return SHARED


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny-model tests: on a small, busy machine two threads
    fighting over the cores are slower than one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- tiny models
# One definition of the tiny random models the tests build (K=64 codes, 16x16 tokens, a 1-layer
# transformer): fast on a 2-core CPU, same shapes and code paths as the real ones.
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


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> list[str]:
    """A tiny random VQGAN + transformer written as course-style yml + plain state dicts; the
    ``labcore inpaint`` flags that load them."""
    import torch
    import yaml

    folder = tmp_path_factory.mktemp("tiny_models")
    vqgan, transformer = tiny_vqgan(), tiny_transformer()
    (folder / "VQGAN.yml").write_text(yaml.safe_dump({"model_param": vqgan.config.to_dict()}))
    torch.save(vqgan.state_dict(), folder / "VQGAN.pt")
    (folder / "MaskGit.yml").write_text(yaml.safe_dump(transformer.config.to_course_dict()))
    torch.save(transformer.state_dict(), folder / "transformer.pt")
    return ["--vqgan-config", str(folder / "VQGAN.yml"), "--vqgan-weights", str(folder / "VQGAN.pt"),
            "--transformer-config", str(folder / "MaskGit.yml"),
            "--transformer-weights", str(folder / "transformer.pt")]
