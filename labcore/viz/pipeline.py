"""The whole pipeline in one picture (README, notebook 00, ``scripts/pipeline-figure.py``): one test
image through the VQGAN encoder, the latent mask, iterative decoding and the VQGAN decoder, drawn
from what the real models returned (``labcore.inpaint.pipeline_stages`` decodes it)."""

from __future__ import annotations

import matplotlib
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from labcore.decoding import DecodingSettings
from labcore.maskgit import InpaintResult

from .style import bare, hwc, mask_frames, to_unit


def _arrow(ax, label: str, direction: str = "right") -> None:
    """An arrow across an empty axes ("right", "left" or "down") with a short ``label`` beside it."""
    ax.set_axis_off()
    start, end = {"right": ((0, 0.5), (1, 0.5)), "left": ((1, 0.5), (0, 0.5)), "down": ((0.5, 1), (0.5, 0))}[direction]
    ax.annotate("", xy=end, xytext=start, xycoords="axes fraction",
                arrowprops=dict(arrowstyle="-|>", color="0.3", lw=1.2, shrinkA=0, shrinkB=0))
    where = dict(x=0.5, y=0.58, ha="center", va="bottom") if direction != "down" else \
        dict(x=0.4, y=0.5, ha="right", va="center")
    ax.text(s=label, fontsize=7.5, color="0.15", transform=ax.transAxes, **where)


def _panels(item: dict, result: InpaintResult, tokens: torch.Tensor, num_codes: int, normalization,
            settings: DecodingSettings) -> tuple[list, list]:
    """(top row, bottom row) of (title, picture or None for the transformer's box, detail below)."""
    K = num_codes
    ids = tokens.detach().cpu().reshape(result.latent_mask.shape[-2:])          # (16, 16) codebook ids
    colours = torch.from_numpy(matplotlib.colormaps["nipy_spectral"](ids.numpy() / (K - 1))[..., :3]).float()
    latent = result.latent_mask[0].cpu()                                        # (16, 16) True = masked
    masks = result.trace.masks()[:, 0].cpu()                                    # (S+1, 16, 16)
    frames = mask_frames(masks)                                                 # (S+1, 16, 16, 3)
    S = len(masks) - 1
    steps = sorted({1, (S + 1) // 2, S})
    top = [("masked input", hwc(to_unit(item["image"], normalization)), "64x64 pixels"),
           ("tokens", colours.numpy(), f"16x16 ids in [0, {K})"),
           ("latent mask", torch.where(latent[..., None], 0.0, colours).numpy(), f"{int(latent.sum())} of 256 masked"),
           ("transformer", None, f"{settings.schedule} schedule, T={settings.total_iter}")]
    bottom = [(f"step {t} of {settings.total_iter}", frames[t].numpy(), f"{int(masks[t].sum())} still masked")
              for t in steps] + [("inpainted", hwc(to_unit(result.images[0], normalization)), "VQGAN decoder output")]
    return top, bottom


def _draw_panel(ax, title: str, picture, detail: str) -> None:
    """One stage: its picture (or the transformer's box), its title above and its detail below."""
    if picture is None:  # the transformer: a box, not a picture
        ax.add_patch(Rectangle((0, 0), 1, 1, facecolor="#dbe7f5", edgecolor="0.3"))
        ax.text(0.5, 0.5, "bidirectional\ntransformer:\nall tokens\nat once", ha="center", va="center", fontsize=8)
        ax.set_box_aspect(1)
        ax.set_axis_off()
    else:
        ax.imshow(picture, interpolation="nearest")
        bare(ax, frame=True)
    ax.set_title(title, fontsize=9)
    ax.text(0.5, -0.05, detail, ha="center", va="top", fontsize=7.5, transform=ax.transAxes)


def _draw_arrows(fig: Figure, grid, steps: int) -> None:
    """The arrows between the stages (and the note on the latent masks' colours in the middle row)."""
    for i, label in enumerate(["VQGAN encoder\n+ quantiser", "mask the\nhole's tokens", "masked\n= id K"]):
        _arrow(fig.add_subplot(grid[0, 2 * i + 1]), label)
    _arrow(fig.add_subplot(grid[1, -1]), "keep the most\nconfident", "down")
    for i, label in enumerate(["VQGAN\ndecoder"] + ["predict again,\nkeep more"] * (steps - 1)):
        _arrow(fig.add_subplot(grid[2, 2 * i + 1]), label, "left")
    note = fig.add_subplot(grid[1, :-2])
    note.set_axis_off()
    note.text(0.5, 0.5, "latent masks: black = masked token (to predict), white = known or decoded,\n"
              "orange = decoded at that step; the transformer runs once per step", ha="center", va="center",
              fontsize=7.5, color="0.15", transform=note.transAxes)


def pipeline_figure(item: dict, result: InpaintResult, tokens: torch.Tensor, num_codes: int, normalization,
                    settings: DecodingSettings) -> Figure:
    """MaskGIT inpainting of one test image, stage by stage, as a U. ``item``: the test set's
    item; ``result``: its ``InpaintResult`` with ``settings`` (a batch of one); ``tokens``: the
    (16, 16) or (1, 256) codebook ids of the masked input (``labcore.inpaint.pipeline_stages`` gives all these);
    ``num_codes``: K. Top row, left to right, then bottom row, right to left, arrows between stages:

    1. "masked input": the 64x64 test image with its hole (pixels in [0, 1]);
    2. "tokens": its 16x16 token map, VQGAN encoder + quantiser (colour = codebook id);
    3. "latent mask": the same map with the tokens the hole touches masked (black: mask id K);
    4. "transformer": the bidirectional transformer (a box), which predicts every masked token;
    5. "step t" for three steps t of iterative decoding: the latent mask after step t (black =
       still masked, orange = decoded at step t, white = known or decoded before), the count
       still masked below;
    6. "inpainted": the final tokens through the VQGAN decoder (below the input, to compare).
    """
    top, bottom = _panels(item, result, tokens, num_codes, normalization, settings)  # bottom: drawn right to left
    fig = Figure(figsize=(7.2, 4.1))
    grid = fig.add_gridspec(3, 2 * len(top) - 1, width_ratios=[1, 0.75] * (len(top) - 1) + [1],
                            height_ratios=[1, 0.62, 1], left=0.025, right=0.975, top=0.86, bottom=0.07,
                            wspace=0.05, hspace=0.3)
    for row, panels in ((0, top), (2, bottom)):
        for i, panel in enumerate(panels):
            _draw_panel(fig.add_subplot(grid[row, 2 * len(top) - 2 - 2 * i if row == 2 else 2 * i]), *panel)
    _draw_arrows(fig, grid, len(bottom) - 1)               # one arrow per step shown
    fig.suptitle(f"MaskGIT inpainting of test image {item['name']}", fontsize=10)
    return fig
