"""Pictures of images and tokens (notebooks 00-05): grids of images, labelled rows, the 16x16 token
maps of images and how often each codebook entry is used."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from torchvision.utils import make_grid

from labcore.metrics import code_stats

from .style import bare, hwc, to_unit


def image_grid(images: torch.Tensor, nrow: int = 8, normalization=None, padding: int = 2,
               pad_value: float = 0.8) -> torch.Tensor:
    """``torchvision.utils.make_grid`` of (B, 3, H, W) images -> (3, H', W') in [0, 1]."""
    return make_grid(to_unit(images, normalization), nrow=nrow, padding=padding, pad_value=pad_value)


def show_images(images: torch.Tensor, nrow: int = 8, normalization=None, title: str | None = None,
                row_labels: Sequence[str] | None = None, scale: float = 1.0, padding: int = 2) -> Figure:
    """A grid of images (``nrow`` per row), with an optional label left of each row."""
    grid = image_grid(images, nrow=nrow, normalization=normalization, padding=padding)  # (3, H', W')
    rows = math.ceil(len(images) / nrow)
    height = images.shape[-2]
    fig = Figure(figsize=(scale * 0.9 * min(nrow, len(images)) + (1.2 if row_labels else 0.2),
                          scale * 0.9 * rows + (0.5 if title else 0.1)))
    ax = fig.subplots()
    ax.imshow(hwc(grid), interpolation="nearest")
    bare(ax)
    if row_labels:
        if len(row_labels) != rows:
            raise ValueError(f"row_labels: {len(row_labels)} labels for {rows} rows of images")
        ax.set_yticks([padding + (height + padding) * (i + 0.5) for i in range(rows)], list(row_labels))
        ax.tick_params(length=0)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def show_image_rows(rows: dict[str, torch.Tensor], normalization=None, title: str | None = None,
                    scale: float = 1.0) -> Figure:
    """Rows of images of equal length, labelled: e.g. {"masked": x, "inpainted": y, "ground truth": z}."""
    lengths = {len(v) for v in rows.values()}
    if len(lengths) != 1:
        raise ValueError(f"show_image_rows: every row needs the same number of images, got "
                         f"{ {k: len(v) for k, v in rows.items()} }")
    n = lengths.pop()
    images = torch.cat([to_unit(v, normalization) for v in rows.values()])      # (R*n, 3, H, W)
    return show_images(images, nrow=n, title=title, row_labels=list(rows), scale=scale)


def plot_token_maps(indices: torch.Tensor, num_codes: int, images: torch.Tensor | None = None,
                    normalization=None, title: str | None = None) -> Figure:
    """Each image's 16x16 token map (codebook id as a colour), under the image when given."""
    indices = indices.detach().cpu().reshape(len(indices), *indices.shape[-2:])  # (B, 16, 16)
    n = len(indices)
    rows = 2 if images is not None else 1
    fig = Figure(figsize=(1.3 * n, 1.4 * rows + 0.4))
    axes = fig.subplots(rows, n, squeeze=False)
    for i in range(n):
        if images is not None:
            axes[0, i].imshow(hwc(to_unit(images[i], normalization)), interpolation="nearest")
            bare(axes[0, i])
        ax = axes[rows - 1, i]
        ax.imshow(indices[i].numpy(), cmap="nipy_spectral", vmin=0, vmax=num_codes - 1, interpolation="nearest")
        ax.set_xlabel(f"{len(indices[i].unique())} distinct", fontsize=7)
        bare(ax)
    axes[rows - 1, 0].set_ylabel("token ids", fontsize=8)
    fig.suptitle(title or f"16x16 token maps (codebook of {num_codes})", fontsize=10)
    fig.tight_layout()
    return fig


def plot_codebook_usage(indices: torch.Tensor, num_codes: int, title: str | None = None) -> Figure:
    """How often each codebook entry is used, most used first; the title gives the share of codes
    used and the perplexity exp(H(p)) of the usage distribution."""
    counts = torch.bincount(indices.detach().cpu().flatten(), minlength=num_codes).double()  # (K,)
    _, perplexity = code_stats(counts)
    used = int((counts > 0).sum())
    fig = Figure(figsize=(7, 2.8))
    ax = fig.subplots()
    ax.bar(np.arange(num_codes), counts.sort(descending=True).values.numpy(), width=1.0, color="tab:blue")
    ax.set_xlabel("codebook entries, most used first")
    ax.set_ylabel("tokens")
    ax.set_xlim(-0.5, num_codes - 0.5)
    ax.set_title(title or f"{used} of {num_codes} codes used ({used / num_codes:.0%}), perplexity {perplexity:.0f}")
    fig.tight_layout()
    return fig
