"""Pictures of iterative decoding (notebooks 03 and 05): the course's two per-step figures, one test
image's decoding titled with its settings (what notebook 03's panel shows), the sweet spot and
which tokens go first.

Every function draws what a decoding returned (a ``DecodingTrace``, an ``InpaintResult``, the
per-step images ``trace.images(maskgit)``); it decodes nothing. ``labcore.inpaint.inpaint_one`` and
``inpaint_columns`` decode the test images these figures draw.
"""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib
import torch
from matplotlib.figure import Figure

from labcore.decoding import DecodingSettings, DecodingTrace, decode_step
from labcore.decoding_variants import token_rule
from labcore.maskgit import InpaintResult

from .style import bare, hwc, mask_frames, to_unit

# Per-step strips wrap after this many columns (T = 8 fits one row): at T = 16 a single row would
# be ~2,100 px wide and unreadable once a notebook scales it to the cell width.
DECODING_COLUMNS = 9


def _wrap(columns: int, max_columns: int) -> tuple[int, int]:
    """(blocks, pictures per block row) for ``columns`` pictures, at most ``max_columns`` a row,
    spread evenly: 10 pictures wrap as 5 + 5, not 9 + 1."""
    blocks = math.ceil(columns / max_columns)
    return blocks, math.ceil(columns / blocks)


def _strip_axes(fig: Figure, strips: int, columns: int, max_columns: int) -> list[list]:
    """Axes for ``strips`` rows of ``columns`` pictures, wrapped into blocks (``_wrap``):
    ``axes[strip][s]``. Created strip by strip, so ``fig.axes`` lists strip 0, then strip 1."""
    blocks, per_row = _wrap(columns, max_columns)
    grid = fig.add_gridspec(strips * blocks, per_row)
    return [[fig.add_subplot(grid[(s // per_row) * strips + strip, s % per_row]) for s in range(columns)]
            for strip in range(strips)]


def _draw_mask_strip(axes: list, masks: torch.Tensor, ratios: Sequence[float], highlight_new: bool,
                     per_row: int) -> None:
    """The latent-mask strip of ``decoding_figure``: one 16x16 frame per step, titled with t and r."""
    frames = mask_frames(masks, highlight_new)                                  # (S+1, 16, 16, 3)
    m0 = int(masks[0].sum())
    for s, ax in enumerate(axes):
        ax.imshow(frames[s].numpy(), interpolation="nearest")
        ax.set_title("start" if s == 0 else f"t={s} (r={ratios[s - 1]:.2f})", fontsize=8)
        ax.set_xlabel(f"{int(masks[s].sum())}/{m0} masked", fontsize=7)
        bare(ax, frame=True)
        if s % per_row == 0:
            ax.set_ylabel("latent mask", fontsize=8)


def _draw_prediction_strip(axes: list[list], pictures: list, normalization, per_row: int, blocks: int) -> None:
    """The picture strip of ``decoding_figure`` (``axes[1]``): the masked input (or nothing), then
    each step's prediction; the first picture is named below it, or above the first mask frame."""
    for s, (ax, picture) in enumerate(zip(axes[1], pictures)):
        if picture is not None:
            ax.imshow(hwc(to_unit(picture, normalization)), interpolation="nearest")
        bare(ax)
        if s % per_row == 0:
            ax.set_ylabel("prediction", fontsize=8)
    if blocks == 1:  # below a wrapped block's first picture this label would touch the next block
        axes[1][0].set_xlabel("masked input", fontsize=7)
    else:
        axes[0][0].set_title("start (masked input below)", fontsize=8)


def decoding_figure(trace: DecodingTrace, step_images: torch.Tensor | None = None,
                    masked_input: torch.Tensor | None = None, normalization=None, index: int = 0,
                    title: str | None = None, highlight_new: bool = True,
                    max_columns: int = DECODING_COLUMNS) -> Figure:
    """The course's two figures for one image of a decoded batch, as two strips of S+1 pictures
    (wrapped into blocks of ``max_columns`` so that large T stays readable).

    Strip 1, the latent mask at each iteration: the initial mask, then the mask after steps
    1..S (black = still masked; orange = decoded at that step).
    Strip 2, the predicted image at each iteration: the masked input, then the decoded prediction
    after steps 1..S. ``step_images`` is ``trace.images(maskgit)`` (S, B, 3, H, W), normalised;
    without it only the mask strip is drawn."""
    masks = trace.masks()[:, index]                                             # (S+1, 16, 16)
    steps = len(masks) - 1
    if step_images is not None and len(step_images) != steps:
        raise ValueError(f"step_images has {len(step_images)} steps, the trace {steps}")
    strips = 1 if step_images is None else 2
    blocks, per_row = _wrap(steps + 1, max_columns)
    # constrained layout keeps the labels of wrapped blocks clear of each other
    fig = Figure(figsize=(1.25 * per_row + 0.6, 1.45 * strips * blocks + 0.5), layout="constrained")
    axes = _strip_axes(fig, strips, steps + 1, max_columns)
    _draw_mask_strip(axes[0], masks, trace.ratios, highlight_new, per_row)
    if step_images is not None:
        pictures = [masked_input[index] if masked_input is not None else None] + list(step_images[:, index])
        _draw_prediction_strip(axes, pictures, normalization, per_row, blocks)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _token_text(t: float) -> str:
    """'argmax tokens' or 'tokens sampled at temperature t' (``token_rule``'s words)."""
    return f"{token_rule(t)} tokens" if t == 0 else f"tokens {token_rule(t)} at temperature {t:g}"


def step_text(step) -> str:
    """Whose step function decodes, in words: '' for labcore's ``decode_step``, 'your decode_step'
    for one defined in the notebook (or script) itself, else 'module.name'."""
    if step is decode_step:
        return ""
    name = getattr(step, "__name__", None) or type(step).__name__
    module = getattr(step, "__module__", None)
    return f"your {name}" if module in (None, "__main__") else f"{module}.{name}"


def show_decoding(item: dict, result: InpaintResult, step_images: torch.Tensor, normalization,
                  settings: DecodingSettings, step=decode_step) -> Figure:
    """One test image's decoding, drawn (what notebook 03's panel shows): the per-step strips of
    ``decoding_figure`` (S+1 pictures per strip), titled with the image's name, the ``settings``
    it was decoded with and, when it is not labcore's ``decode_step``, whose ``step`` decoded.
    ``item``: the test set's item; ``result``: its ``InpaintResult`` (a batch of one);
    ``step_images``: ``result.trace.images(maskgit)``."""
    whose = step_text(step)
    title = (f"{item['name']}: {settings.schedule} schedule, T={settings.total_iter}, sweet spot S={settings.steps}\n"
             f"choice temperature {settings.choice_temperature:g}, {_token_text(settings.sample_temperature)}, "
             f"seed {settings.seed}" + (f", step: {whose}" if whose else ""))
    return decoding_figure(result.trace, step_images, item["image"][None], normalization, title=title)


def sweet_spot_figure(item: dict, results: dict[str, InpaintResult], normalization,
                      settings: DecodingSettings) -> Figure:
    """The sweet spot: one test image decoded with ``settings`` and stopped after S steps, one
    column per entry of ``results`` (label -> result, e.g. ``{"S = 6": ...}``; decoded with the
    same seed by ``labcore.inpaint.inpaint_columns``, so the first steps of every column are the
    same steps). Top row: the latent mask when decoding stops (black = still masked: these tokens
    all take their step-S prediction at once; orange = decoded at step S); bottom row: the image.
    First column: the masked input, last: the ground truth."""
    fig = Figure(figsize=(1.3 * (len(results) + 2) + 0.4, 3.3), layout="constrained")
    axes = fig.subplots(2, len(results) + 2)
    for col, (label, result) in enumerate(results.items(), start=1):
        masks = result.trace.masks()[:, 0]                                      # (S+1, 16, 16)
        axes[0, col].imshow(mask_frames(masks)[-1].numpy(), interpolation="nearest")
        axes[0, col].set_title(label, fontsize=9)
        axes[0, col].set_xlabel(f"{int(masks[-1].sum())} of {int(masks[0].sum())}\nfilled at once", fontsize=7)
        axes[1, col].imshow(hwc(to_unit(result.images[0], normalization)), interpolation="nearest")
    axes[0, 0].imshow(mask_frames(masks[:1])[0].numpy(), interpolation="nearest")
    axes[0, 0].set_title("latent mask", fontsize=9)
    axes[1, 0].imshow(hwc(to_unit(item["image"], normalization)), interpolation="nearest")
    axes[1, 0].set_xlabel("masked input", fontsize=7)
    axes[1, -1].imshow(hwc(to_unit(item["target"], normalization)), interpolation="nearest")
    axes[1, -1].set_xlabel("ground truth", fontsize=7)
    axes[0, -1].set_axis_off()
    for ax in axes.flat:
        bare(ax, frame=True)
    fig.suptitle(f"{item['name']}: stop after S of T={settings.total_iter} steps ({settings.schedule}, "
                 f"choice temperature {settings.choice_temperature:g}, {_token_text(settings.sample_temperature)}, "
                 f"seed {settings.seed})", fontsize=9)
    return fig


def decoded_at_step(trace: DecodingTrace, index: int = 0) -> torch.Tensor:
    """(16, 16) long: the step t at which each token of image ``index`` was decoded (kept; the last
    such step where re-masking (``remask``) decoded it again), 0 for known tokens and -1 for tokens
    still masked when decoding stopped (sweet spot S < T)."""
    masks = trace.masks()[:, index].cpu()                                       # (S+1, 16, 16)
    newly = masks[:-1] & ~masks[1:]                                             # (S, 16, 16) decoded at step s+1
    steps = torch.arange(1, len(newly) + 1)[:, None, None]                      # (S, 1, 1)
    at = (newly.long() * steps).amax(0)                                         # (16, 16) the last step
    return torch.where(masks[-1], torch.full_like(at, -1), at)


def decoding_order_figure(item: dict, results: dict[str, InpaintResult], normalization,
                          settings: DecodingSettings) -> Figure:
    """Which tokens go first: one test image decoded with ``settings`` and one change per column
    (label -> result, e.g. ``{"τ = 0": ...}`` or ``{"halton order": ...}``; decoded with the same
    seed by ``labcore.inpaint.inpaint_columns``). Top row: a map of the step at which each masked
    token was decoded (``decoded_at_step``: dark = early, yellow = late; white = known); bottom
    row: the image."""
    T = max(len(result.trace.ratios) for result in results.values())           # steps run (S)
    cmap = matplotlib.colormaps["viridis"].resampled(T).with_extremes(under="white")  # known tokens (0): white
    fig = Figure(figsize=(1.45 * len(results) + 1.6, 3.5), layout="constrained")
    axes = fig.subplots(2, len(results), squeeze=False)
    for col, (label, result) in enumerate(results.items()):
        at = decoded_at_step(result.trace).float()                              # (16, 16)
        shown = axes[0, col].imshow(at.numpy(), cmap=cmap, vmin=0.5, vmax=T + 0.5, interpolation="nearest")
        axes[0, col].set_title(label, fontsize=9)
        axes[1, col].imshow(hwc(to_unit(result.images[0], normalization)), interpolation="nearest")
    for ax in axes.flat:
        bare(ax, frame=True)
    axes[0, 0].set_ylabel("decoded at step", fontsize=8)
    axes[1, 0].set_ylabel("inpainted", fontsize=8)
    fig.colorbar(shown, ax=axes[0, :], ticks=range(1, T + 1), shrink=0.9, label="step t")
    fig.suptitle(f"{item['name']}: which tokens go first ({settings.schedule}, T={settings.total_iter}, "
                 f"{_token_text(settings.sample_temperature)}, seed {settings.seed})", fontsize=9)
    return fig
