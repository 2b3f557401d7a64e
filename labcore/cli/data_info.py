"""``labcore data-info``: check a dataset folder (bundled emoji64 or the course layout) and
print its counts. Every image is decoded in full, so a truncated file is named here rather
than halfway through a training run."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from labcore.data import InpaintingTestSet, emoji64_dataset, latent_mask_from_pixels
from labcore.dataset_files import check_images, find_image_root, read_mask
from labcore.paths import EMOJI64_DIR


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", nargs="?", default=str(EMOJI64_DIR),
                        help="dataset folder: data/emoji64 (default) or the course's lab5_dataset")


def run(args: argparse.Namespace) -> int:
    root = Path(args.root)
    images_root = find_image_root(root)
    for split in ("train", "val"):
        if (images_root / split).is_dir():
            ds = emoji64_dataset(split, root)
            check_images(ds.files)
            print(f"{split:5s} {len(ds):5d} images  {images_root / split}")
    test = InpaintingTestSet(root)
    check_images(test.image_files + (test.gt_files or []))
    masks = torch.stack([read_mask(p) for p in test.mask_files])           # (N,1,64,64)
    missing = 1 - masks.mean(dim=(1, 2, 3))                                 # (N,)
    tokens = latent_mask_from_pixels(masks).float().mean(dim=(1, 2))        # (N,)
    print(f"test  {len(test):5d} masked images + masks, ground truth: {test.gt_source or 'none'}")
    print(f"      missing pixels {missing.min():.1%} .. {missing.max():.1%} (mean {missing.mean():.1%}); "
          f"masked tokens mean {tokens.mean():.1%}")
    print(f"      test normalisation mean={test.normalization.mean} std={test.normalization.std}")
    return 0
