"""Stage 1: the course's VQGAN format, the bundled emoji64 tokenizer, and train-vqgan / eval-vqgan."""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from labcore.__main__ import main
from labcore.cli.train_vqgan import add_arguments as add_train_vqgan_arguments, train_from_args as train
from labcore.data import InpaintingTestSet
from labcore.metrics import psnr, ssim
from labcore.model_files import load_bundled_vqgan, load_config_normalization, load_vqgan, read_vqgan_config
from labcore.paths import BUNDLED_VQGAN_CONFIG, BUNDLED_VQGAN_WEIGHTS
from labcore.training import evaluate_test_set, write_vqgan_config as write_config
from labcore.vqgan import VQGAN, VQGANConfig

from shared_fixtures import tiny_vqgan_config

LAB = Path(__file__).resolve().parents[2] / "shared" / "lab-format"
needs_lab = pytest.mark.skipif(not LAB.is_dir(), reason=f"course format fixtures not found at {LAB} "
                                                        "(../shared/lab-format beside the repo)")

# a model small enough for a few CPU training steps in a test
TINY = replace(tiny_vqgan_config(latent_dim=16, K=32), enc_res_blocks=1, dec_res_blocks=1)


def train_argv(out: Path, config: Path, *extra: str) -> list[str]:
    return ["--run-dir", str(out), "--config", str(config), "--limit", "32", "--val-limit", "8",
            "--batch-size", "4", "--eval-every", "1000", "--no-progress", "--threads", "1", *extra]


def train_args(out: Path, config: Path, *extra: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_train_vqgan_arguments(p)
    return p.parse_args(train_argv(out, config, *extra))


def read_log(path: Path) -> dict[int, dict]:
    with open(path, newline="") as f:
        return {int(r["step"]): r for r in csv.DictReader(f)}


# ----------------------------------------------------------------------------- course format

@needs_lab
def test_official_config_has_the_course_key_layout():
    expected = json.loads((LAB / "vqgan_lab_keys.json").read_text())
    with torch.device("meta"):  # 70M parameters: shapes only
        model = VQGAN(VQGANConfig())
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == expected


@needs_lab
def test_tiny_fixture_reproduces_the_course_template():
    model = load_vqgan(LAB / "vqgan_tiny.yml", LAB / "vqgan_tiny.pt")
    io = torch.load(LAB / "vqgan_tiny_io.pt", weights_only=True)
    indices = model.encode_to_indices(io["image"])
    assert indices.shape == (2, 16, 16) and indices.dtype == torch.long
    assert torch.equal(indices.view(2, 256), io["indices"])
    decoded = model.decode_indices(io["indices"])
    torch.testing.assert_close(decoded, io["decoded"], atol=1e-4, rtol=0)


@needs_lab
def test_mismatched_checkpoint_names_the_bad_keys(tmp_path):
    cfg = write_config(TINY, tmp_path / "tiny.yml")
    with pytest.raises(ValueError, match=r"vqgan_tiny\.pt.*does not match(.|\n)*(missing|mis-shaped)"):
        load_vqgan(cfg, LAB / "vqgan_tiny.pt")


@needs_lab
def test_stage2_checkpoint_given_as_stage1_says_so():
    with pytest.raises(ValueError, match="transformer_tiny.pt is a stage-2 transformer checkpoint"):
        load_vqgan(LAB / "vqgan_tiny.yml", LAB / "transformer_tiny.pt")
    with pytest.raises(ValueError, match="stage-2 transformer config"):
        load_vqgan(LAB / "transformer_tiny.yml", LAB / "vqgan_tiny.pt")


def test_non_tensor_pickle_is_refused_weights_only(tmp_path):
    bad = tmp_path / "evil.pt"
    torch.save({"encoder.model.0.weight": argparse.Namespace(x=1)}, bad)
    with pytest.raises(ValueError, match="evil.pt"):
        load_vqgan(write_config(TINY, tmp_path / "tiny.yml"), bad)


def test_config_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("model_param:\n  latent_dim: 16\n  codebook_size: 8\n")
    with pytest.raises(ValueError, match=r"bad\.yml.*codebook_size"):
        read_vqgan_config(bad)
    with pytest.raises(ValueError, match="multiples of 32"):
        VQGAN(VQGANConfig(enc_channels=[16, 16, 16, 16], dec_channels=[16, 16, 16]))


# ----------------------------------------------------------------------------- model API

def test_encode_decode_shapes_and_straight_through_round_trip():
    torch.manual_seed(0)
    model = VQGAN(TINY).eval()
    x = torch.randn(3, 3, 64, 64)
    indices = model.encode_to_indices(x)
    assert indices.shape == (3, 16, 16) and indices.dtype == torch.long
    assert 0 <= indices.min() and indices.max() < TINY.num_codebook_vectors
    images = model.decode_indices(indices)
    assert images.shape == (3, 3, 64, 64)
    torch.testing.assert_close(model.decode_indices(indices.flatten(1)), images)  # (B,256) works too
    decoded, st_indices, vq_loss = model(x)  # the training pass decodes exactly the quantised codes
    assert torch.equal(st_indices, indices) and vq_loss.ndim == 0 and vq_loss > 0
    torch.testing.assert_close(decoded, images, atol=2e-4, rtol=0)  # z + (z_q - z) rounds a little
    # each index is the nearest codebook vector to the encoder output
    z = model.quant_conv(model.encoder(x)).permute(0, 2, 3, 1).reshape(-1, TINY.latent_dim)
    assert torch.equal(torch.cdist(z, model.codebook.embedding.weight).argmin(1), indices.flatten())
    # straight-through: gradients reach the encoder through the quantiser
    model.train()
    model(x)[0].mean().backward()
    assert model.encoder.model[0].weight.grad.abs().sum() > 0


def test_bundled_tokenizer_loads_and_reconstructs_test_images(tmp_path):
    assert BUNDLED_VQGAN_WEIGHTS.is_file() and BUNDLED_VQGAN_WEIGHTS.stat().st_size <= 20 * 2 ** 20
    model = load_bundled_vqgan()
    cfg = model.config
    assert cfg.img_resolution // 2 ** cfg.num_down == 16
    assert load_config_normalization(BUNDLED_VQGAN_CONFIG) is not None
    m = evaluate_test_set(BUNDLED_VQGAN_CONFIG, BUNDLED_VQGAN_WEIGHTS, limit=50, out=tmp_path)
    assert m["psnr"] > 21.0, m  # an untrained VQGAN scores ~10 dB; the full test set: see the metrics JSON
    test = InpaintingTestSet()
    images = torch.stack([test.target(i) for i in range(32)])  # (32,3,64,64)
    indices = model.encode_to_indices(images)
    again = model.encode_to_indices(model.decode_indices(indices))  # encode -> decode -> encode
    # most tokens survive the round trip (0.66 measured; tokens of other images agree ~0.09)
    assert (again == indices).float().mean() > 0.5


def test_psnr_and_ssim_on_known_cases():
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 0.8
    torch.testing.assert_close(psnr(x + 0.1, x), torch.full((2,), 20.0), atol=1e-3, rtol=0)
    torch.testing.assert_close(ssim(x, x), torch.ones(2))
    noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert (ssim(noisy, x) < 0.9).all() and (ssim(x * 0.5 + 0.2, x) < ssim(x * 0.9 + 0.04, x)).all()


# ----------------------------------------------------------------------------- training

def test_a_few_training_steps_lower_the_loss(tmp_path):
    cfg = write_config(TINY, tmp_path / "tiny.yml")
    summary = train(train_args(tmp_path / "run", cfg, "--steps", "12", "--lr", "3e-3", "--warmup-steps", "3",
                               "--no-augment", "--restart-every", "8"))
    log = read_log(tmp_path / "run" / "log.csv")
    first = sum(float(log[s]["loss"]) for s in (1, 2, 3)) / 3
    last = sum(float(log[s]["loss"]) for s in (10, 11, 12)) / 3
    assert last < 0.7 * first, (first, last)
    assert summary["step"] == 12 and (tmp_path / "run" / "best.pt").is_file()
    assert 0 < float(log[12]["usage"]) <= 1 and float(log[12]["perplexity"]) > 1
    # best.pt is a plain state dict that loads with the run's yml
    load_vqgan(tmp_path / "run" / "vqgan.yml", tmp_path / "run" / "best.pt")


def test_resume_gives_the_same_next_steps_as_an_uninterrupted_run(tmp_path):
    cfg = write_config(TINY, tmp_path / "tiny.yml")
    common = ("--steps", "4", "--warmup-steps", "2", "--restart-every", "2", "--disc-start", "2", "--disc-width", "8",
              "--save-every", "1")
    train(train_args(tmp_path / "straight", cfg, *common))  # PatchGAN from step 2, EMA codebook, restarts
    train(train_args(tmp_path / "split", cfg, *common, "--stop-after", "2"))
    assert read_log(tmp_path / "split" / "log.csv").keys() == {1, 2}
    with pytest.raises(FileExistsError, match="--resume"):
        train(train_args(tmp_path / "split", cfg, *common))
    train(train_args(tmp_path / "split", cfg, *common, "--resume"))
    a, b = read_log(tmp_path / "straight" / "log.csv"), read_log(tmp_path / "split" / "log.csv")
    assert a.keys() == b.keys() == {1, 2, 3, 4}
    for step in (3, 4):
        for field in ("loss", "d_loss", "usage", "lr"):
            assert a[step][field] == b[step][field], (step, field)


def test_nan_loss_stops_cleanly_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    cfg = write_config(TINY, tmp_path / "tiny.yml")
    argv = train_argv(tmp_path / "run", cfg, "--steps", "20", "--lr", "1e30", "--warmup-steps", "1",
                      "--save-every", "1", "--grad-clip", "1e30")
    assert main(["train-vqgan", *argv]) == 2  # NonFiniteLoss -> `labcore train-vqgan: error: ...`, exit 2
    message = capsys.readouterr().err
    assert "loss is nan" in message.lower() or "loss is inf" in message.lower()
    last = torch.load(tmp_path / "run" / "train_state.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in last["model"].values())
    assert last["step"] >= 1


@needs_lab
def test_eval_vqgan_writes_metrics_and_grid(tmp_path):
    m = evaluate_test_set(LAB / "vqgan_tiny.yml", LAB / "vqgan_tiny.pt", limit=8, batch_size=4, out=tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["n_images"] == 8 and (tmp_path / "recon_grid.png").is_file()
    assert 0 < saved["codebook_usage"] <= 1 and 1 <= saved["perplexity"] <= 64
    assert saved["psnr"] == pytest.approx(m["psnr"]) and 0 < saved["ssim"] < 1


# ----------------------------------------------------------------------------- the VQ losses (notebook 00)

def test_vq_terms_are_one_distance_weighted_twice():
    """Codebook and commitment terms: the same ||z - e||^2, the second times beta; z's size beside it."""
    from labcore import quantization

    vqgan, images = VQGAN(TINY).eval(), torch.randn(3, 3, 64, 64)
    terms = quantization.vq_terms(vqgan, images)
    with torch.no_grad():
        _, _, loss = vqgan.encode(images)                                   # the model's own VQ loss
    assert terms["codebook"] + terms["commitment"] == pytest.approx(loss.item(), rel=1e-5)
    assert terms["commitment"] == pytest.approx(TINY.beta * terms["codebook"])
    assert terms["relative_distance"] == pytest.approx(terms["codebook"] / terms["z_squared"])


def test_straight_through_copies_the_decoders_gradient_and_nothing_else_reaches_z():
    from labcore import quantization

    torch.manual_seed(0)
    vqgan, images = VQGAN(TINY).eval(), torch.randn(2, 3, 64, 64)
    grads = quantization.straight_through(vqgan, images)
    assert grads["on_z"].abs().max() > 0
    # equal up to the rounding of z + (e - z) in the forward pass (this random z is 40x larger than its codes)
    assert (grads["on_z"] - grads["on_e"]).abs().max() <= 1e-4 * grads["on_z"].abs().max()
    assert grads["without_estimator"] is None
    assert all(p.grad is None for p in vqgan.parameters())                  # nothing accumulated in the model


def test_commitment_drift_without_beta_walks_away_on_the_bundled_tokenizer():
    """Notebook 00's lesson on two test images: beta pulls z back to its code, beta = 0 lets it drift,
    and the trained tokenizer's weights are left as they were."""
    from labcore import quantization

    vqgan = load_bundled_vqgan()
    before = {k: v.clone() for k, v in vqgan.state_dict().items()}
    test_set = InpaintingTestSet()
    images = torch.stack([test_set[i]["target"] for i in (0, 188)])
    kept, free = (quantization.commitment_drift(vqgan, images, beta, steps=12) for beta in (0.25, 0.0))
    assert len(kept.distance) == len(free.changed) == 12 and kept.changed[0] == free.changed[0] == 0
    assert kept.distance[-1] < kept.distance[0] < free.distance[-1]
    assert all(b > a for a, b in zip(free.distance, free.distance[1:]))
    assert all(torch.equal(v, before[k]) for k, v in vqgan.state_dict().items())
