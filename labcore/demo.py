"""``make demo``: the lab's main job on the bundled data and weights.

Until the stage-2 transformer is bundled, the demo shows the bundled data: a grid of test inputs,
their masks (and the latent 16x16 token mask the course's rule derives), the ground truth, and a
row of training images, written to ``results/demo/dataset_grid.png``.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import make_grid, save_image

from .data import InpaintingTestSet, emoji64_dataset, latent_mask_from_pixels
from .paths import EMOJI64_DIR, RESULTS_DIR


def dataset_grid(root: Path = EMOJI64_DIR, n: int = 8) -> torch.Tensor:
    """Rows: masked input, pixel mask, latent token mask (upsampled), ground truth, train images."""
    test = InpaintingTestSet(root)
    items = [test[i * (len(test) // n)] for i in range(n)]
    norm = test.normalization
    masked = torch.stack([norm.denormalize(it["image"]) for it in items])               # (n,3,64,64)
    masks = torch.stack([it["mask"] for it in items])                                    # (n,1,64,64)
    latent = latent_mask_from_pixels(masks).float().unsqueeze(1)                         # (n,1,16,16)
    latent_up = 1 - F.interpolate(latent, scale_factor=4, mode="nearest")                # (n,1,64,64) white = kept
    truth = torch.stack([norm.denormalize(it["target"]) for it in items])                # (n,3,64,64)
    train = emoji64_dataset("train", root)
    step = len(train) // n
    train_images = torch.stack([train.normalization.denormalize(train[i * step]) for i in range(n)])
    rows = [masked, masks.expand(-1, 3, -1, -1), latent_up.expand(-1, 3, -1, -1), truth, train_images]
    return make_grid(torch.cat(rows), nrow=n, padding=2, pad_value=0.5)                  # (3,H,W)


def add_arguments(parser) -> None:
    parser.add_argument("--out", default=str(RESULTS_DIR / "demo"), help="output folder")


def run(args) -> int:
    start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "dataset_grid.png"
    save_image(dataset_grid(), path)
    print(f"rows: masked input / pixel mask / latent token mask / ground truth / train images")
    print(f"wrote {path} in {time.perf_counter() - start:.1f} s")
    return 0
