"""What stage 1 optimises besides the reconstruction, and how its codebook stays healthy.

- ``PatchDiscriminator`` + ``adaptive_weight``: the VQGAN paper's PatchGAN (hinge loss) with
  lambda = |grad rec| / |grad gan| at the decoder's last layer;
- ``VGGPerceptual``: an LPIPS-style distance on VGG16 features (only with weights you have);
- ``EMACodebook``, ``init_codebook_from_data``, ``restart_dead_codes``: the codebook starts at
  encoder outputs of real images, follows the running mean of the outputs assigned to each code,
  and codes nobody uses restart at random encoder outputs. The random picks are drawn on the
  model's device (randperm / randint / randn with ``device=``): on a GPU a CPU draw would copy.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import vgg16

from labcore.data import Normalization
from labcore.runtime import load_file
from labcore.vqgan import VQGAN


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix / taming-transformers' NLayerDiscriminator): a logit per image patch."""

    def __init__(self, channels: int = 3, width: int = 64, n_layers: int = 3):
        super().__init__()
        layers = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(width * prev, width * mult, 4, stride, 1, bias=False),
                       nn.BatchNorm2d(width * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(width * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)  # (B, 1, h, w) logits


class VGGPerceptual(nn.Module):
    """LPIPS-style distance on VGG16 features (unit-normalised channels, uniform layer weights),
    from a VGG16 state dict you already have (``--vgg-weights``): nothing is downloaded."""

    def __init__(self, weights_path: str, normalization: Normalization):
        super().__init__()
        vgg = vgg16()
        vgg.load_state_dict(load_file(weights_path, what="VGG16 weights"))
        self.features = vgg.features[:30].eval().requires_grad_(False)
        self.taps = {3, 8, 15, 22, 29}  # relu1_2 ... relu5_3
        self.norm = normalization
        imagenet = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        self.imagenet = imagenet

    def forward(self, x, y):
        h = torch.cat([self.imagenet.normalize(self.norm.denormalize(x)),
                       self.imagenet.normalize(self.norm.denormalize(y))])            # (2B, 3, H, W)
        loss = 0.0
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                a, b = F.normalize(h, dim=1).chunk(2)
                loss = loss + (a - b).pow(2).sum(1).mean()
        return loss


def adaptive_weight(rec_loss, g_loss, last_layer: torch.Tensor, max_weight: float = 1e4) -> torch.Tensor:
    """The VQGAN paper's lambda = |grad rec| / (|grad gan| + 1e-4) at the decoder's last layer."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    return (rec_grad.norm() / (g_grad.norm() + 1e-4)).clamp(0, max_weight).detach()


@torch.no_grad()
def init_codebook_from_data(model: VQGAN, images: torch.Tensor) -> None:
    """Data init: the codebook starts as random encoder outputs of real images (no dead codes at step 0)."""
    z = model.quant_conv(model.encoder(images))  # (B, D, h, w)
    z = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (B*h*w, D)
    K = model.config.num_codebook_vectors
    pick = torch.randperm(len(z), device=z.device)[:K]
    if len(pick) < K:  # tiny batches: repeat with noise
        pick = torch.randint(len(z), (K,), device=z.device)
    model.codebook.embedding.weight.copy_(z[pick] + 1e-3 * torch.randn(K, z.shape[1], device=z.device))


@torch.no_grad()
def restart_dead_codes(model: VQGAN, usage: torch.Tensor, images: torch.Tensor,
                       ema: "EMACodebook | None" = None) -> int:
    """Codes unused since the last restart move to random encoder outputs of the current batch."""
    dead = (usage == 0).nonzero().flatten()
    if len(dead) == 0:
        return 0
    z = model.quant_conv(model.encoder(images))  # (B, D, h, w)
    z = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (B*h*w, D)
    pick = torch.randint(len(z), (len(dead),), device=z.device)
    model.codebook.embedding.weight[dead] = z[pick] + 1e-3 * torch.randn(len(dead), z.shape[1], device=z.device)
    if ema is not None:
        ema.reset(model.codebook.embedding.weight, dead)
    return len(dead)


class EMACodebook:
    """VQ-VAE-2's codebook update: each code moves to the running mean of the encoder outputs
    assigned to it (decay ``decay``, Laplace-smoothed counts). Much faster than the gradient of
    the codebook loss, whose Adam steps of ~lr per step cannot follow the encoder early on.
    Its state lives in the training checkpoint; the model keeps the course's plain embedding."""

    def __init__(self, weight: torch.Tensor, decay: float = 0.99, eps: float = 1e-5):
        self.decay, self.eps = decay, eps
        self.cluster_size = torch.ones(weight.shape[0], device=weight.device)  # (K,)
        self.embed_sum = weight.detach().clone()  # (K, D)

    @torch.no_grad()
    def update(self, weight: torch.Tensor, z: torch.Tensor, indices: torch.Tensor) -> None:
        z = z.detach().float().permute(0, 2, 3, 1).reshape(-1, weight.shape[1])  # (N, D)
        idx = indices.flatten()  # (N,)
        counts = torch.bincount(idx, minlength=weight.shape[0]).float()  # (K,)
        sums = torch.zeros_like(self.embed_sum).index_add_(0, idx, z)  # (K, D)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + weight.shape[0] * self.eps) * n  # (K,)
        weight.copy_(self.embed_sum / smoothed.unsqueeze(1))

    @torch.no_grad()
    def reset(self, weight: torch.Tensor, codes: torch.Tensor) -> None:
        """After a dead-code restart: the restarted codes start a fresh running mean."""
        self.cluster_size[codes] = 1.0
        self.embed_sum[codes] = weight[codes]

    def state_dict(self) -> dict:
        return {"cluster_size": self.cluster_size, "embed_sum": self.embed_sum}

    def load_state_dict(self, state: dict) -> None:
        self.cluster_size, self.embed_sum = state["cluster_size"].clone(), state["embed_sum"].clone()
