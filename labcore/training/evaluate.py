"""How good a model is on held-out data, for both stages.

- ``evaluate``: the transformer's validation loss (plain cross-entropy on masked tokens) and
  masked-token accuracy at fixed mask ratios 0.25 / 0.5 / 0.75, with fixed masks, so every
  evaluation of every run sees the same problems (``labcore train``'s val.csv, ``eval-transformer``);
- ``evaluate_images`` / ``evaluate_test_set``: the VQGAN's reconstruction PSNR / SSIM and
  codebook usage (``labcore train-vqgan``'s val PSNR, ``eval-vqgan``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image
from tqdm.auto import tqdm

from labcore import maskgit
from labcore.data import InpaintingTestSet, Normalization, normalization_for
from labcore.metrics import code_stats, psnr, ssim
from labcore.model_files import load_vqgan
from labcore.paths import EMOJI64_DIR, RESULTS_DIR
from labcore.runtime import atomic_write_text, count_parameters, pick_device
from labcore.training.precision import autocast

VAL_RATIOS = (0.25, 0.5, 0.75)


def constant_ratio(ratio: float):
    """A 'schedule' that always masks ``ratio`` of the tokens (validation at fixed ratios)."""
    return lambda u: u * 0 + ratio


@torch.no_grad()
def evaluate(model: torch.nn.Module, tokens: torch.Tensor, mask_token_id: int, ratios=VAL_RATIOS,
             batch_size: int = 100, seed: int = 1234, bf16: bool = False, progress: bool = True) -> dict:
    """Validation loss (plain cross-entropy on masked tokens) and masked-token accuracy at fixed
    mask ratios; masks are drawn from ``seed``, so every evaluation sees the same masks."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    metrics = {}
    for ratio in ratios:
        generator = torch.Generator().manual_seed(seed + int(round(ratio * 1000)))
        loss_sum = acc_sum = 0.0
        for start in tqdm(range(0, len(tokens), batch_size), desc=f"val r={ratio}", disable=not progress, leave=False):
            batch = tokens[start:start + batch_size].to(device)                 # (b, 256)
            with autocast(device, bf16):
                out = maskgit.mvtm_loss(model, batch, mask_token_id, constant_ratio(ratio), generator=generator)
            loss_sum += out["loss"].item() * len(batch)
            acc_sum += out["accuracy"].item() * len(batch)
        metrics[f"loss@{ratio}"] = loss_sum / len(tokens)
        metrics[f"accuracy@{ratio}"] = acc_sum / len(tokens)
    metrics["loss"] = sum(metrics[f"loss@{r}"] for r in ratios) / len(ratios)
    metrics["accuracy"] = sum(metrics[f"accuracy@{r}"] for r in ratios) / len(ratios)
    model.train(was_training)
    return metrics


@torch.no_grad()
def evaluate_images(model, images: torch.Tensor, norm: Normalization, batch_size: int = 100,
                    device=torch.device("cpu"), progress: bool = True, desc: str = "eval-vqgan") -> dict:
    """PSNR / SSIM in [0,1] pixel space, code usage and perplexity, of encode -> decode_indices."""
    model.eval()
    psnrs, ssims, recons = [], [], []
    counts = torch.zeros(model.config.num_codebook_vectors, dtype=torch.long)       # (K,)
    for i in tqdm(range(0, len(images), batch_size), desc=desc, leave=False, disable=not progress):
        x = images[i:i + batch_size].to(device)                                      # (b,3,64,64)
        idx = model.encode_to_indices(x)                                             # (b,16,16)
        y = model.decode_indices(idx).float()                                        # (b,3,64,64)
        x01, y01 = norm.denormalize(x.cpu()), norm.denormalize(y.cpu())
        psnrs.append(psnr(y01, x01))
        ssims.append(ssim(y01, x01))
        counts += torch.bincount(idx.flatten().cpu(), minlength=model.config.num_codebook_vectors)
        if len(recons) < 1:
            recons.append(y01[:16])
    usage, perplexity = code_stats(counts)
    return {"psnr": float(torch.cat(psnrs).mean()), "ssim": float(torch.cat(ssims).mean()),
            "codebook_usage": usage, "perplexity": perplexity, "n_images": len(images),
            "recon_examples": recons[0]}


def save_grid(originals01: torch.Tensor, recons01: torch.Tensor, path: Path, n: int = 16) -> Path:
    """Rows of 8: originals, then their reconstructions underneath."""
    n = min(n, len(originals01))
    rows = []
    for i in range(0, n, 8):
        rows += [originals01[i:i + 8], recons01[i:i + 8]]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(make_grid(torch.cat(rows), nrow=8, padding=2, pad_value=1.0), path)
    return path


def evaluate_test_set(config: str | Path, weights: str | Path, root: str | Path = EMOJI64_DIR,
                      out: str | Path = RESULTS_DIR / "vqgan_eval", batch_size: int = 100,
                      limit: int | None = None, device: str = "auto", progress: bool = True) -> dict:
    """Reconstruct the test ground truth (normalised the way the tokenizer was trained,
    ``labcore.data.normalization_for``) and write OUT/metrics.json + OUT/recon_grid.png; returns
    the metrics."""
    device = pick_device(device)
    t0 = time.perf_counter()
    model = load_vqgan(config, weights, device)
    load_seconds = time.perf_counter() - t0
    test = InpaintingTestSet(root, normalization_for(model.normalization, root))
    n = len(test) if limit is None else min(limit, len(test))
    if test.target(0) is None:
        raise FileNotFoundError(f"{root}: the test set has no ground truth (ground_truth/ or test_gt.csv)")
    images = torch.stack([test.target(i) for i in tqdm(range(n), desc="loading test ground truth", leave=False,
                                                       disable=not progress)])
    stats = evaluate_images(model, images, test.normalization, batch_size, device, progress)
    out = Path(out)
    grid = save_grid(test.normalization.denormalize(images[:16]), stats.pop("recon_examples"), out / "recon_grid.png")
    weights = Path(weights)
    metrics = {**stats, "config": str(config), "weights": str(weights),
               "weights_mb": round(weights.stat().st_size / 2 ** 20, 3), "parameters": count_parameters(model),
               "load_seconds": round(load_seconds, 3), "test_root": str(root), "recon_grid": str(grid),
               "model_param": model.config.to_dict(),
               "normalization_trained": None if model.normalization is None else asdict(model.normalization)}
    atomic_write_text(json.dumps(metrics, indent=2), out / "metrics.json")
    return metrics
