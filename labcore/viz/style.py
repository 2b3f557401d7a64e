"""The one style of every labcore figure: a bare matplotlib ``Figure`` (pyplot never tracks it, so a
notebook shows it once, when a cell returns it, and a widget can redraw without pyplot's state),
pictures in [0, 1] drawn pixel for pixel on bare axes, and the colours of the latent mask.
"""

from __future__ import annotations

import numpy as np
import torch

# latent-mask colours (RGB in [0, 1]): the course's black/white, plus the tokens decoded at this step
KNOWN, MASKED, NEW = (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0.55, 0.0)


def to_unit(images: torch.Tensor, normalization=None) -> torch.Tensor:
    """(..., 3, H, W) normalised (or already in [0, 1] when ``normalization`` is None) -> [0, 1] on CPU."""
    images = images.detach().float().cpu()
    return normalization.denormalize(images) if normalization is not None else images.clamp(0, 1)


def hwc(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) -> (H, W, 3): the layout ``imshow`` takes."""
    return image.permute(1, 2, 0).numpy()                                       # (H, W, 3)


def bare(ax, frame: bool = False) -> None:
    """No ticks; a thin grey frame (for pictures whose edge is white) or none."""
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(frame)
        side.set_color("0.6")


def mask_frames(masks: torch.Tensor, highlight_new: bool = True) -> torch.Tensor:
    """(S+1, 16, 16) bool latent masks (initial, then after each step) -> (S+1, 16, 16, 3) RGB:
    white = known or decoded, black = still masked, orange = decoded at this step."""
    masks = masks.detach().cpu().bool()
    frames = torch.where(masks[..., None], torch.tensor(MASKED), torch.tensor(KNOWN))  # (S+1, 16, 16, 3)
    if highlight_new and len(masks) > 1:
        new = masks[:-1] & ~masks[1:]                                           # (S, 16, 16) decoded at step s
        frames[1:][new] = torch.tensor(NEW)
    return frames
