"""Iterative decoding of MaskGIT (Chang et al. 2022, sec. 3.2; google-research/maskgit, ``libml/parallel_decode.py``):
fill an image's M0 masked tokens in T parallel steps instead of one token at a time.

At step t = 1..T, with ratio r = t/T, for every token i still masked:

    y_i = argmax_k p(k | Y_masked)                  (or a sample of softmax(logits / sample_temperature))
    c_i = log p(y_i | Y_masked) + tau * (1 - r) * g_i,     g_i ~ Gumbel(0, 1), drawn per token
    n   = floor(gamma(r) * M0), clamped to [1, remaining - 1]; n = 0 at the last step (r = 1)

and the n least confident predictions are masked again; the rest are kept for good. tau is the choice temperature,
annealed to 0 at the last step. Known tokens have c_i = +inf: never changed. Each image of a batch has its own M0,
so its own schedule. Stopping at the sweet spot S < T gives every token still masked its step-S prediction.

Order ``"halton"`` (Besnier et al., ICLR 2025, "Halton Scheduler for Masked Generative Image Transformers")
keeps the same n per step but ignores the confidences: the masked tokens kept are those first in a fixed,
low-discrepancy spatial order of the 16x16 grid (the 2-D Halton sequence, bases 2 and 3), so each step's tokens
are spread out and condition each other little. With ``sample_temperature_anneal`` the sample temperature falls
linearly to 0 over the steps, like tau: early tokens are drawn freely, the last ones, with the most context, argmax.

With ``remask`` = eta > 0 (ReMDM-conf: Wang et al. 2025, "Remasking Discrete Diffusion Models with
Inference-Time Scaling"), after each step t < S the loop masks again k_t = floor(eta * (1 - t/T) * D_t)
of the D_t tokens it decoded at earlier steps: those with the lowest psi = log p(y_i) when decoded.
The next steps predict them again, with more context (confidence order only).

``DecodingSettings``: every setting, validated once; ``decode_step``: one step for a batch (``masked_count_after_step``:
its n); ``decode``: the loop over t with any step function of ``decode_step``'s signature, and its ``DecodingTrace``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
from torch import nn

from labcore.schedules import SCHEDULES, GammaFn, as_gamma, gamma
from labcore.validate import integer, number, one_of

# More steps than the 16x16 = 256 tokens of an image cannot each decode a token: meaningless.
MAX_TOTAL_ITER = 256
ORDERS = ("confidence", "halton")  # which masked tokens a step keeps: MaskGIT's rule, or the Halton order


# ----------------------------------------------------------------------------- random numbers

def uniform(shape, generator: torch.Generator | None, device: torch.device, dtype=torch.float32) -> torch.Tensor:
    """U(0,1) drawn on the generator's own device: a CPU generator gives the same numbers on every device."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=gen_device, dtype=dtype).to(device)


def gumbel(shape, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Independent standard Gumbel samples, one per element: g = -log(-log(u))."""
    return -torch.log(-torch.log(uniform(shape, generator, device).clamp_min(1e-20)))


# ----------------------------------------------------------------------------- the settings

@dataclass(frozen=True)
class DecodingSettings:
    """How to decode: validated once, here, so no function down the line checks them again.

    schedule: gamma, a name from ``SCHEDULES`` or a gamma function; total_iter: T, the steps it spans (1..256).
    sweet_spot: S <= T: stop after S steps, every token still masked takes its step-S prediction (None: S = T).
    choice_temperature: tau, the scale of the per-token Gumbel noise on the confidences (0 = none), annealed to 0.
    sample_temperature: 0 takes each token's argmax; t > 0 samples softmax(logits / t).
    sample_temperature_anneal: multiply the sample temperature by (1 - r), as tau is.
    seed: the seed of the random stream a decoding draws from when it is given no generator.
    paste_known: put the known input pixels back over the decoded image.
    dilation: also mask every token within this many tokens of a masked one.
    order: which tokens a step keeps (``ORDERS``): "confidence" (MaskGIT's) or "halton" (``halton_order``, no noise).
    remask: eta in [0, 1), the share of decoded tokens masked again after a step (0 = MaskGIT).
    """

    schedule: str | GammaFn = "cosine"
    total_iter: int = 8
    sweet_spot: int | None = None
    choice_temperature: float = 4.5
    sample_temperature: float = 0.0
    seed: int = 0
    paste_known: bool = False
    dilation: int = 0
    order: str = "confidence"
    sample_temperature_anneal: bool = False
    remask: float = 0.0

    def __post_init__(self):
        schedule = _schedule(self.schedule)
        T = integer("total_iter (T)", self.total_iter, 1, MAX_TOTAL_ITER,
                    f"an integer in 1..{MAX_TOTAL_ITER} (no more steps than the 16x16 = 256 tokens)")
        S = None if self.sweet_spot is None else integer(
            "sweet_spot (S)", self.sweet_spot, 1, T, f"an integer with 1 <= S <= total_iter (T={T})")
        valid = dict(schedule=schedule, total_iter=T, sweet_spot=S,
                     choice_temperature=number("choice temperature (choice_temperature)", self.choice_temperature,
                                               0, allowed="a finite number >= 0 (0 = no noise)"),
                     sample_temperature=number("sample temperature (sample_temperature)", self.sample_temperature,
                                               0, allowed="a finite number >= 0 (0 = argmax tokens)"),
                     seed=integer("seed", self.seed, -2**63, 2**64 - 1, "an integer"),
                     dilation=integer("dilation", self.dilation, 0), paste_known=bool(self.paste_known),
                     order=one_of("order", self.order, ORDERS),
                     sample_temperature_anneal=bool(self.sample_temperature_anneal),
                     remask=number("remask", self.remask, 0, 1, "a number in [0, 1) (0: none)", high_open=True))
        if valid["remask"] > 0 and valid["order"] != "confidence":
            raise ValueError(f"remask re-masks by confidence: it needs order 'confidence', got order {self.order!r}")
        for name, value in valid.items():
            object.__setattr__(self, name, value)  # frozen: each normalised value is stored once, here

    @property
    def steps(self) -> int:
        """S, the number of steps a decoding runs (the sweet spot, or T)."""
        return self.total_iter if self.sweet_spot is None else self.sweet_spot

    @property
    def gamma_fn(self) -> GammaFn:
        return as_gamma(self.schedule)

    def replace(self, **changes) -> "DecodingSettings":
        """A copy with ``changes`` (validated again: S <= T must still hold)."""
        return dataclasses.replace(self, **changes)

    def generator(self) -> torch.Generator:
        """A fresh CPU random stream seeded with ``seed``: the same numbers on every device."""
        return torch.Generator().manual_seed(self.seed)

    @classmethod
    def resolve(cls, settings: "DecodingSettings | None" = None, **changes) -> "DecodingSettings":
        """``settings`` (default: the defaults) with keyword ``changes`` (e.g. ``total_iter=4``), as functions do."""
        if settings is not None and not isinstance(settings, cls):
            raise TypeError(f"settings must be a DecodingSettings, got {settings!r}; "
                            "pass single settings by keyword (e.g. total_iter=8)")
        settings = cls() if settings is None else settings
        return settings.replace(**changes) if changes else settings


def _schedule(schedule: str | GammaFn) -> str | GammaFn:
    """A schedule name (stripped, lower-case) or a gamma function; else a ValueError."""
    if isinstance(schedule, str):
        gamma(schedule)  # an unknown name fails here, listing the choices
        return schedule.strip().lower()
    if not callable(schedule):
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)} or a gamma function, got {schedule!r}")
    return schedule


# ----------------------------------------------------------------------------- one decoding step

def radical_inverse(i: int, base: int) -> float:
    """The i-th term of the van der Corput sequence in ``base``: i's digits mirrored after the point."""
    value, scale = 0.0, 1.0
    while i > 0:
        i, digit = divmod(i, base)
        scale /= base
        value += digit * scale
    return value


@functools.lru_cache(maxsize=None)
def halton_order(size: int = 16) -> tuple[int, ...]:
    """The size*size positions (row * size + col) in the order the 2-D Halton sequence (x in base
    2, y in base 3, from i = 0) first reaches their cells: a permutation, computed once."""
    cells, i = {}, 0  # an ordered set: a cell met again keeps its first place
    while len(cells) < size * size:
        cells[int(radical_inverse(i, 3) * size) * size + int(radical_inverse(i, 2) * size)] = None
        i += 1
    return tuple(cells)


def halton_rank(n_tokens: int, device: torch.device) -> torch.Tensor:
    """(N,) each position's place in ``halton_order`` of the sqrt(N) x sqrt(N) grid."""
    order = torch.tensor(halton_order(math.isqrt(n_tokens)), device=device)
    return torch.empty_like(order).scatter_(0, order, torch.arange(n_tokens, device=device))


def masked_count_after_step(ratio: float, m0: torch.Tensor, remaining: torch.Tensor,
                            gamma_fn: GammaFn) -> torch.Tensor:
    """n, how many tokens of each image stay masked after the step at ``ratio`` = t/T: floor(gamma(t/T) * M0), M0
    the image's own initial masked count, clamped to [1, remaining - 1] (every step decodes a token or more and
    leaves one for later; the lower bound wins: a last token waits for the last step); 0 at the end or if none left."""
    if ratio >= 1:
        return torch.zeros_like(remaining)
    n = torch.floor(gamma_fn(float(ratio)) * m0.double()).long()                # (B,)
    n = torch.clamp(torch.minimum(n, remaining - 1), min=1)                     # (B,)
    return torch.where(remaining > 0, n, torch.zeros_like(n))                   # (B,)


class StepResult(NamedTuple):
    tokens: torch.Tensor   # (B, N) ids; the mask token where still masked
    masked: torch.Tensor   # (B, N) bool, True = still masked after the step
    filled: torch.Tensor   # (B, N) ids; every masked token filled with this step's prediction


class ScoredStep(StepResult):
    """A ``StepResult`` (it unpacks in three, as a student's step's does) that also carries ``confidence``
    (B, N): log p of each masked token's prediction, -inf elsewhere, which ``remask`` reads."""

    def __new__(cls, tokens: torch.Tensor, masked: torch.Tensor, filled: torch.Tensor, confidence: torch.Tensor):
        result = super().__new__(cls, tokens, masked, filled)
        result.confidence = confidence
        return result


@torch.no_grad()
def decode_step(transformer: nn.Module, tokens: torch.Tensor, masked: torch.Tensor, m0: torch.Tensor,
                ratio: float, settings: DecodingSettings, mask_token_id: int,
                generator: torch.Generator | None = None) -> StepResult:
    """One step of iterative decoding for a batch (the formulas: this module's docstring).

    tokens (B, N) ids, masked (B, N) bool (True = still to decode), m0 (B,) each image's initial
    masked count, ratio = t/T; gamma and the two temperatures come from ``settings``. The mask
    token id is K (the codebook size): the transformer's logit for it is never chosen.
    """
    tokens = tokens.masked_fill(masked, mask_token_id)                          # (B, N) what the model sees
    if not masked.any():                                                        # nothing left to decode
        return ScoredStep(tokens, masked, tokens, torch.full(masked.shape, -math.inf, device=masked.device))
    logits = transformer(tokens)[..., :mask_token_id].float()                   # (B, N, K) codebook logits only
    log_probs = logits.log_softmax(dim=-1)                                      # (B, N, K) log p(k | Y_masked)
    temperature = settings.sample_temperature * ((1 - ratio) if settings.sample_temperature_anneal else 1)
    if temperature > 0:  # Gumbel-max trick: one sample of softmax(logits / temperature)
        noisy = logits / temperature + gumbel(logits.shape, generator, logits.device)  # (B, N, K)
        predicted = noisy.argmax(dim=-1)                                        # (B, N) y_i
    else:  # the course's rule: the most likely token
        predicted = logits.argmax(dim=-1)                                       # (B, N) y_i
    confidence = log_p = log_probs.gather(-1, predicted[..., None]).squeeze(-1)  # (B, N) log p(y_i)
    if settings.order == "halton":  # a fixed order: the later in it, the "less confident"
        confidence = -halton_rank(masked.shape[1], masked.device).float().expand_as(masked)  # (B, N)
    elif settings.choice_temperature > 0:  # one Gumbel sample PER TOKEN (a shared one changes no order)
        noise = gumbel(masked.shape, generator, masked.device)                  # (B, N) g_i
        confidence = confidence + settings.choice_temperature * (1 - ratio) * noise  # annealed to 0 at r = 1
    confidence = confidence.masked_fill(~masked, float("inf"))                  # (B, N) known: never re-masked
    filled = torch.where(masked, predicted, tokens)                             # (B, N) known tokens unchanged

    n = masked_count_after_step(ratio, m0.to(masked.device), masked.sum(dim=1), settings.gamma_fn)  # (B,)
    order = confidence.argsort(dim=1, stable=True)                              # (B, N) least confident first
    remask = torch.arange(masked.shape[1], device=masked.device)[None, :] < n[:, None]  # (B, N) first n in order
    new_masked = torch.zeros_like(masked).scatter(1, order, remask)             # (B, N) back to positions
    return ScoredStep(filled.masked_fill(new_masked, mask_token_id), new_masked, filled,
                      log_p.masked_fill(~masked, -math.inf))


# ----------------------------------------------------------------------------- the loop and its trace

@dataclass
class DecodingTrace:
    """What iterative decoding did, step by step (S steps run).

    initial_masked (B, 16, 16) bool; masked (S, B, 16, 16) bool after each step (re-masked tokens
    included); tokens (S, B, 16, 16) each step's prediction with every masked token filled; ratios[s] = (s+1)/T.
    """
    initial_masked: torch.Tensor
    masked: torch.Tensor
    tokens: torch.Tensor
    ratios: list[float]

    def masks(self) -> torch.Tensor:
        """(S+1, B, 16, 16) bool: the initial latent mask, then the mask after each step."""
        return torch.cat([self.initial_masked[None], self.masked])

    @torch.no_grad()
    def images(self, maskgit, chunk: int = 64) -> torch.Tensor:
        """Decode every step's tokens with ``maskgit.decode_z``: (S, B, 3, H, W), normalised."""
        S, B = self.tokens.shape[:2]
        flat = self.tokens.flatten(0, 1)                                        # (S*B, 16, 16)
        out = torch.cat([maskgit.decode_z(flat[i:i + chunk]) for i in range(0, len(flat), chunk)])
        return out.unflatten(0, (S, B))                                         # (S, B, 3, H, W)


def remask_decoded(result: StepResult, masked: torch.Tensor, psi: torch.Tensor, ratio: float, eta: float,
                   mask_token_id: int) -> tuple[StepResult, torch.Tensor]:
    """ReMDM-conf after step t (``masked``: its input mask; psi (B, N): the log p each token decoded at an
    earlier step had when decoded, inf: none): in each image, the k_t = floor(eta * (1 - t/T) * D_t) of its D_t
    such tokens with the lowest psi (ties: lower position first) are masked again; psi gains step t's tokens."""
    if getattr(result, "confidence", None) is None:
        raise ValueError("remask needs a step that returns confidences (labcore's decode_step)")
    (tokens, new_masked, filled), confidence = result, result.confidence
    k = torch.floor(eta * (1 - ratio) * (psi < math.inf).sum(dim=1).double()).long()  # (B,) k_t < D_t
    again = psi.argsort(dim=1, stable=True).argsort(dim=1) < k[:, None]         # (B, N) the k_t lowest psi
    psi = torch.where(masked & ~new_masked, confidence, psi.masked_fill(again, math.inf))  # (B, N) + step t's
    return ScoredStep(tokens.masked_fill(again, mask_token_id), new_masked | again, filled, confidence), psi


@torch.no_grad()
def decode(transformer: nn.Module, tokens: torch.Tensor, masked: torch.Tensor, mask_token_id: int,
           settings: DecodingSettings, generator: torch.Generator | None = None,
           step: Callable = decode_step) -> tuple[torch.Tensor, DecodingTrace]:
    """Iterative decoding of a batch of token maps with ``settings``: steps t = 1..S at ratio t/T.

    tokens (B, r, r) ids (ignored where masked), masked (B, r, r) bool, True = to decode. ``generator`` is the
    random stream (shared across the batches of one run); None = a fresh one seeded with settings.seed. ``step`` is
    the step function: ``decode_step`` or your own with its signature, returning a ``StepResult`` (with its
    confidences for ``remask``) or a (tokens, masked, filled) tuple. Returns the final (B, r, r) tokens and the trace.
    """
    generator = settings.generator() if generator is None else generator
    r = masked.shape[-1]
    transformer.eval()                                                          # no dropout while decoding
    masked = masked.reshape(len(masked), -1).bool().to(tokens.device)          # (B, N)
    current = tokens.reshape(len(tokens), -1).masked_fill(masked, mask_token_id)  # (B, N)
    m0 = masked.sum(dim=1)                                                      # (B,) per-image M0: its own schedule
    initial = masked.view(-1, r, r).clone()                                     # (B, r, r)
    ratios, masks, fills = [], [], []
    psi = torch.full(masked.shape, math.inf, device=masked.device)             # (B, N) log p when decoded (remask)
    for t in range(1, settings.steps + 1):  # ratio t/T even when stopping at S < T: the schedule is T's
        ratio = t / settings.total_iter
        result = step(transformer, current, masked, m0, ratio, settings, mask_token_id, generator)
        if settings.remask > 0 and t < settings.steps:  # ReMDM: never after the last step run
            result, psi = remask_decoded(result, masked, psi, ratio, settings.remask, mask_token_id)
        current, masked, filled = result                                        # (B, N) x 3
        ratios.append(ratio)
        masks.append(masked.view(-1, r, r))                                     # (B, r, r)
        fills.append(filled.view(-1, r, r))                                     # (B, r, r)
    trace = DecodingTrace(initial_masked=initial, masked=torch.stack(masks), tokens=torch.stack(fills),
                          ratios=ratios)
    return fills[-1], trace  # tokens still masked after step S take their step-S prediction
