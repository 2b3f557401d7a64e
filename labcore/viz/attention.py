"""Pictures of attention (notebook 01): the weights of each head as heat maps, and where one token
looks over the 16x16 grid in every layer and head of the transformer."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .style import bare, hwc, to_unit


def plot_attention_heads(weights: torch.Tensor, title: str | None = None, max_heads: int = 8) -> Figure:
    """Attention weights (heads, N, N) or (N, N) as heat maps, one per head: row i is how query
    token i spreads its attention over the keys (every row sums to 1)."""
    weights = weights.detach().float().cpu()
    weights = weights[None] if weights.dim() == 2 else weights                  # (H, N, N)
    if weights.dim() != 3:
        raise ValueError(f"plot_attention_heads: expected (heads, N, N) weights, got {tuple(weights.shape)}")
    heads = min(len(weights), max_heads)
    fig = Figure(figsize=(2.4 * heads + 0.8, 2.6))
    axes = fig.subplots(1, heads, squeeze=False)
    for h in range(heads):
        ax = axes[0, h]
        im = ax.imshow(weights[h].numpy(), cmap="viridis", vmin=0, vmax=float(weights.max()))
        ax.set_title(f"head {h}", fontsize=9)
        ax.set_xlabel("key")
        if h == 0:
            ax.set_ylabel("query")
    fig.colorbar(im, ax=axes[0, :].tolist(), shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _draw_query_image(ax, image: torch.Tensor, normalization, latent_mask: torch.Tensor | None,
                      side: int, query: tuple[int, int]) -> None:
    """The image column of ``plot_attention_maps``: masked tokens shaded, the query token boxed in red."""
    ax.imshow(hwc(to_unit(image, normalization)), interpolation="nearest")
    patch = image.shape[-1] // side
    if latent_mask is not None:
        shade = latent_mask.detach().cpu().reshape(side, side).float().numpy()  # (16, 16) 1 = masked
        ax.imshow(np.kron(shade, np.ones((patch, patch))), cmap="Greys", alpha=0.35 * (shade.max() > 0),
                  vmin=0, vmax=1, interpolation="nearest")
    qr, qc = query
    ax.add_patch(Rectangle((qc * patch - 0.5, qr * patch - 0.5), patch, patch, fill=False, ec="red", lw=1.5))
    bare(ax)


def plot_attention_maps(maps: Sequence[torch.Tensor], query: int | tuple[int, int], image: torch.Tensor | None = None,
                        normalization=None, index: int = 0, layers: Sequence[int] | None = None,
                        max_heads: int = 8, latent_mask: torch.Tensor | None = None,
                        title: str | None = None) -> Figure:
    """Where one token looks, in every layer and head of the transformer.

    ``maps``: the per-layer weights from ``transformer(tokens, return_attention=True)``, each
    (B, heads, N, N) with N = 16*16. ``query``: a token index or its (row, col). Row = layer;
    columns: the image (query token boxed in red, masked tokens shaded), each head's attention
    of that token over the 16x16 grid, and the mean over heads."""
    side = int(math.isqrt(maps[0].shape[-1]))
    q = query[0] * side + query[1] if isinstance(query, tuple) else int(query)
    if not 0 <= q < side * side:
        raise ValueError(f"query token {query} is outside the {side}x{side} grid")
    layers = list(range(len(maps))) if layers is None else list(layers)
    heads = min(maps[0].shape[1], max_heads)
    first = int(image is not None)                                              # the image column, when drawn
    cols = heads + 1 + first
    fig = Figure(figsize=(1.35 * cols, 1.45 * len(layers) + 0.5))
    axes = fig.subplots(len(layers), cols, squeeze=False)
    qr, qc = divmod(q, side)
    for row, layer in enumerate(layers):
        w = maps[layer][index, :, q].detach().float().cpu().reshape(-1, side, side)  # (heads, 16, 16)
        panels = [(f"head {h}", w[h]) for h in range(heads)] + [("mean", w.mean(0))]
        if image is not None:
            _draw_query_image(axes[row, 0], image, normalization, latent_mask, side, (qr, qc))
        axes[row, 0].set_ylabel(f"layer {layer}", fontsize=8)
        for j, (name, values) in enumerate(panels):
            ax = axes[row, first + j]
            ax.imshow(values.numpy(), cmap="magma", interpolation="nearest")
            ax.add_patch(Rectangle((qc - 0.5, qr - 0.5), 1, 1, fill=False, ec="cyan", lw=1))
            if row == 0:
                ax.set_title(name, fontsize=8)
            bare(ax)
    fig.suptitle(title or f"attention of token ({qr}, {qc}) over the 16x16 grid", fontsize=10)
    fig.tight_layout()
    return fig
