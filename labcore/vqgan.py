"""Stage 1 of MaskGIT: a VQGAN (Esser et al. 2021) that turns a 64x64 image into 16x16 codebook
indices and back.

An encoder E maps the image x to a grid of vectors z = E(x); vector quantisation replaces each by
the nearest of K learned codebook vectors e_1..e_K, and a decoder G maps the grid back to pixels:

    z_q = e_k,  k = argmin_k || z - e_k ||        per latent position; k is the image token
    x_hat = G(z_q)

argmin has no gradient: the straight-through estimator uses z_q forward and copies the decoder's
gradient onto z backward (``z + sg(z_q - z)``, sg = stop gradient). Codebook and encoder meet
half way (the VQ-VAE loss; VQGAN adds GAN and perceptual terms: ``labcore.training.stage1``):

    L_vq = || sg(z) - z_q ||^2  +  beta * || z - sg(z_q) ||^2      codebook term + commitment

    image (B,3,64,64) -> encoder -> quant_conv -> nearest codebook vector -> indices (B,16,16)
    indices -> codebook.embedding -> post_quant_conv -> decoder -> image (B,3,64,64)

MaskGIT uses it frozen: image -> tokens once, tokens -> image at the end. Module names are the
course's checkpoint format (``../shared/lab-format/README.md``), so its frozen 70M-parameter
``VQGAN.pt`` loads strictly, as does the small tokenizer in ``data/checkpoints`` (reading the
files: ``labcore.model_files``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from labcore.data import Normalization
from labcore.validate import integer, integers, number


@dataclass
class VQGANConfig:
    """The course's ``VQGAN.yml`` (keys under ``model_param``); defaults = the official config."""
    image_channels: int = 3
    enc_channels: list[int] = field(default_factory=lambda: [128, 128, 128, 256, 256, 512])
    dec_channels: list[int] = field(default_factory=lambda: [128, 128, 256, 256, 512])
    latent_dim: int = 256
    img_resolution: int = 64
    latent_resolution: int = 16
    num_codebook_vectors: int = 1024
    beta: float = 0.25
    # labcore extension (absent from the course's yml, whose values are these defaults): residual
    # blocks per level; the small emoji64 tokenizer uses fewer to train on a laptop CPU
    enc_res_blocks: int = 2
    dec_res_blocks: int = 3

    def __post_init__(self):
        """A config that cannot build the model is refused where it is made (``labcore.validate``;
        a loader adds the file's name): wrong types, and shapes the layers cannot take."""
        for name in ("image_channels", "latent_dim", "img_resolution", "latent_resolution",
                     "num_codebook_vectors", "enc_res_blocks", "dec_res_blocks"):
            setattr(self, name, integer(name, getattr(self, name), low=1, allowed="a positive integer"))
        for name in ("enc_channels", "dec_channels"):
            setattr(self, name, integers(name, getattr(self, name), low=1, allowed="a list of positive integers"))
        self.beta = number("beta", self.beta, low=0, allowed="a number >= 0")
        n = self.num_down
        if self.img_resolution < self.latent_resolution or self.latent_resolution * 2 ** n != self.img_resolution:
            raise ValueError(f"img_resolution {self.img_resolution} must be latent_resolution "
                             f"{self.latent_resolution} times a power of 2")
        # the encoder has len(enc_channels)-1 levels, the decoder len(dec_channels); one resampling
        # every second level needs at least 2n-1 of them
        for name, levels in (("enc_channels", len(self.enc_channels) - 1), ("dec_channels", len(self.dec_channels))):
            chans = getattr(self, name)
            if levels < 2 * n - 1:
                raise ValueError(f"{name} {chans} has too few levels for {n} x2 resamplings (one every second level)")
            if any(c % 32 for c in chans):
                raise ValueError(f"{name} {chans} must be multiples of 32 (GroupNorm with 32 groups)")

    @property
    def num_down(self) -> int:
        """How many x2 down/upsamplings turn img_resolution into latent_resolution."""
        return int(round(math.log2(self.img_resolution / self.latent_resolution)))

    def to_dict(self) -> dict:
        """The keys of the yml's ``model_param``."""
        return asdict(self)


# ----------------------------------------------------------------------------- building blocks

class GroupNorm(nn.Module):
    """GroupNorm(32, eps 1e-6), wrapped as ``.gn`` like the course's modules."""

    def __init__(self, channels: int):
        super().__init__()
        self.gn = nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)

    def forward(self, x):
        return self.gn(x)


class ResidualBlock(nn.Module):
    """x + (GN, Swish, conv3x3, GN, Swish, conv3x3)(x); a 1x1 ``channel_up`` when channels change."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.block = nn.Sequential(
            GroupNorm(in_channels), nn.SiLU(), nn.Conv2d(in_channels, out_channels, 3, 1, 1),
            GroupNorm(out_channels), nn.SiLU(), nn.Conv2d(out_channels, out_channels, 3, 1, 1),
        )
        self.channel_up = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x):
        skip = x if self.channel_up is None else self.channel_up(x)
        return skip + self.block(x)


class AttentionBlock(nn.Module):
    """Single-head self-attention over the H*W positions (1x1 convs for q, k, v, proj_out)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = GroupNorm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        B, C, H, W = x.shape
        h = self.norm(x)
        q = self.q(h).flatten(2).transpose(1, 2)  # (B, HW, C)
        k = self.k(h).flatten(2).transpose(1, 2)  # (B, HW, C)
        v = self.v(h).flatten(2).transpose(1, 2)  # (B, HW, C)
        # explicit math: softmax(q k^T / sqrt(C)) v ; the fused kernel computes the same
        # att = (q @ k.transpose(1, 2)) * C ** -0.5; out = att.softmax(-1) @ v
        out = F.scaled_dot_product_attention(q, k, v)  # (B, HW, C)
        out = out.transpose(1, 2).reshape(B, C, H, W)  # (B, C, H, W)
        return x + self.proj_out(out)


class DownSample(nn.Module):
    """Pad (0,1,0,1) then a stride-2 3x3 conv without padding: H -> H/2."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class UpSample(nn.Module):
    """Nearest x2 then a 3x3 conv: H -> 2H."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Encoder(nn.Module):
    """conv_in; per level ``enc_res_blocks`` residual blocks, a stride-2 downsample after every
    second level counted back from the last; res, attention, res; GroupNorm, Swish, conv to latent_dim."""

    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        chans, levels = cfg.enc_channels, len(cfg.enc_channels) - 1
        # downsample after levels L-1, L-3, ... (the course's 5 levels: after the 3rd and 5th)
        down_after = {levels - 1 - 2 * j for j in range(cfg.num_down)}
        layers = [nn.Conv2d(cfg.image_channels, chans[0], 3, 1, 1)]
        for i in range(levels):
            layers.append(ResidualBlock(chans[i], chans[i + 1]))
            layers += [ResidualBlock(chans[i + 1], chans[i + 1]) for _ in range(cfg.enc_res_blocks - 1)]
            if i in down_after:
                layers.append(DownSample(chans[i + 1]))
        c = chans[-1]
        layers += [ResidualBlock(c, c), AttentionBlock(c), ResidualBlock(c, c),
                   GroupNorm(c), nn.SiLU(), nn.Conv2d(c, cfg.latent_dim, 3, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class Decoder(nn.Module):
    """conv_in; res, attention, res; per level ``dec_res_blocks`` residual blocks (attention after each
    while at the latent resolution), a nearest-x2 upsample after every second level; GroupNorm, conv to RGB."""

    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        chans = list(reversed(cfg.dec_channels))  # course order: widest first
        # upsample after levels 0, 2, ... (the course's 5 levels: after the 1st and 3rd)
        up_after = {2 * j for j in range(cfg.num_down)}
        c = chans[0]
        layers = [nn.Conv2d(cfg.latent_dim, c, 3, 1, 1), ResidualBlock(c, c), AttentionBlock(c), ResidualBlock(c, c)]
        at_latent_resolution = True
        for i, out in enumerate(chans):
            for _ in range(cfg.dec_res_blocks):
                layers.append(ResidualBlock(c, out))
                c = out
                if at_latent_resolution:
                    layers.append(AttentionBlock(c))
            if i in up_after:
                layers.append(UpSample(c))
                at_latent_resolution = False
        layers += [GroupNorm(c), nn.Conv2d(c, cfg.image_channels, 3, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class Codebook(nn.Module):
    """Nearest-neighbour vector quantiser (L2) with the VQ-VAE codebook + commitment loss."""

    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        self.num_codebook_vectors, self.latent_dim, self.beta = cfg.num_codebook_vectors, cfg.latent_dim, cfg.beta
        self.embedding = nn.Embedding(cfg.num_codebook_vectors, cfg.latent_dim)
        self.embedding.weight.data.uniform_(-1.0 / cfg.num_codebook_vectors, 1.0 / cfg.num_codebook_vectors)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, latent_dim) -> index of the nearest codebook vector (N,), same formula as the course."""
        e = self.embedding.weight.float()  # (K, D)
        z = z.float()
        d = z.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * z @ e.t()  # (N, K)
        return d.argmin(1)

    def forward(self, z: torch.Tensor):
        """z (B,D,h,w) -> z_q with straight-through gradient (B,D,h,w), indices (B,h,w), loss."""
        B, D, h, w = z.shape
        z = z.float().permute(0, 2, 3, 1)  # (B, h, w, D)
        indices = self.nearest(z.reshape(-1, D)).view(B, h, w)  # (B, h, w)
        z_q = self.embedding(indices)  # (B, h, w, D)
        # codebook term pulls codes to encoder outputs; commitment (beta) keeps the encoder near its code
        loss = F.mse_loss(z_q, z.detach()) + self.beta * F.mse_loss(z, z_q.detach())
        z_q = z + (z_q - z).detach()  # straight-through: forward uses z_q, gradient flows to z
        return z_q.permute(0, 3, 1, 2), indices, loss


# ----------------------------------------------------------------------------- the model

class VQGAN(nn.Module):
    def __init__(self, cfg: VQGANConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or VQGANConfig()
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.codebook = Codebook(cfg)
        self.quant_conv = nn.Conv2d(cfg.latent_dim, cfg.latent_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.latent_dim, cfg.latent_dim, 1)
        # the normalisation of the images it was trained on (model_files.load_vqgan reads it from the yml):
        # its inputs must be normalised the same way (labcore.data.normalization_for)
        self.normalization: Normalization | None = None

    def encode(self, images: torch.Tensor):
        """images (B,3,H,W) normalised -> z_q (B,D,h,w) straight-through, indices (B,h,w), vq loss."""
        z = self.quant_conv(self.encoder(images))  # (B, D, h, w)
        return self.codebook(z)

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """z_q (B,D,h,w) -> images (B,3,H,W) in the normalised space."""
        return self.decoder(self.post_quant_conv(z_q))

    def forward(self, images: torch.Tensor):
        """Training pass: (decoded (B,3,H,W), indices (B,h,w), codebook + commitment loss)."""
        z_q, indices, vq_loss = self.encode(images)
        return self.decode(z_q), indices, vq_loss

    @torch.no_grad()
    def encode_to_indices(self, images: torch.Tensor) -> torch.Tensor:
        """images (B,3,64,64) normalised -> codebook indices (B,16,16) long."""
        return self.encode(images)[1]

    @torch.no_grad()
    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (B,16,16) or (B,256) long -> images (B,3,64,64) in the normalised space."""
        r = self.config.latent_resolution
        z_q = self.codebook.embedding(indices.reshape(-1, r, r))  # (B, r, r, D)
        return self.decode(z_q.permute(0, 3, 1, 2))
