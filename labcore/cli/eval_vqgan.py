"""``labcore eval-vqgan``: PSNR / SSIM / codebook usage of a VQGAN on the test ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from labcore.cli import positive_int
from labcore.paths import BUNDLED_VQGAN_CONFIG, BUNDLED_VQGAN_WEIGHTS, EMOJI64_DIR, RESULTS_DIR
from labcore.training.evaluate import evaluate_test_set


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=str(BUNDLED_VQGAN_CONFIG), help="VQGAN yml (default: the bundled tokenizer's)")
    p.add_argument("--weights", default=str(BUNDLED_VQGAN_WEIGHTS),
                   help="VQGAN weights: plain state dict or a train-vqgan last.pt")
    p.add_argument("--data-root", default=str(EMOJI64_DIR), help="dataset root with the test ground truth")
    p.add_argument("--out", default=str(RESULTS_DIR / "vqgan_eval"), help="folder for metrics.json and recon_grid.png")
    p.add_argument("--batch-size", type=positive_int, default=100)
    p.add_argument("--limit", type=positive_int, default=None, help="evaluate only the first N test images")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs of background runs)")


def run(args: argparse.Namespace) -> int:
    m = evaluate_test_set(args.config, args.weights, args.data_root, args.out, args.batch_size, args.limit, args.device,
                          progress=not args.no_progress)
    print(f"eval-vqgan on {m['n_images']} test images: PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, "
          f"codes used {100 * m['codebook_usage']:.1f}%, perplexity {m['perplexity']:.1f}\n"
          f"  {Path(args.out) / 'metrics.json'}, {m['recon_grid']}")
    return 0
