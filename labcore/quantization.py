"""What stage 1's vector-quantisation losses do, measured on a trained tokenizer (notebook 00).

The VQ-VAE loss (``labcore.vqgan.Codebook``), with sg = stop gradient and e the nearest codebook
vector of the encoder output z:

    L = L_rec(x, G(z + sg(e - z)))  +  || sg(z) - e ||^2  +  beta * || z - sg(e) ||^2
        reconstruction through the     codebook term:       commitment: pulls the
        straight-through estimator     moves e towards z    encoder's z towards e

The two VQ terms have the same value; they differ only in which side the gradient moves. Three
measurements make that visible:

- ``vq_terms``: the terms on real images, and how far z lies from its code compared with z itself;
- ``straight_through``: the gradient that reaches z is exactly the decoder's gradient at e (the
  estimator copies it), and without the estimator no gradient reaches z at all (argmin is flat);
- ``commitment_drift``: gradient steps on z alone (a stand-in for an encoder free to put z
  anywhere; decoder and codebook frozen) with and without the commitment term. The reconstruction
  gradient is the same everywhere in z's cell (the forward pass only sees e), so nothing but the
  commitment term holds z near its code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from labcore.vqgan import VQGAN


def _latents(vqgan: VQGAN, images: torch.Tensor) -> torch.Tensor:
    """The encoder's output z (B, D, 16, 16) for normalised images, detached: a leaf to differentiate."""
    with torch.no_grad():
        return vqgan.quant_conv(vqgan.encoder(images)).float()


def _code_vectors(vqgan: VQGAN, indices: torch.Tensor) -> torch.Tensor:
    """Codebook vectors of indices (B, 16, 16) as a grid (B, D, 16, 16)."""
    return vqgan.codebook.embedding(indices).permute(0, 3, 1, 2)


@torch.no_grad()
def vq_terms(vqgan: VQGAN, images: torch.Tensor) -> dict[str, float]:
    """The codebook and commitment terms on ``images`` (means over every latent value, as in training),
    the mean squared size of z, and the commitment term relative to it."""
    z = _latents(vqgan, images)                               # (B, D, 16, 16)
    _, indices, _ = vqgan.codebook(z)                         # (B, 16, 16) token ids
    e = _code_vectors(vqgan, indices)                         # (B, D, 16, 16) their codes
    distance = F.mse_loss(z, e).item()
    size = z.pow(2).mean().item()
    return {"codebook": distance, "commitment": vqgan.config.beta * distance, "beta": vqgan.config.beta,
            "z_squared": size, "relative_distance": distance / size}


def straight_through(vqgan: VQGAN, images: torch.Tensor) -> dict[str, torch.Tensor | None]:
    """Gradients of the reconstruction loss: on z through the straight-through estimator, on the
    code vectors e themselves, and on z when decoding the looked-up codes without the estimator
    (None: the graph never reaches z)."""
    z = _latents(vqgan, images).requires_grad_()             # (B, D, 16, 16) a leaf: "the encoder's output"
    z_st, indices, _ = vqgan.codebook(z)                      # z + sg(e - z): forward e, backward to z
    on_z, = torch.autograd.grad(F.mse_loss(vqgan.decode(z_st), images), z)
    e = _code_vectors(vqgan, indices).detach().requires_grad_()
    on_e, = torch.autograd.grad(F.mse_loss(vqgan.decode(e), images), e)
    looked_up = _code_vectors(vqgan, indices)                # argmin's integer ids -> vectors: no path to z
    without, = torch.autograd.grad(F.mse_loss(vqgan.decode(looked_up), images), z, allow_unused=True)
    return {"on_z": on_z, "on_e": on_e, "without_estimator": without}


@dataclass
class Drift:
    """Per step of ``commitment_drift``: squared distance of z to its code (mean), share of tokens that
    differ from the first step's, reconstruction loss (MSE of the decoded codes)."""
    beta: float
    distance: list[float] = field(default_factory=list)
    changed: list[float] = field(default_factory=list)
    reconstruction: list[float] = field(default_factory=list)


def commitment_drift(vqgan: VQGAN, images: torch.Tensor, beta: float, steps: int = 40,
                     lr: float = 3000.0) -> Drift:
    """Plain gradient steps (size ``lr``: the gradient of a mean over 64x64x3 pixels is tiny) on z alone,
    minimising reconstruction + beta * commitment; decoder and codebook stay as trained."""
    z = _latents(vqgan, images).requires_grad_()             # (B, D, 16, 16)
    first, drift = None, Drift(beta)
    for _ in range(steps):
        z_st, indices, _ = vqgan.codebook(z)                  # (B, D, 16, 16), (B, 16, 16)
        e = _code_vectors(vqgan, indices).detach()            # (B, D, 16, 16)
        reconstruction = F.mse_loss(vqgan.decode(z_st), images)
        commitment = F.mse_loss(z, e)
        grad, = torch.autograd.grad(reconstruction + beta * commitment, z)
        with torch.no_grad():
            z -= lr * grad
        first = indices if first is None else first
        drift.distance.append(commitment.item())
        drift.changed.append((indices != first).float().mean().item())
        drift.reconstruction.append(reconstruction.item())
    return drift
