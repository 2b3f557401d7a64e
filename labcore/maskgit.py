"""Stage 2 of MaskGIT (Chang et al. 2022, section 3): masked visual token modelling (MVTM) and
the model that inpaints images by iterative decoding.

An image is the VQGAN's 16x16 = N codebook ids Y = [y_i], y_i in [0, K); the id K is the mask
token. Training (section 3.1, ``mvtm_loss``): draw r ~ U(0, 1), replace ceil(gamma(r) * N)
random tokens by the mask token (gamma: ``labcore.schedules``), giving Y_masked, and teach the
bidirectional transformer to predict them:

    L = -E_Y [ sum over masked i of log p(y_i | Y_masked) ]   (averaged over the masked tokens)

Inference (section 3.2, ``MaskGit.inpaint``): encode the image once (known tokens are never
re-encoded, so they cannot drift), decode its masked tokens iteratively (``labcore.decoding``),
decode the final tokens to an image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from labcore.data import latent_mask_from_pixels
from labcore.decoding import DecodingSettings, DecodingTrace, decode, decode_step, uniform
from labcore.schedules import GammaFn, as_gamma


# ----------------------------------------------------------------------------- training (MVTM)

def mvtm_loss(transformer: nn.Module, tokens: torch.Tensor, mask_token_id: int, gamma_fn: str | GammaFn,
              label_smoothing: float = 0.0, all_positions: bool = False,
              generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Masked visual token modelling loss for one batch of token maps.

    Per sample: u ~ U(0,1); ceil(gamma(u) * N) random positions (at least 1) are replaced by
    the mask token; cross-entropy on the masked positions (or on all positions with
    ``all_positions``), with optional label smoothing.
    Returns dict(loss (with grad), accuracy (masked-token top-1), mask_ratio (share masked)).
    """
    gamma_fn = as_gamma(gamma_fn)
    tokens = tokens.flatten(1)                                                  # (B, N) codebook ids
    B, N = tokens.shape
    u = uniform(B, generator, torch.device("cpu"), torch.float64)                 # (B,)
    n_masked = torch.ceil(gamma_fn(u) * N).long().clamp(1, N)                   # (B,) tokens to mask
    order = uniform((B, N), generator, torch.device("cpu")).argsort(dim=1)        # (B, N) random order
    masked = torch.zeros(B, N, dtype=torch.bool).scatter(
        1, order, torch.arange(N)[None, :] < n_masked[:, None]).to(tokens.device)  # (B, N) the first n_masked
    inputs = tokens.masked_fill(masked, mask_token_id)                          # (B, N)
    logits = transformer(inputs)                                                # (B, N, K+1)
    scored = torch.ones_like(masked) if all_positions else masked               # (B, N)
    loss = F.cross_entropy(logits[scored].float(), tokens[scored], label_smoothing=label_smoothing)
    with torch.no_grad():
        accuracy = (logits[masked].argmax(-1) == tokens[masked]).float().mean()
    return {"loss": loss, "accuracy": accuracy, "mask_ratio": masked.float().mean()}


# ----------------------------------------------------------------------------- images <-> tokens

@dataclass
class InpaintResult:
    images: torch.Tensor         # (B, 3, H, W) normalised output
    tokens: torch.Tensor         # (B, 16, 16) final token ids
    latent_mask: torch.Tensor    # (B, 16, 16) bool, True = token was masked at the start
    trace: DecodingTrace


def paste_known_pixels(images: torch.Tensor, masks: torch.Tensor, filled: torch.Tensor) -> torch.Tensor:
    """The known pixels of ``images`` (masks == 1) over ``filled`` (same space, (B, 3, H, W))."""
    return masks * images + (1 - masks) * filled                                # (B, 3, H, W)


def latent_mask(mask_known: torch.Tensor, patch: int = 4, dilation: int = 0) -> torch.Tensor:
    """Pixel mask (B,1,H,W) or (B,H,W), 1 = known -> latent mask (B, H/patch, W/patch) bool,
    True = token masked. The course's rule (``labcore.data.latent_mask_from_pixels``): a token
    is known only if its whole patch is known. ``dilation`` d > 0 also masks every token within
    d tokens (Chebyshev distance) of a masked one."""
    masked = latent_mask_from_pixels(mask_known, patch=patch)                   # (B, h, w) bool
    if dilation > 0:
        k = 2 * dilation + 1
        masked = F.max_pool2d(masked[:, None].float(), k, stride=1, padding=dilation)[:, 0] > 0  # (B, h, w)
    return masked


# ----------------------------------------------------------------------------- MaskGit

def _codebook_size(vqgan: nn.Module) -> int:
    config = getattr(vqgan, "config", None)
    for source in (config, vqgan):
        value = getattr(source, "num_codebook_vectors", None)
        if value is not None:
            return int(value)
    raise ValueError("cannot tell the VQGAN's codebook size: expected vqgan.config.num_codebook_vectors")


class MaskGit(nn.Module):
    """The frozen VQGAN tokenizer and the bidirectional transformer, with MVTM training and
    iterative-decoding inpainting. The mask token id is K = the VQGAN's codebook size."""

    def __init__(self, vqgan: nn.Module, transformer: nn.Module):
        super().__init__()
        self.vqgan = vqgan.eval().requires_grad_(False)   # stage 1 is frozen in stage 2
        self.transformer = transformer
        self.num_codebook_vectors = _codebook_size(vqgan)
        self.mask_token_id = self.num_codebook_vectors
        t_config = getattr(transformer, "config", None)
        t_codes = getattr(t_config, "num_codebook_vectors", None)
        if t_codes is not None and int(t_codes) != self.num_codebook_vectors:
            raise ValueError(f"checkpoint/config mismatch: the transformer has {t_codes} codebook vectors, "
                             f"the VQGAN {self.num_codebook_vectors}")
        # the images' normalisation is the tokenizer's (None: the folder's own; labcore.data.normalization_for)
        self.normalization = getattr(vqgan, "normalization", None)
        v_config = getattr(vqgan, "config", None)
        self.latent_resolution = int(getattr(v_config, "latent_resolution", 16))
        self.patch = int(getattr(v_config, "img_resolution", 4 * self.latent_resolution)) // self.latent_resolution

    # --- tokens <-> images (the VQGAN; called once per image, never inside the loop)
    @torch.no_grad()
    def encode_to_z(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, 16*16) token ids."""
        return self.vqgan.encode_to_indices(images).flatten(1)                 # (B, 256)

    @torch.no_grad()
    def decode_z(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, 256) or (B, 16, 16) token ids -> (B, 3, H, W) normalised images."""
        r = self.latent_resolution
        return self.vqgan.decode_indices(tokens.reshape(-1, r, r))             # (B, 3, H, W)

    # --- training
    def mvtm_loss(self, tokens: torch.Tensor, schedule: str | GammaFn = "cosine", **kwargs) -> dict:
        """``mvtm_loss`` with this MaskGit's transformer and mask token."""
        return mvtm_loss(self.transformer, tokens, self.mask_token_id, schedule, **kwargs)

    # --- the decoding loop (labcore.decoding)
    def decode_tokens(self, tokens: torch.Tensor, masked: torch.Tensor, settings: DecodingSettings | None = None,
                      *, generator: torch.Generator | None = None, step=decode_step,
                      **changes) -> tuple[torch.Tensor, DecodingTrace]:
        """``labcore.decoding.decode`` with this MaskGit's transformer and mask token: steps
        t = 1..S at ratio t/T, then every token still masked takes its step-S prediction.
        tokens (B, 256) or (B, 16, 16) ids (values at masked positions are ignored), masked same
        shape, True = to decode. ``settings`` with keyword ``changes`` (e.g. ``total_iter=4``);
        ``generator`` None: a fresh one seeded with the settings' seed; ``step`` the step function
        (``decode_step`` or your own with its signature). Returns the final (B, 16, 16) tokens and
        the trace."""
        settings = DecodingSettings.resolve(settings, **changes)               # validated before any work
        r = self.latent_resolution
        if tokens.shape[0] != masked.shape[0]:
            raise ValueError(f"{tokens.shape[0]} token maps but {masked.shape[0]} masks: counts must match")
        if tokens[0].numel() != r * r or masked[0].numel() != r * r:
            raise ValueError(f"expected {r}x{r} tokens and mask per image, got {tuple(tokens.shape)} and "
                             f"{tuple(masked.shape)}")
        return decode(self.transformer, tokens.reshape(-1, r, r), masked.reshape(-1, r, r), self.mask_token_id,
                      settings, generator, step)

    # --- images in, images out
    def _check_inputs(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Masks (B, 1, H, W) on the images' device and dtype; a ValueError if shapes or counts differ."""
        if images.dim() != 4:
            raise ValueError(f"images must be (B, 3, H, W), got shape {tuple(images.shape)}")
        if masks.dim() == 3:
            masks = masks[:, None]
        if masks.dim() != 4 or masks.shape[1] != 1:
            raise ValueError(f"masks must be (B, 1, H, W) or (B, H, W), got shape {tuple(masks.shape)}")
        if len(images) != len(masks):
            raise ValueError(f"{len(images)} images but {len(masks)} masks: counts must match")
        if masks.shape[-2:] != images.shape[-2:]:
            raise ValueError(f"mask size {tuple(masks.shape[-2:])} differs from image size {tuple(images.shape[-2:])}")
        return masks.to(images.device, images.dtype)

    @torch.no_grad()
    def inpaint(self, images: torch.Tensor, masks: torch.Tensor, settings: DecodingSettings | None = None,
                *, generator: torch.Generator | None = None, step=decode_step, **changes) -> InpaintResult:
        """Inpaint a batch: images (B, 3, H, W) normalised, masks (B, 1, H, W), 1 = known pixel.
        Encode once, decode tokens iteratively, decode the final tokens to an image; the
        settings' ``paste_known`` puts the known input pixels back over the output. ``settings``,
        ``changes``, ``generator`` and ``step`` as in ``decode_tokens``."""
        settings = DecodingSettings.resolve(settings, **changes)               # validated before any work
        masks = self._check_inputs(images, masks)                               # (B, 1, H, W)
        initial = latent_mask(masks, patch=self.patch, dilation=settings.dilation).to(images.device)  # (B, 16, 16)
        tokens = self.encode_to_z(images)                                       # (B, 256) encoded once
        final, trace = self.decode_tokens(tokens, initial, settings, generator=generator, step=step)  # (B, 16, 16)
        out = self.decode_z(final)                                              # (B, 3, H, W)
        if settings.paste_known:
            out = paste_known_pixels(images, masks, out)                        # (B, 3, H, W)
        return InpaintResult(images=out, tokens=final, latent_mask=initial, trace=trace)
