"""Image and codebook metrics, for images in [0, 1] (denormalise first).

- ``psnr`` / ``ssim``: how close a reconstruction is to its original (per image);
- ``psnr_masked``: the same PSNR over the missing pixels of an inpainted image only;
- ``code_stats``: how much of the VQGAN codebook a set of token ids uses (share, perplexity).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr(x01: torch.Tensor, y01: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB (peak 1): (B,3,H,W), (B,3,H,W) -> (B,)."""
    mse = (x01 - y01).pow(2).flatten(1).mean(1).clamp_min(1e-10)               # (B,)
    return 10 * torch.log10(1.0 / mse)


def psnr_masked(images01: torch.Tensor, targets01: torch.Tensor, masks: torch.Tensor) -> float:
    """Mean over images of the PSNR (dB, peak 1) of the missing pixels only (mask == 0): the known
    pixels would otherwise dominate it. Images with no missing pixel are left out."""
    hole = (masks < 0.5).expand_as(images01)                                    # (N,3,H,W) True = missing
    squared = (images01 - targets01).square() * hole                            # (N,3,H,W)
    count = hole.flatten(1).sum(1)                                              # (N,)
    mse = squared.flatten(1).sum(1)[count > 0] / count[count > 0]              # (n,)
    return float((10 * torch.log10(1 / mse.clamp(min=1e-10))).mean())


def ssim(x01: torch.Tensor, y01: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004; Gaussian 11x11, sigma 1.5, per channel): (B,3,H,W) -> (B,)."""
    coords = torch.arange(window, dtype=x01.dtype, device=x01.device) - window // 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))                              # (w,)
    g = (g / g.sum()).outer(g / g.sum()).expand(x01.shape[1], 1, window, window)  # (C,1,w,w)
    blur = lambda t: F.conv2d(t, g, groups=x01.shape[1])  # noqa: E731  valid conv, like skimage's crop
    mx, my = blur(x01), blur(y01)                                               # (B,C,h,w) local means
    vx, vy, cxy = blur(x01 * x01) - mx ** 2, blur(y01 * y01) - my ** 2, blur(x01 * y01) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))  # (B,C,h,w)
    return s.flatten(1).mean(1)


def code_stats(counts: torch.Tensor) -> tuple[float, float]:
    """(share of codes used, perplexity = exp(entropy of the code histogram)) of counts (K,)."""
    p = counts.double() / counts.sum().clamp_min(1)                             # (K,)
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return float((counts > 0).double().mean()), float(entropy.exp())
