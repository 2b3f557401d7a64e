"""Stage 2 of MaskGIT: mask schedules, masked visual token modelling (training) and iterative
decoding (inference) for inpainting.

A 64x64 image is 16x16 = 256 VQGAN codebook ids in [0, K); the id K is the mask token.

Training (MVTM, ``mvtm_loss``): mask a random share gamma(u) of each image's tokens and teach
the bidirectional transformer to predict them.

Inference (``decode_step``, run T times by ``MaskGit.decode_tokens``): the transformer predicts
every masked token at once, the most confident predictions are kept, the rest are masked again;
the mask schedule gamma says how many stay masked after each step. Three details that student
implementations often get wrong, and that this file does on purpose:

- the Gumbel noise added to the confidences is drawn independently for every token (one shared
  sample would add the same number everywhere and change nothing);
- the VQGAN encodes the input once; known tokens are never re-encoded, so they cannot drift;
- every image of a batch keeps its own initial masked count M0, so the schedule is per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from labcore.schedules import SCHEDULES, GammaFn, as_gamma, gamma  # noqa: F401  (the mask schedules)

def _rand(shape, generator: torch.Generator | None, device: torch.device, dtype=torch.float32) -> torch.Tensor:
    """U(0,1) drawn on the generator's own device (a CPU generator works for CUDA tensors too:
    the same seed gives the same numbers on every device)."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=gen_device, dtype=dtype).to(device)


def _gumbel(shape, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Independent standard Gumbel samples, one per element: g = -log(-log(u))."""
    u = _rand(shape, generator, device)
    return -torch.log(-torch.log(u.clamp_min(1e-20)))


# ----------------------------------------------------------------------------- training (MVTM)

def mvtm_loss(transformer: nn.Module, tokens: torch.Tensor, mask_token_id: int, gamma_fn: str | GammaFn,
              label_smoothing: float = 0.0, all_positions: bool = False,
              generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Masked visual token modelling loss for one batch of token maps.

    Per sample: r = gamma(u) with u ~ U(0,1); ceil(r*N) random positions (at least 1) are
    replaced by the mask token; cross-entropy on the masked positions (or on all positions with
    ``all_positions``), with optional label smoothing.
    Returns dict(loss (with grad), accuracy (masked-token top-1), mask_ratio (share masked)).
    """
    gamma_fn = as_gamma(gamma_fn)
    tokens = tokens.flatten(1)                                                  # (B, N) codebook ids
    B, N = tokens.shape
    u = _rand(B, generator, torch.device("cpu"), torch.float64)                 # (B,)
    n_masked = torch.ceil(gamma_fn(u) * N).long().clamp(1, N)                   # (B,) tokens to mask
    order = _rand((B, N), generator, torch.device("cpu")).argsort(dim=1)        # (B, N) random order
    masked = torch.zeros(B, N, dtype=torch.bool).scatter(
        1, order, torch.arange(N)[None, :] < n_masked[:, None]).to(tokens.device)  # (B, N) the first n_masked
    inputs = tokens.masked_fill(masked, mask_token_id)                          # (B, N)
    logits = transformer(inputs)                                                # (B, N, K+1)
    scored = torch.ones_like(masked) if all_positions else masked               # (B, N)
    loss = F.cross_entropy(logits[scored].float(), tokens[scored], label_smoothing=label_smoothing)
    with torch.no_grad():
        accuracy = (logits[masked].argmax(-1) == tokens[masked]).float().mean()
    return {"loss": loss, "accuracy": accuracy, "mask_ratio": masked.float().mean()}


# ----------------------------------------------------------------------------- one decoding step

def masked_count_after_step(ratio: float, m0: torch.Tensor, remaining: torch.Tensor,
                            gamma_fn: GammaFn) -> torch.Tensor:
    """How many tokens of each image stay masked after the step at ``ratio`` = t/T.

    floor(gamma(ratio) * M0), with M0 each image's own initial masked count, clamped so that
    every step decodes at least one token (<= remaining - 1) and keeps at least one for later
    (>= 1); at the last step (ratio = 1) nothing stays masked. An image with nothing left masked
    stays at 0; an image with one token left keeps it for the last step (the lower bound wins).
    """
    if ratio >= 1:
        return torch.zeros_like(remaining)
    n = torch.floor(gamma_fn(float(ratio)) * m0.double()).long()                # (B,)
    n = torch.clamp(torch.minimum(n, remaining - 1), min=1)                     # (B,)
    return torch.where(remaining > 0, n, torch.zeros_like(n))                   # (B,)


class StepResult(NamedTuple):
    tokens: torch.Tensor   # (B, N) ids; the mask token where still masked
    masked: torch.Tensor   # (B, N) bool, True = still masked after the step
    filled: torch.Tensor   # (B, N) ids; every masked token filled with this step's prediction


@torch.no_grad()
def decode_step(transformer: nn.Module, tokens: torch.Tensor, masked: torch.Tensor, m0: torch.Tensor,
                ratio: float, gamma_fn: GammaFn, mask_token_id: int, choice_temperature: float = 4.5,
                sample_temperature: float = 0.0, generator: torch.Generator | None = None) -> StepResult:
    """One step of iterative decoding, for a batch.

    tokens (B, N) ids, masked (B, N) bool (True = still to decode), m0 (B,) each image's initial
    masked count, ratio = t/T of this step. The transformer predicts every masked token
    (argmax, or a sample of softmax(logits / sample_temperature)); the confidence of a prediction
    is log p(chosen) + choice_temperature * (1 - ratio) * g, with g an independent Gumbel sample
    per token; known tokens get +inf confidence and never change; the least confident
    ``masked_count_after_step`` predictions are masked again.
    The mask token id is K (the codebook size): the transformer's logit for it is never chosen.
    """
    tokens = tokens.masked_fill(masked, mask_token_id)                          # (B, N) what the model sees
    if not masked.any():                                                        # nothing left to decode
        return StepResult(tokens, masked, tokens)
    logits = transformer(tokens)[..., :mask_token_id].float()                   # (B, N, K) codebook logits only
    log_probs = logits.log_softmax(dim=-1)                                      # (B, N, K)
    if sample_temperature > 0:  # Gumbel-max trick = one sample of softmax(logits / temperature)
        noisy = logits / sample_temperature + _gumbel(logits.shape, generator, logits.device)  # (B, N, K)
        predicted = noisy.argmax(dim=-1)                                        # (B, N)
    else:
        predicted = logits.argmax(dim=-1)                                       # (B, N)
    confidence = log_probs.gather(-1, predicted[..., None]).squeeze(-1)         # (B, N) log p(chosen)
    if choice_temperature > 0:  # one Gumbel sample PER TOKEN, annealed to 0 at the last step
        confidence = confidence + choice_temperature * (1 - ratio) * _gumbel(masked.shape, generator, masked.device)
    confidence = confidence.masked_fill(~masked, float("inf"))                  # (B, N) known: never re-masked
    filled = torch.where(masked, predicted, tokens)                             # (B, N) known tokens unchanged

    n_keep = masked_count_after_step(ratio, m0.to(masked.device), masked.sum(dim=1), gamma_fn)  # (B,)
    order = confidence.argsort(dim=1, stable=True)                              # (B, N) least confident first
    keep_sorted = torch.arange(masked.shape[1], device=masked.device)[None, :] < n_keep[:, None]  # (B, N)
    new_masked = torch.zeros_like(masked).scatter(1, order, keep_sorted)        # (B, N)
    return StepResult(filled.masked_fill(new_masked, mask_token_id), new_masked, filled)


def check_decoding_args(total_iter: int, sweet_spot: int | None, schedule: str | GammaFn,
                        choice_temperature: float, sample_temperature: float = 0.0) -> tuple[int, GammaFn]:
    """Validate the decoding settings before any work; return (steps to run S, gamma function)."""
    if int(total_iter) != total_iter or total_iter < 1:
        raise ValueError(f"total_iter (T) must be an integer >= 1, got {total_iter}")
    sweet_spot = total_iter if sweet_spot is None else sweet_spot
    if int(sweet_spot) != sweet_spot or not 1 <= sweet_spot <= total_iter:
        raise ValueError(f"sweet_spot (S) must be an integer with 1 <= S <= total_iter (T={total_iter}), "
                         f"got {sweet_spot}")
    if choice_temperature < 0:
        raise ValueError(f"choice temperature must be >= 0, got {choice_temperature}")
    if sample_temperature < 0:
        raise ValueError(f"sample temperature must be >= 0, got {sample_temperature}")
    return int(sweet_spot), as_gamma(schedule)


# ----------------------------------------------------------------------------- trace and result

@dataclass
class DecodingTrace:
    """What iterative decoding did, step by step (S steps run).

    initial_masked (B, 16, 16) bool; masked (S, B, 16, 16) bool after each step; tokens
    (S, B, 16, 16) each step's prediction with every masked token filled (decodable ids);
    ratios[s] = (s+1)/T.
    """
    initial_masked: torch.Tensor
    masked: torch.Tensor
    tokens: torch.Tensor
    ratios: list[float]

    def masks(self) -> torch.Tensor:
        """(S+1, B, 16, 16) bool: the initial latent mask, then the mask after each step."""
        return torch.cat([self.initial_masked[None], self.masked])

    @torch.no_grad()
    def images(self, maskgit: "MaskGit", chunk: int = 64) -> torch.Tensor:
        """Decode every step's tokens: (S, B, 3, H, W) in the normalised space."""
        S, B = self.tokens.shape[:2]
        flat = self.tokens.flatten(0, 1)                                        # (S*B, 16, 16)
        out = torch.cat([maskgit.decode_z(flat[i:i + chunk]) for i in range(0, len(flat), chunk)])
        return out.unflatten(0, (S, B))                                         # (S, B, 3, H, W)


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
    from labcore.data import latent_mask_from_pixels

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
        v_config = getattr(vqgan, "config", None)
        self.latent_resolution = int(getattr(v_config, "latent_resolution", 16))
        self.patch = int(getattr(v_config, "img_resolution", 4 * self.latent_resolution)) // self.latent_resolution

    @classmethod
    def bundled(cls) -> "MaskGit":
        """The bundled tokenizer and transformer (data/checkpoints)."""
        from labcore.transformer import load_bundled_transformer
        from labcore.vqgan import load_bundled_vqgan

        return cls(load_bundled_vqgan(), load_bundled_transformer())

    @classmethod
    def from_files(cls, vqgan_config=None, vqgan_weights=None, transformer_config=None,
                   transformer_weights=None, device: str | torch.device = "cpu") -> "MaskGit":
        """Load both stages from course-style files; a part left as None is the bundled one.
        A transformer config may be omitted (its shapes are read off the checkpoint)."""
        from labcore import transformer as stage2
        from labcore import vqgan as stage1

        if (vqgan_config is None) != (vqgan_weights is None):
            raise ValueError("give both --vqgan-config and --vqgan-weights, or neither (the bundled VQGAN)")
        if transformer_config is not None and transformer_weights is None:
            raise ValueError("--transformer-config needs --transformer-weights")
        vq = (stage1.load_vqgan(vqgan_config, vqgan_weights) if vqgan_config is not None
              else stage1.load_bundled_vqgan())
        tr = (stage2.load_transformer(transformer_weights, transformer_config) if transformer_weights is not None
              else stage2.load_bundled_transformer())
        return cls(vq, tr).to(device)

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

    # --- the decoding loop
    @torch.no_grad()
    def decode_tokens(self, tokens: torch.Tensor, masked: torch.Tensor, total_iter: int = 8,
                      sweet_spot: int | None = None, schedule: str | GammaFn = "cosine",
                      choice_temperature: float = 4.5, sample_temperature: float = 0.0,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, DecodingTrace]:
        """Iterative decoding of a batch of token maps: steps t = 1..S with ratio t/T, then every
        token still masked takes its step-S prediction (S = sweet_spot, default T).
        tokens (B, 256) or (B, 16, 16) ids (values at masked positions are ignored), masked same
        shape, True = to decode. Returns the final (B, 16, 16) tokens and the trace."""
        steps, gamma_fn = check_decoding_args(total_iter, sweet_spot, schedule, choice_temperature, sample_temperature)
        r = self.latent_resolution
        if tokens.shape[0] != masked.shape[0]:
            raise ValueError(f"{tokens.shape[0]} token maps but {masked.shape[0]} masks: counts must match")
        if tokens[0].numel() != r * r or masked[0].numel() != r * r:
            raise ValueError(f"expected {r}x{r} tokens and mask per image, got {tuple(tokens.shape)} and "
                             f"{tuple(masked.shape)}")
        self.transformer.eval()
        masked = masked.reshape(len(masked), -1).bool().to(tokens.device)      # (B, N)
        current = tokens.reshape(len(tokens), -1).masked_fill(masked, self.mask_token_id)  # (B, N)
        m0 = masked.sum(dim=1)                                                  # (B,) per-image M0
        initial = masked.view(-1, r, r).clone()                                 # (B, 16, 16)
        ratios, masks, fills = [], [], []
        for t in range(1, steps + 1):
            ratio = t / total_iter
            step = decode_step(self.transformer, current, masked, m0, ratio, gamma_fn, self.mask_token_id,
                               choice_temperature, sample_temperature, generator)
            current, masked = step.tokens, step.masked
            ratios.append(ratio)
            masks.append(masked.view(-1, r, r))
            fills.append(step.filled.view(-1, r, r))
        trace = DecodingTrace(initial_masked=initial, masked=torch.stack(masks), tokens=torch.stack(fills),
                              ratios=ratios)
        return fills[-1], trace

    # --- images in, images out
    def _check_images(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
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
    def inpaint(self, images: torch.Tensor, masks: torch.Tensor, total_iter: int = 8,
                sweet_spot: int | None = None, schedule: str | GammaFn = "cosine",
                choice_temperature: float = 4.5, sample_temperature: float = 0.0,
                generator: torch.Generator | None = None, paste_known: bool = False,
                dilation: int = 0) -> InpaintResult:
        """Inpaint a batch: images (B, 3, H, W) normalised, masks (B, 1, H, W), 1 = known pixel.
        Encode once, decode tokens iteratively, decode the final tokens to an image;
        ``paste_known`` puts the known input pixels back over the output."""
        check_decoding_args(total_iter, sweet_spot, schedule, choice_temperature, sample_temperature)
        masks = self._check_images(images, masks)
        initial = latent_mask(masks, patch=self.patch, dilation=dilation).to(images.device)  # (B, 16, 16)
        tokens = self.encode_to_z(images)                                       # (B, 256)
        final, trace = self.decode_tokens(tokens, initial, total_iter, sweet_spot, schedule,
                                          choice_temperature, sample_temperature, generator)
        out = self.decode_z(final)                                              # (B, 3, H, W)
        if paste_known:
            out = paste_known_pixels(images, masks, out)
        return InpaintResult(images=out, tokens=final, latent_mask=initial, trace=trace)

    @torch.no_grad()
    def inpaint_course_style(self, images: torch.Tensor, masks: torch.Tensor, total_iter: int = 8,
                             sweet_spot: int | None = None, schedule: str | GammaFn = "cosine",
                             choice_temperature: float = 4.5,
                             generator: torch.Generator | None = None) -> torch.Tensor:
        """SLOW REFERENCE, for the benchmark only: the loop as the course template writes it.
        One image at a time (batch 1), VQGAN encode of the current image and decode of the
        prediction at EVERY step, so the known tokens are re-encoded each step (and can drift).
        Use ``inpaint`` for real work. Returns (B, 3, H, W) normalised images."""
        steps, gamma_fn = check_decoding_args(total_iter, sweet_spot, schedule, choice_temperature)
        masks = self._check_images(images, masks)
        self.transformer.eval()
        outputs = []
        for i in range(len(images)):
            image = images[i:i + 1]                                             # (1, 3, H, W)
            masked = latent_mask(masks[i:i + 1], patch=self.patch).flatten(1).to(images.device)  # (1, 256)
            m0 = masked.sum(dim=1)                                              # (1,)
            for t in range(1, steps + 1):
                tokens = self.encode_to_z(image)                                # (1, 256) re-encoded every step
                step = decode_step(self.transformer, tokens, masked, m0, t / total_iter, gamma_fn,
                                   self.mask_token_id, choice_temperature, 0.0, generator)
                masked = step.masked
                image = self.decode_z(step.filled)                              # (1, 3, H, W) decoded every step
            outputs.append(image)
        return torch.cat(outputs)
