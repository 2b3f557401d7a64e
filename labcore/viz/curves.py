"""Curves (notebooks 00, 02 and 03): the mask schedules gamma(r), training curves from CSV logs, and
the commitment drift of stage 1 (``labcore.quantization``).

``read_csv_log`` is the one reader here: it turns a training log into float columns for plotting
(empty cells become NaN, as a plot wants them). It stays beside the plot: the training code writes
logs through ``labcore.csv_tables`` and never reads them back as numbers; only the figures do.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from labcore.csv_tables import read_csv
from labcore.schedules import COURSE_SCHEDULES, SCHEDULES, gamma


def plot_schedules(names: Iterable[str] = SCHEDULES, total_iter: int | None = None,
                   highlight: Iterable[str] = COURSE_SCHEDULES) -> Figure:
    """gamma(r) for each schedule on [0, 1]; with ``total_iter`` T, dots at the ratios t/T that
    decoding visits. The course's three schedules are drawn thicker."""
    names, highlight = list(names), set(highlight)
    r = torch.linspace(0, 1, 201, dtype=torch.float64)                          # (201,) progress
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.subplots()
    for name in names:
        fn = gamma(name)
        (line,) = ax.plot(r.numpy(), fn(r).numpy(), lw=2.5 if name in highlight else 1.2,
                          ls="-" if name in highlight else "--", label=name)
        if total_iter:
            t = torch.arange(0, total_iter + 1, dtype=torch.float64) / total_iter  # (T+1,) ratios t/T
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
    """The panel a column goes to: "loss", "accuracy", "learning rate", or None (not plotted)."""
    lowered = name.lower()
    if "loss" in lowered:
        return "loss"
    if "acc" in lowered:
        return "accuracy"
    if lowered in ("lr", "learning_rate") or lowered.endswith("_lr"):
        return "learning rate"
    return None


def _table(source: str | Path | dict) -> dict[str, np.ndarray]:
    """A log as float columns: a path is read (``read_csv_log``), a dict of lists taken as it is."""
    if isinstance(source, dict):
        return {k: np.asarray(v, float) for k, v in source.items()}
    return read_csv_log(source)


# one curve: (label, its log, its column, from a validation log?, colour or None)
Curve = tuple[str, dict, str, bool, str | None]


def _group_curves(logs: list[tuple[str, dict, bool, str | None]], x: str, columns: Sequence[str] | None,
                  prefix: str) -> dict[str, list[Curve]]:
    """{panel: curves} of every log (label prefix, data, validation?, colour): the columns asked
    for (a per-ratio column ``loss@0.5`` comes with ``loss``), or every loss/accuracy/lr column."""
    groups: dict[str, list[Curve]] = {}
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
    return groups


def _draw_curves(ax, curves: list[Curve], x: str) -> None:
    """One panel's curves; sparse ones (validation every epoch) with markers."""
    for label, data, column, is_val, colour in curves:
        ok = np.isfinite(data[column]) & np.isfinite(data[x])                   # (rows,) points with numbers
        sparse = ok.sum() < 0.5 * len(ok) or ok.sum() <= 20
        # an overall validation curve ("val loss") lies among its per-ratio ones ("val loss@0.5"): on top, dashed
        summary = is_val and "@" not in column and any(v and "@" in c for *_, c, v, _ in curves)
        style = dict(ls="-", marker="o" if sparse else None, ms=3, lw=1.5 if sparse else 1, color=colour)
        if summary:
            style.update(ls="--", lw=2.2, color="black", zorder=3)
        ax.plot(data[x][ok], data[column][ok], label=label, **style)


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
    prefix = f"{name} " if name else ""
    logs = [(prefix, _table(log), False, None)]                         # (label prefix, data, validation?, colour)
    if validation is not None:
        logs.append((prefix + "val ", _table(validation), True, None))
    # each run keeps its colour in every panel; C0-C3 go to a log and its per-ratio validation curves
    logs += [(f"{key} ", _table(source), False, f"C{4 + k}") for k, (key, source) in enumerate((runs or {}).items())]
    groups = _group_curves(logs, x, columns, prefix)
    fig = Figure(figsize=(4.2 * len(groups), 3.2))
    axes = fig.subplots(1, len(groups), squeeze=False)
    for ax, (group, curves) in zip(axes[0], groups.items()):
        _draw_curves(ax, curves, x)
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


def plot_commitment_drift(drifts) -> Figure:
    """``labcore.quantization.commitment_drift`` runs (one per beta) side by side: how far z lies
    from its code, the share of tokens changed, and the reconstruction loss, against the step."""
    panels = (("distance", "‖z − e‖²  (z to its code)"), ("changed", "share of tokens changed"),
              ("reconstruction", "reconstruction loss (MSE)"))
    fig = Figure(figsize=(11, 3.2))
    for ax, (name, label) in zip(fig.subplots(1, 3), panels):
        for drift in drifts:
            values = getattr(drift, name)
            ax.plot(range(1, len(values) + 1), values, lw=2, label=f"β = {drift.beta:g}")
        ax.set_xlabel("gradient step on z")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle("gradient steps on the encoder's output z, decoder and codebook frozen", fontsize=10)
    fig.tight_layout()
    return fig
