"""Pictures for the notebooks: image grids, token maps, mask schedules, attention maps, training
curves and the course's two decoding figures; ``show_decoding`` decodes one test image and draws
its figures; ``pipeline_figure`` draws the whole pipeline (README, notebook 00).

Every function returns a matplotlib ``Figure`` (drawn with pyplot, so a notebook shows it
inline; ``pipeline_figure``'s is a bare one, shown when a cell returns it) and takes images in the models' normalised space together with the ``Normalization``
that brings them back to [0, 1]. The interactive decoding panel of notebook 03, which redraws
``show_decoding`` when a control moves, is ``labcore.widgets``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torchvision.utils import make_grid

from labcore.csv_tables import read_csv
from labcore.decoding import DecodingSettings, DecodingTrace, decode_step
from labcore.metrics import code_stats
from labcore.schedules import SCHEDULES, gamma

COURSE_SCHEDULES = ("linear", "cosine", "square")


def token_rule(sample_temperature: float) -> str:
    """How decoding picks a token: "argmax" (sample temperature 0, the course's rule) or "sampled"
    (t > 0: from softmax(logits / t)). The name in figures and in ``labcore experiment``'s table."""
    return "argmax" if sample_temperature == 0 else "sampled"

# latent-mask colours (RGB in [0, 1]): the course's black/white, plus the tokens decoded at this step
KNOWN, MASKED, NEW = (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0.55, 0.0)


def _to_unit(images: torch.Tensor, normalization=None) -> torch.Tensor:
    """(..., 3, H, W) normalised (or already in [0, 1] when ``normalization`` is None) -> [0, 1] on CPU."""
    images = images.detach().float().cpu()
    return normalization.denormalize(images) if normalization is not None else images.clamp(0, 1)


def _hwc(image: torch.Tensor) -> np.ndarray:
    return image.permute(1, 2, 0).numpy()                                       # (H, W, 3) for imshow


def _bare(ax, frame: bool = False) -> None:
    """No ticks; a thin grey frame (for pictures whose edge is white) or none."""
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(frame)
        side.set_color("0.6")


# ----------------------------------------------------------------------------- image grids

def image_grid(images: torch.Tensor, nrow: int = 8, normalization=None, padding: int = 2,
               pad_value: float = 0.8) -> torch.Tensor:
    """``torchvision.utils.make_grid`` of (B, 3, H, W) images -> (3, H', W') in [0, 1]."""
    return make_grid(_to_unit(images, normalization), nrow=nrow, padding=padding, pad_value=pad_value)


def show_images(images: torch.Tensor, nrow: int = 8, normalization=None, title: str | None = None,
                row_labels: Sequence[str] | None = None, scale: float = 1.0, padding: int = 2) -> Figure:
    """A grid of images (``nrow`` per row), with an optional label left of each row."""
    grid = image_grid(images, nrow=nrow, normalization=normalization, padding=padding)  # (3, H', W')
    rows = math.ceil(len(images) / nrow)
    height, width = images.shape[-2:]
    fig, ax = plt.subplots(figsize=(scale * 0.9 * min(nrow, len(images)) + (1.2 if row_labels else 0.2),
                                    scale * 0.9 * rows + (0.5 if title else 0.1)))
    ax.imshow(_hwc(grid), interpolation="nearest")
    _bare(ax)
    if row_labels:
        if len(row_labels) != rows:
            raise ValueError(f"row_labels: {len(row_labels)} labels for {rows} rows of images")
        ax.set_yticks([padding + (height + padding) * (i + 0.5) for i in range(rows)], list(row_labels))
        ax.tick_params(length=0)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def show_image_rows(rows: dict[str, torch.Tensor], normalization=None, title: str | None = None,
                    scale: float = 1.0) -> Figure:
    """Rows of images of equal length, labelled: e.g. {"masked": x, "inpainted": y, "ground truth": z}."""
    lengths = {len(v) for v in rows.values()}
    if len(lengths) != 1:
        raise ValueError(f"show_image_rows: every row needs the same number of images, got "
                         f"{ {k: len(v) for k, v in rows.items()} }")
    n = lengths.pop()
    images = torch.cat([_to_unit(v, normalization) for v in rows.values()])     # (R*n, 3, H, W)
    return show_images(images, nrow=n, title=title, row_labels=list(rows), scale=scale)


# ----------------------------------------------------------------------------- tokens (notebook 00)

def plot_token_maps(indices: torch.Tensor, num_codes: int, images: torch.Tensor | None = None,
                    normalization=None, title: str | None = None) -> Figure:
    """Each image's 16x16 token map (codebook id as a colour), under the image when given."""
    indices = indices.detach().cpu().reshape(len(indices), *indices.shape[-2:])  # (B, 16, 16)
    n = len(indices)
    rows = 2 if images is not None else 1
    fig, axes = plt.subplots(rows, n, figsize=(1.3 * n, 1.4 * rows + 0.4), squeeze=False)
    for i in range(n):
        if images is not None:
            axes[0, i].imshow(_hwc(_to_unit(images[i], normalization)), interpolation="nearest")
            _bare(axes[0, i])
        ax = axes[rows - 1, i]
        ax.imshow(indices[i].numpy(), cmap="nipy_spectral", vmin=0, vmax=num_codes - 1, interpolation="nearest")
        ax.set_xlabel(f"{len(indices[i].unique())} distinct", fontsize=7)
        _bare(ax)
    axes[rows - 1, 0].set_ylabel("token ids", fontsize=8)
    fig.suptitle(title or f"16x16 token maps (codebook of {num_codes})", fontsize=10)
    fig.tight_layout()
    return fig


def plot_codebook_usage(indices: torch.Tensor, num_codes: int, title: str | None = None) -> Figure:
    """How often each codebook entry is used, most used first; the title gives the share of codes
    used and the perplexity exp(H(p)) of the usage distribution."""
    counts = torch.bincount(indices.detach().cpu().flatten(), minlength=num_codes).double()  # (K,)
    _, perplexity = code_stats(counts)
    used = int((counts > 0).sum())
    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.bar(np.arange(num_codes), counts.sort(descending=True).values.numpy(), width=1.0, color="tab:blue")
    ax.set_xlabel("codebook entries, most used first")
    ax.set_ylabel("tokens")
    ax.set_xlim(-0.5, num_codes - 0.5)
    ax.set_title(title or f"{used} of {num_codes} codes used ({used / num_codes:.0%}), perplexity {perplexity:.0f}")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- mask schedules

def plot_schedules(names: Iterable[str] = SCHEDULES, total_iter: int | None = None,
                   highlight: Iterable[str] = COURSE_SCHEDULES) -> Figure:
    """gamma(r) for each schedule on [0, 1]; with ``total_iter`` T, dots at the ratios t/T that
    decoding visits. The course's three schedules are drawn thicker."""
    names, highlight = list(names), set(highlight)
    r = torch.linspace(0, 1, 201, dtype=torch.float64)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name in names:
        fn = gamma(name)
        (line,) = ax.plot(r.numpy(), fn(r).numpy(), lw=2.5 if name in highlight else 1.2,
                          ls="-" if name in highlight else "--", label=name)
        if total_iter:
            t = torch.arange(0, total_iter + 1, dtype=torch.float64) / total_iter
            ax.plot(t.numpy(), fn(t).numpy(), "o", ms=4, color=line.get_color())
    ax.set_xlabel("progress r = t / T")
    ax.set_ylabel("share still masked  γ(r)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("mask schedules" + (f" (dots: T = {total_iter})" if total_iter else ""))
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- attention

def plot_attention_heads(weights: torch.Tensor, title: str | None = None, max_heads: int = 8) -> Figure:
    """Attention weights (heads, N, N) or (N, N) as heat maps, one per head: row i is how query
    token i spreads its attention over the keys (every row sums to 1)."""
    weights = weights.detach().float().cpu()
    weights = weights[None] if weights.dim() == 2 else weights                  # (H, N, N)
    if weights.dim() != 3:
        raise ValueError(f"plot_attention_heads: expected (heads, N, N) weights, got {tuple(weights.shape)}")
    heads = min(len(weights), max_heads)
    fig, axes = plt.subplots(1, heads, figsize=(2.4 * heads + 0.8, 2.6), squeeze=False)
    for h in range(heads):
        ax = axes[0, h]
        im = ax.imshow(weights[h].numpy(), cmap="viridis", vmin=0, vmax=float(weights.max()))
        ax.set_title(f"head {h}", fontsize=9)
        ax.set_xlabel("key")
        if h == 0:
            ax.set_ylabel("query")
    fig.colorbar(im, ax=axes[0, :].tolist(), shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_attention_maps(maps: Sequence[torch.Tensor], query: int | tuple[int, int], image: torch.Tensor | None = None,
                        normalization=None, index: int = 0, layers: Sequence[int] | None = None,
                        max_heads: int = 8, latent_mask: torch.Tensor | None = None,
                        title: str | None = None) -> Figure:
    """Where one token looks, in every layer and head of the transformer.

    ``maps``: the per-layer weights from ``transformer(tokens, return_attention=True)``, each
    (B, heads, N, N) with N = 16*16. ``query``: a token index or its (row, col). Row = layer;
    columns: the image (query token boxed in red, masked tokens shaded), each head's attention
    of that token over the 16x16 grid, and the mean over heads."""
    side = int(math.isqrt(maps[0].shape[-1]))
    q = query[0] * side + query[1] if isinstance(query, tuple) else int(query)
    if not 0 <= q < side * side:
        raise ValueError(f"query token {query} is outside the {side}x{side} grid")
    layers = list(range(len(maps))) if layers is None else list(layers)
    heads = min(maps[0].shape[1], max_heads)
    cols = heads + 1 + (image is not None)
    fig, axes = plt.subplots(len(layers), cols, figsize=(1.35 * cols, 1.45 * len(layers) + 0.5), squeeze=False)
    qr, qc = divmod(q, side)
    for row, layer in enumerate(layers):
        w = maps[layer][index, :, q].detach().float().cpu().reshape(-1, side, side)  # (heads, 16, 16)
        panels = [(f"head {h}", w[h]) for h in range(heads)] + [("mean", w.mean(0))]
        col = 0
        if image is not None:
            ax = axes[row, 0]
            ax.imshow(_hwc(_to_unit(image, normalization)), interpolation="nearest")
            patch = image.shape[-1] // side
            if latent_mask is not None:
                shade = latent_mask.detach().cpu().reshape(side, side).float().numpy()
                ax.imshow(np.kron(shade, np.ones((patch, patch))), cmap="Greys", alpha=0.35 * (shade.max() > 0),
                          vmin=0, vmax=1, interpolation="nearest")
            ax.add_patch(Rectangle((qc * patch - 0.5, qr * patch - 0.5), patch, patch, fill=False, ec="red", lw=1.5))
            ax.set_ylabel(f"layer {layer}", fontsize=8)
            _bare(ax)
            col = 1
        for j, (name, values) in enumerate(panels):
            ax = axes[row, col + j]
            ax.imshow(values.numpy(), cmap="magma", interpolation="nearest")
            ax.add_patch(Rectangle((qc - 0.5, qr - 0.5), 1, 1, fill=False, ec="cyan", lw=1))
            if row == 0:
                ax.set_title(name, fontsize=8)
            if col == 0 and j == 0:
                ax.set_ylabel(f"layer {layer}", fontsize=8)
            _bare(ax)
    fig.suptitle(title or f"attention of token ({qr}, {qc}) over the 16x16 grid", fontsize=10)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- training curves

def read_csv_log(path: str | Path) -> dict[str, np.ndarray]:
    """A training CSV log -> {column: float array}; empty cells (e.g. validation columns on
    steps without validation) become NaN."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training log not found: {path}")
    rows = read_csv(path)[1]
    if not rows:
        raise ValueError(f"training log {path} has no rows")

    def number(value):
        try:
            return float(value)
        except (TypeError, ValueError):
            return math.nan

    return {name: np.array([number(r.get(name)) for r in rows]) for name in rows[0]}


def _curve_group(name: str) -> str | None:
    lowered = name.lower()
    if "loss" in lowered:
        return "loss"
    if "acc" in lowered:
        return "accuracy"
    if lowered in ("lr", "learning_rate") or lowered.endswith("_lr"):
        return "learning rate"
    return None


def plot_training_curves(log: str | Path | dict, x: str = "step", columns: Sequence[str] | None = None,
                         validation: str | Path | dict | None = None, title: str | None = None, *,
                         name: str = "", runs: dict[str, str | Path | dict] | None = None,
                         hlines: dict[str, float] | None = None, logx: bool = False) -> Figure:
    """Loss, accuracy and learning rate against ``x``, one panel each, from a CSV log (path) or
    ``read_csv_log``'s dict. Columns are grouped by name (``*loss*``, ``*acc*``, ``lr``) unless
    ``columns`` lists them (a validation log's per-ratio columns, ``loss@0.5``, come with ``loss``).
    A ``validation`` log (e.g. ``val.csv``) joins the same panels, its curves prefixed ``val``;
    sparse columns are drawn with markers. ``name`` prefixes the labels of both (e.g. "bundled").
    ``runs`` draws further logs on the same panels, labelled by their key (e.g. a short run beside
    a long one; give them the same ``x`` column, e.g. token maps seen, and ``logx=True``).
    ``hlines`` draws labelled horizontal lines on the loss panel (e.g. ln(K + 1), a uniform guess)."""
    def table(source):
        if isinstance(source, dict):
            return {k: np.asarray(v, float) for k, v in source.items()}
        return read_csv_log(source)

    prefix = f"{name} " if name else ""
    logs = [(prefix, table(log), False, None)]                         # (label prefix, data, validation?, colour)
    if validation is not None:
        logs.append((prefix + "val ", table(validation), True, None))
    # each run keeps its colour in every panel; C0-C3 go to a log and its per-ratio validation curves
    logs += [(f"{key} ", table(source), False, f"C{4 + k}") for k, (key, source) in enumerate((runs or {}).items())]
    groups: dict[str, list[tuple[str, dict, str, bool, str | None]]] = {}
    for label_prefix, data, is_val, colour in logs:
        if x not in data:
            raise ValueError(f"{label_prefix or 'training '}log has no {x!r} column; columns: {sorted(data)}")
        for column in (columns or []):
            if column not in data and label_prefix == prefix:  # a column asked for may live in one log only
                raise ValueError(f"training log has no {column!r} column; columns: {sorted(data)}")
        wanted = [c for c in data if c != x] if columns is None else \
            [c for want in columns for c in data if c != x and c.split("@")[0] == want]  # loss: also loss@0.5
        for column in wanted:
            group = _curve_group(column) if columns is None else (_curve_group(column) or column)
            if group is not None and np.isfinite(data[column]).any():
                groups.setdefault(group, []).append((label_prefix + column, data, column, is_val, colour))
    if not groups:
        raise ValueError(f"nothing to plot: no loss/accuracy/lr column with numbers among {sorted(logs[0][1])}")
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.2), squeeze=False)
    for ax, (group, curves) in zip(axes[0], groups.items()):
        for label, data, column, is_val, colour in curves:
            ok = np.isfinite(data[column]) & np.isfinite(data[x])
            sparse = ok.sum() < 0.5 * len(ok) or ok.sum() <= 20
            # an overall validation curve ("val loss") lies among its per-ratio ones ("val loss@0.5"): on top, dashed
            summary = is_val and "@" not in column and any(v and "@" in c for *_, c, v, _ in curves)
            style = dict(ls="-", marker="o" if sparse else None, ms=3, lw=1.5 if sparse else 1, color=colour)
            if summary:
                style.update(ls="--", lw=2.2, color="black", zorder=3)
            ax.plot(data[x][ok], data[column][ok], label=label, **style)
        if group == "loss":
            for label, value in (hlines or {}).items():
                ax.axhline(value, color="grey", lw=1, ls=":", label=label)
        ax.set_xlabel(x)
        ax.set_title(group)
        if logx:
            ax.set_xscale("log")
        if group == "learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8 if len(curves) < 6 else 7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- the course's decoding figures

def mask_frames(masks: torch.Tensor, highlight_new: bool = True) -> torch.Tensor:
    """(S+1, 16, 16) bool latent masks (initial, then after each step) -> (S+1, 16, 16, 3) RGB:
    white = known or decoded, black = still masked, orange = decoded at this step."""
    masks = masks.detach().cpu().bool()
    frames = torch.where(masks[..., None], torch.tensor(MASKED), torch.tensor(KNOWN))  # (S+1, 16, 16, 3)
    if highlight_new and len(masks) > 1:
        new = masks[:-1] & ~masks[1:]                                           # (S, 16, 16) decoded at step s
        frames[1:][new] = torch.tensor(NEW)
    return frames


def _new_figure(figsize: tuple[float, float], pyplot: bool = True, layout: str | None = None) -> Figure:
    """A pyplot figure (a notebook cell shows it inline when the cell ends), or a bare ``Figure``
    that pyplot never tracks. Widget callbacks need the bare kind: no cell ends after a slider
    move, so pyplot would keep their figures and show them all in the next cell that runs."""
    return plt.figure(figsize=figsize, layout=layout) if pyplot else Figure(figsize=figsize, layout=layout)


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


def decoding_figure(trace: DecodingTrace, step_images: torch.Tensor | None = None,
                    masked_input: torch.Tensor | None = None, normalization=None, index: int = 0,
                    title: str | None = None, highlight_new: bool = True,
                    max_columns: int = DECODING_COLUMNS, pyplot: bool = True) -> Figure:
    """The course's two figures for one image of a decoded batch, as two strips of S+1 pictures
    (wrapped into blocks of ``max_columns`` so that large T stays readable).

    Strip 1, the latent mask at each iteration: the initial mask, then the mask after steps
    1..S (black = still masked; orange = decoded at that step).
    Strip 2, the predicted image at each iteration: the masked input, then the decoded prediction
    after steps 1..S. ``step_images`` is ``trace.images(maskgit)`` (S, B, 3, H, W), normalised;
    without it only the mask strip is drawn. ``pyplot=False``: see ``_new_figure``."""
    masks = trace.masks()[:, index]                                             # (S+1, 16, 16)
    steps = len(masks) - 1
    if step_images is not None and len(step_images) != steps:
        raise ValueError(f"step_images has {len(step_images)} steps, the trace {steps}")
    strips = 1 if step_images is None else 2
    blocks, per_row = _wrap(steps + 1, max_columns)
    # constrained layout keeps the labels of wrapped blocks clear of each other
    fig = _new_figure((1.25 * per_row + 0.6, 1.45 * strips * blocks + 0.5), pyplot, layout="constrained")
    axes = _strip_axes(fig, strips, steps + 1, max_columns)
    _draw_mask_strip(axes[0], masks, trace.ratios, highlight_new, per_row)
    if step_images is not None:
        pictures = [masked_input[index] if masked_input is not None else None] + list(step_images[:, index])
        for s, (ax, picture) in enumerate(zip(axes[1], pictures)):
            if picture is not None:
                ax.imshow(_hwc(_to_unit(picture, normalization)), interpolation="nearest")
            _bare(ax)
            if s % per_row == 0:
                ax.set_ylabel("prediction", fontsize=8)
        if blocks == 1:  # below a wrapped block's first picture this label would touch the next block
            axes[1][0].set_xlabel("masked input", fontsize=7)
        else:
            axes[0][0].set_title("start (masked input below)", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _draw_mask_strip(axes: list, masks: torch.Tensor, ratios: Sequence[float], highlight_new: bool,
                     per_row: int) -> None:
    """The latent-mask strip of ``decoding_figure``: one 16x16 frame per step, titled with t and r."""
    frames = mask_frames(masks, highlight_new)                                  # (S+1, 16, 16, 3)
    m0 = int(masks[0].sum())
    for s, ax in enumerate(axes):
        ax.imshow(frames[s].numpy(), interpolation="nearest")
        ax.set_title("start" if s == 0 else f"t={s} (r={ratios[s - 1]:.2f})", fontsize=8)
        ax.set_xlabel(f"{int(masks[s].sum())}/{m0} masked", fontsize=7)
        _bare(ax, frame=True)
        if s % per_row == 0:
            ax.set_ylabel("latent mask", fontsize=8)


# ----------------------------------------------------------------------------- one decoding, drawn (notebook 03)

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


def _decode_one(maskgit, test_set, image_index: int, settings: DecodingSettings, step=decode_step):
    """Inpaint test image ``image_index``: its item and the ``InpaintResult`` (seeded with settings.seed)."""
    if not 0 <= image_index < len(test_set):
        raise ValueError(f"image_index must be in [0, {len(test_set) - 1}], got {image_index}")
    item = test_set[image_index]
    device = next(maskgit.parameters()).device
    image, mask = item["image"][None].to(device), item["mask"][None].to(device)  # (1,3,64,64), (1,1,64,64)
    return item, maskgit.inpaint(image, mask, settings, step=step)


def show_decoding(maskgit, test_set, settings: DecodingSettings | None = None, image_index: int = 0,
                  pyplot: bool = True, step=decode_step, **changes) -> Figure:
    """Inpaint test image ``image_index`` with ``settings`` and keyword ``changes`` (e.g.
    ``schedule="square", total_iter=12``; the seed is the settings' seed) and draw its per-step
    strips (``decoding_figure``: S+1 pictures per strip). A sample temperature of 0 takes each
    token's argmax (the course's rule), t > 0 samples it from softmax(logits / t). ``step`` is the
    step function the decoding runs (``labcore.decoding.decode_step`` or yours, with its
    signature: ``MaskGit.inpaint(..., step=)``); another than labcore's is named in the title. The
    panel of notebook 03 (``labcore.widgets``) calls it (with ``pyplot=False``) whenever a control
    changes. Bad settings raise a ValueError before any work."""
    settings = DecodingSettings.resolve(settings, **changes)
    item, result = _decode_one(maskgit, test_set, image_index, settings, step)  # seeded with settings.seed
    step_images = result.trace.images(maskgit)                                  # (S, 1, 3, 64, 64)
    whose = step_text(step)
    title = (f"{item['name']}: {settings.schedule} schedule, T={settings.total_iter}, sweet spot S={settings.steps}\n"
             f"choice temperature {settings.choice_temperature:g}, {_token_text(settings.sample_temperature)}, "
             f"seed {settings.seed}" + (f", step: {whose}" if whose else ""))
    return decoding_figure(result.trace, step_images, item["image"][None], test_set.normalization, title=title, pyplot=pyplot)


def sweet_spot_figure(maskgit, test_set, image_index: int = 0, spots: Sequence[int] = (2, 4, 6, 8, 12),
                      settings: DecodingSettings | None = None, step=decode_step, **changes) -> Figure:
    """The sweet spot: test image ``image_index`` decoded with ``settings`` (default T = 12,
    cosine) and stopped after S steps, for each S in ``spots``, with the same seed (so the first
    steps of every column are the same steps). Top row: the latent mask when decoding stops
    (black = still masked: these tokens all take their step-S prediction at once; orange = decoded
    at step S); bottom row: the image. First column: the masked input, last: the ground truth."""
    settings = DecodingSettings.resolve(settings, **{"total_iter": 12, **changes})
    fig = _new_figure((1.3 * (len(spots) + 2) + 0.4, 3.3), layout="constrained")
    axes = fig.subplots(2, len(spots) + 2)
    for col, S in enumerate(spots, start=1):
        item, result = _decode_one(maskgit, test_set, image_index, settings.replace(sweet_spot=S), step)
        masks = result.trace.masks()[:, 0]                                     # (S+1, 16, 16)
        axes[0, col].imshow(mask_frames(masks)[-1].numpy(), interpolation="nearest")
        axes[0, col].set_title(f"S = {S}", fontsize=9)
        axes[0, col].set_xlabel(f"{int(masks[-1].sum())} of {int(masks[0].sum())}\nfilled at once", fontsize=7)
        axes[1, col].imshow(_hwc(_to_unit(result.images[0], test_set.normalization)), interpolation="nearest")
    axes[0, 0].imshow(mask_frames(masks[:1])[0].numpy(), interpolation="nearest")
    axes[0, 0].set_title("latent mask", fontsize=9)
    axes[1, 0].imshow(_hwc(_to_unit(item["image"], test_set.normalization)), interpolation="nearest")
    axes[1, 0].set_xlabel("masked input", fontsize=7)
    axes[1, -1].imshow(_hwc(_to_unit(item["target"], test_set.normalization)), interpolation="nearest")
    axes[1, -1].set_xlabel("ground truth", fontsize=7)
    axes[0, -1].set_axis_off()
    for ax in axes.flat:
        _bare(ax, frame=True)
    fig.suptitle(f"{item['name']}: stop after S of T={settings.total_iter} steps ({settings.schedule}, "
                 f"choice temperature {settings.choice_temperature:g}, {_token_text(settings.sample_temperature)}, "
                 f"seed {settings.seed})", fontsize=9)
    return fig


def decoded_at_step(trace: DecodingTrace, index: int = 0) -> torch.Tensor:
    """(16, 16) long: the step t at which each token of image ``index`` was decoded (kept), 0 for
    known tokens and -1 for tokens still masked when decoding stopped (sweet spot S < T)."""
    masks = trace.masks()[:, index].cpu()                                       # (S+1, 16, 16)
    newly = masks[:-1] & ~masks[1:]                                             # (S, 16, 16) decoded at step s+1
    steps = torch.arange(1, len(newly) + 1)[:, None, None]                      # (S, 1, 1)
    at = (newly.long() * steps).sum(0)                                          # (16, 16)
    return torch.where(masks[-1], torch.full_like(at, -1), at)


def decoding_order_figure(maskgit, test_set, image_index: int = 0, taus: Sequence[float] = (0, 1, 4.5, 10),
                          settings: DecodingSettings | None = None, step=decode_step,
                          columns: dict[str, dict] | None = None, **changes) -> Figure:
    """Which tokens go first: test image ``image_index`` decoded with ``settings`` (default
    cosine, T = 8) at each choice temperature in ``taus``, the same seed; or, with ``columns``
    (label -> settings changes, e.g. ``{"halton order": dict(order="halton")}``), one column per
    entry. Top row: a map of the step at which each masked token was decoded
    (``decoded_at_step``: dark = early, yellow = late; white = known); bottom row: the image."""
    settings = DecodingSettings.resolve(settings, **changes)
    columns = columns or {f"τ = {tau:g}": dict(choice_temperature=tau) for tau in taus}
    T = settings.steps
    cmap = plt.get_cmap("viridis", T).with_extremes(under="white")        # known tokens (0): white
    fig = _new_figure((1.45 * len(columns) + 1.6, 3.5), layout="constrained")
    axes = fig.subplots(2, len(columns), squeeze=False)
    for col, (label, change) in enumerate(columns.items()):
        item, result = _decode_one(maskgit, test_set, image_index, settings.replace(**change), step)
        at = decoded_at_step(result.trace).float()                             # (16, 16)
        shown = axes[0, col].imshow(at.numpy(), cmap=cmap, vmin=0.5, vmax=T + 0.5, interpolation="nearest")
        axes[0, col].set_title(label, fontsize=9)
        axes[1, col].imshow(_hwc(_to_unit(result.images[0], test_set.normalization)), interpolation="nearest")
    for ax in axes.flat:
        _bare(ax, frame=True)
    axes[0, 0].set_ylabel("decoded at step", fontsize=8)
    axes[1, 0].set_ylabel("inpainted", fontsize=8)
    fig.colorbar(shown, ax=axes[0, :], ticks=range(1, T + 1), shrink=0.9, label="step t")
    fig.suptitle(f"{item['name']}: which tokens go first ({settings.schedule}, T={settings.total_iter}, "
                 f"{_token_text(settings.sample_temperature)}, seed {settings.seed})", fontsize=9)
    return fig


# ----------------------------------------------------------------------------- the whole pipeline (README, notebook 00)

def _arrow(ax, label: str, direction: str = "right") -> None:
    """An arrow across an empty axes ("right", "left" or "down") with a short ``label`` beside it."""
    ax.set_axis_off()
    start, end = {"right": ((0, 0.5), (1, 0.5)), "left": ((1, 0.5), (0, 0.5)), "down": ((0.5, 1), (0.5, 0))}[direction]
    ax.annotate("", xy=end, xytext=start, xycoords="axes fraction",
                arrowprops=dict(arrowstyle="-|>", color="0.3", lw=1.2, shrinkA=0, shrinkB=0))
    where = dict(x=0.5, y=0.58, ha="center", va="bottom") if direction != "down" else \
        dict(x=0.4, y=0.5, ha="right", va="center")
    ax.text(s=label, fontsize=7.5, color="0.15", transform=ax.transAxes, **where)


def pipeline_figure(maskgit, test_set, image_index: int = 250, settings: DecodingSettings | None = None) -> Figure:
    """MaskGIT inpainting of test image ``image_index``, stage by stage, drawn from the real models
    and data as a U (a bare ``Figure``: pyplot never tracks it; a notebook shows it when a cell
    returns it). Top row, left to right, then bottom row, right to left, arrows between stages:

    1. "masked input": the 64x64 test image with its hole (pixels in [0, 1]);
    2. "tokens": its 16x16 token map, VQGAN encoder + quantiser (colour = codebook id);
    3. "latent mask": the same map with the tokens the hole touches masked (black: mask id K);
    4. "transformer": the bidirectional transformer (a box), which predicts every masked token;
    5. "step t" for three steps t of iterative decoding with ``settings`` (default
       ``DecodingSettings()``): the latent mask after step t (black = still masked, orange =
       decoded at step t, white = known or decoded before), the count still masked below;
    6. "inpainted": the final tokens through the VQGAN decoder (below the input, to compare).
    """
    settings = DecodingSettings.resolve(settings)
    item, result = _decode_one(maskgit, test_set, image_index, settings)
    K = maskgit.num_codebook_vectors
    device = next(maskgit.parameters()).device
    ids = maskgit.encode_to_z(item["image"][None].to(device)).view(16, 16).cpu()  # (16, 16) codebook ids
    colours = torch.from_numpy(plt.get_cmap("nipy_spectral")(ids.numpy() / (K - 1))[..., :3]).float()
    latent = result.latent_mask[0].cpu()                                          # (16, 16) True = masked
    masks = result.trace.masks()[:, 0].cpu()                                      # (S+1, 16, 16)
    frames = mask_frames(masks)                                                   # (S+1, 16, 16, 3)
    S = len(masks) - 1
    steps = sorted({1, (S + 1) // 2, S})
    top = [("masked input", _hwc(_to_unit(item["image"], test_set.normalization)), "64x64 pixels"),
           ("tokens", colours.numpy(), f"16x16 ids in [0, {K})"),
           ("latent mask", torch.where(latent[..., None], 0.0, colours).numpy(), f"{int(latent.sum())} of 256 masked"),
           ("transformer", None, f"{settings.schedule} schedule, T={settings.total_iter}")]
    bottom = [(f"step {t} of {settings.total_iter}", frames[t].numpy(), f"{int(masks[t].sum())} still masked")
              for t in steps] + [("inpainted", _hwc(_to_unit(result.images[0], test_set.normalization)),
                                  "VQGAN decoder output")]                        # drawn right to left
    fig = Figure(figsize=(7.2, 4.1))
    grid = fig.add_gridspec(3, 2 * len(top) - 1, width_ratios=[1, 0.75] * (len(top) - 1) + [1],
                            height_ratios=[1, 0.62, 1], left=0.025, right=0.975, top=0.86, bottom=0.07,
                            wspace=0.05, hspace=0.3)
    for row, panels in ((0, top), (2, bottom)):
        for i, (title, picture, detail) in enumerate(panels):
            ax = fig.add_subplot(grid[row, 2 * len(top) - 2 - 2 * i if row == 2 else 2 * i])
            if picture is None:  # the transformer: a box, not a picture
                ax.add_patch(Rectangle((0, 0), 1, 1, facecolor="#dbe7f5", edgecolor="0.3"))
                ax.text(0.5, 0.5, "bidirectional\ntransformer:\nall tokens\nat once", ha="center", va="center",
                        fontsize=8)
                ax.set_box_aspect(1)
                ax.set_axis_off()
            else:
                ax.imshow(picture, interpolation="nearest")
                _bare(ax, frame=True)
            ax.set_title(title, fontsize=9)
            ax.text(0.5, -0.05, detail, ha="center", va="top", fontsize=7.5, transform=ax.transAxes)
    for i, label in enumerate(["VQGAN encoder\n+ quantiser", "mask the\nhole's tokens", "masked\n= id K"]):
        _arrow(fig.add_subplot(grid[0, 2 * i + 1]), label)
    _arrow(fig.add_subplot(grid[1, -1]), "keep the most\nconfident", "down")
    for i, label in enumerate(["VQGAN\ndecoder"] + ["predict again,\nkeep more"] * (len(steps) - 1)):
        _arrow(fig.add_subplot(grid[2, 2 * i + 1]), label, "left")
    note = fig.add_subplot(grid[1, :-2])
    note.set_axis_off()
    note.text(0.5, 0.5, "latent masks: black = masked token (to predict), white = known or decoded,\n"
              "orange = decoded at that step; the transformer runs once per step", ha="center", va="center",
              fontsize=7.5, color="0.15", transform=note.transAxes)
    fig.suptitle(f"MaskGIT inpainting of test image {item['name']}", fontsize=10)
    return fig
