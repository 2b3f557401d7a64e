"""The experiment's figures, drawn from rows: FID against T (``fid_figure``), against the sweet spot
and the choice temperature (``sweep_figure``), what to submit (``summary_figure``) and what each
decoding variant costs (``variants_figure``). Each is a bare matplotlib ``Figure``, not a pyplot
one: a notebook shows only the figure it is handed, and a script only saves it."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from ..decoding_variants import token_rule
from .report import Entry, aggregate, plan_entries, variant_costs
from .rows import ONE_SHOT, ORACLE, Row


def _errorbar(ax, points: list[Entry], x: str, **style) -> None:
    """FID of ``points`` against column ``x``, error bars = std over seeds (a bar only where n > 1)."""
    points = sorted(points, key=lambda e: getattr(e, x))
    ax.errorbar([getattr(e, x) for e in points], [e.fid for e in points], yerr=[e.fid_std for e in points],
                marker="o", capsize=5, elinewidth=2, **style)


def fid_figure(rows: list[Row]) -> Figure:
    """FID vs T per schedule (S = T, no paste), one panel per token rule, each with its own FID
    axis so that the seed error bars (std over seeds, where seeds were run: one-shot and the
    rule's best setting) can be seen. The baselines and paste-known are in ``summary_figure``."""
    entries = plan_entries(rows)
    rules = list(dict.fromkeys(e.sample_temperature for e in entries if e.is_decoding)) or [0.0]
    fig = Figure(figsize=(5.2 * len(rules), 4.2))
    axes = fig.subplots(1, len(rules), squeeze=False)[0]
    for ax, t in zip(axes, rules):
        grid = [e for e in entries if e.is_decoding and e.sample_temperature == t
                and e.sweet_spot == e.total_iter and not e.paste_known]
        one_shot = [e for e in grid if e.schedule == ONE_SHOT]
        for schedule in dict.fromkeys(e.schedule for e in grid if e.schedule != ONE_SHOT):
            _errorbar(ax, one_shot + [e for e in grid if e.schedule == schedule], "total_iter", label=schedule)
        ax.set_title(f"{token_rule(t)} tokens (sample temperature {t:g})", fontsize=10)
        ax.set_xticks(sorted({e.total_iter for e in grid}) or [1])
        ax.set_xlabel("total iterations T (sweet spot S = T)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("FID (lower is better)")
    seeds = "; error bars: std over seeds where seeds were run" if any(e.n > 1 for e in entries) else ""
    fig.suptitle(f"FID against T on {rows[0].images if rows else 0} test images (own axis per panel{seeds})",
                 fontsize=10)
    fig.tight_layout()
    return fig


def sweep_figure(rows: list[Row]) -> Figure | None:
    """FID against the sweet spot S (at the largest T, on the rule's schedule of the S < T rows)
    and against the choice temperature tau (the sweep, confidence order), one row of panels per
    token rule, each panel with its own axis; error bars = std over seeds; the rule's one-shot FID
    as a dotted line. None when the rows hold neither sweep."""
    entries = [e for e in aggregate(rows) if e.is_decoding and not e.paste_known and not e.is_variant
               and e.order == "confidence"]
    tau = next((e.choice_temperature for e in entries), None)
    rules = list(dict.fromkeys(e.sample_temperature for e in entries))
    spots = {t: [e for e in entries if e.sample_temperature == t and e.sweet_spot < e.total_iter
                 and e.choice_temperature == tau] for t in rules}
    taus = {t: [e for e in entries if e.sample_temperature == t and e.choice_temperature != tau] for t in rules}
    if not any(spots.values()) and not any(taus.values()):
        return None
    fig = Figure(figsize=(10.4, 3.4 * len(rules)))
    axes = fig.subplots(len(rules), 2, squeeze=False)
    for row, t in zip(axes, rules):
        mine = [e for e in entries if e.sample_temperature == t]
        _sweep_panel(row[0], mine, spots[t], "sweet_spot", "sweet spot S (stop after S of T steps)", tau, t)
        _sweep_panel(row[1], mine, taus[t], "choice_temperature", "choice temperature tau", tau, t)
    fig.suptitle(f"{rows[0].images} test images; error bars: std over seeds where seeds were run", fontsize=10)
    fig.tight_layout()
    return fig


def _sweep_panel(ax, mine: list[Entry], found: list[Entry], x: str, label: str, tau: float, t: float) -> None:
    """One panel of ``sweep_figure``: the entries of rule ``t`` (``mine``) against ``x``, on the
    setting of the swept entries ``found``, with the rule's one-shot FID and seed noise."""
    if found:
        same = dict(schedule=found[0].schedule, total_iter=found[0].total_iter)
        mates = [e for e in mine if all(getattr(e, k) == v for k, v in same.items())
                 and (x == "sweet_spot" and e.choice_temperature == tau
                      or x == "choice_temperature" and e.sweet_spot == found[0].sweet_spot)]
        _errorbar(ax, mates, x, color="tab:blue", label=f"{same['schedule']} T={same['total_iter']}"
                  + (f", S={found[0].sweet_spot}" if x != "sweet_spot" else ""))
    one = next((e for e in mine if e.total_iter == 1), None)
    if one is not None:
        ax.axhline(one.fid, color="gray", linestyle=":", label=f"one-shot ({one.cell('fid', 1)})")
    noise = max((e.fid_std for e in mine if e.total_iter > 1), default=0)
    ax.text(0.02, 0.03, f"seed noise of this rule: std up to {noise:.2f}", transform=ax.transAxes, fontsize=8,
            color="0.3")
    low, high = ax.get_ylim()                                  # at least 8 seed std high: a wiggle
    if high - low < 8 * noise:                                # within the noise looks like one
        mid = (low + high) / 2
        ax.set_ylim(mid - 4 * noise, mid + 4 * noise)
    ax.set_title(f"{token_rule(t)} tokens: FID against {label.split(' (')[0]}", fontsize=10)
    ax.set_xlabel(label)
    ax.set_ylabel("FID (lower is better)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def _summary_name(e: Entry) -> str:
    if not e.is_decoding:
        return e.kind.split(":")[0] + (": VQGAN reconstruction" if e.kind == ORACLE else ": mean colour")
    text = f"{e.tokens}, " + ("one-shot" if e.total_iter == 1 else f"{e.schedule} T={e.total_iter} S={e.sweet_spot}")
    return text + (" + paste known" if e.paste_known else "")


def summary_figure(rows: list[Row]) -> Figure | None:
    """What to submit: FID (left) and PSNR of the holes (right) of the baselines, one-shot, each
    rule's best iterative setting and the same with the known pixels pasted back, as bars with
    their seed std. None without a paste-known row."""
    entries = plan_entries(rows)
    decoding = [e for e in entries if e.is_decoding]
    picks = [e for e in entries if not e.is_decoding]
    for t in dict.fromkeys(e.sample_temperature for e in decoding):
        mine = [e for e in decoding if e.sample_temperature == t]
        picks += [e for e in mine if e.total_iter == 1 and not e.paste_known]
        picks += [e for e in mine if e.total_iter > 1 and e.n > 1 and not e.paste_known]
        picks += [e for e in mine if e.paste_known]
    if not any(e.paste_known is True for e in picks):
        return None
    picks.sort(key=lambda e: e.fid)
    fig = Figure(figsize=(10.4, 0.42 * len(picks) + 1.4))
    axes = fig.subplots(1, 2, sharey=True)
    colors = ["tab:gray" if not e.is_decoding else "tab:green" if e.paste_known else "tab:blue" for e in picks]
    for ax, measure, label in ((axes[0], "fid", "FID (lower is better)"),
                               (axes[1], "psnr_masked", "PSNR of the holes, dB (higher is better)")):
        values = [getattr(e, measure) for e in picks]
        ax.barh(range(len(picks)), values, xerr=[getattr(e, f"{measure}_std") for e in picks], color=colors,
                capsize=3)
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:.2f}", va="center", fontsize=8)
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlim(0, max(values) * 1.15)
    axes[0].set_yticks(range(len(picks)), [_summary_name(e) for e in picks], fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle(f"What to submit: {rows[0].images} test images (green: known pixels pasted back; "
                 "grey: baselines; error bars: std over seeds where run)", fontsize=10)
    fig.tight_layout()
    return fig


def variants_figure(rows: list[Row]) -> Figure | None:
    """What each variant costs in FID against the correct step of its token rule (bars: variant -
    correct, error bars: the variant's std over seeds, grey band: the correct step's), one panel
    per token rule on one symlog axis, so a cost of 0.2 and one of 300 both read. Each bar carries
    its number. None when the rows hold no variant."""
    costs = variant_costs(aggregate(rows))
    if not costs:
        return None
    rules = list(dict.fromkeys(c.entry.sample_temperature for c in costs))
    fig = Figure(figsize=(5.2 * len(rules), 0.45 * max(len(costs) // len(rules), 4) + 1.6))
    axes = fig.subplots(1, len(rules), sharex=True, squeeze=False)[0]
    for ax, t in zip(axes, rules):
        mine = [c for c in costs if c.entry.sample_temperature == t]
        ref, variants = mine[0].reference, mine[1:]
        ax.axvspan(-ref.fid_std, ref.fid_std, color="0.6", alpha=0.3,
                   label=f"correct step's seed std (±{ref.fid_std:.2f})")
        ax.axvline(0, color="0.3", linewidth=0.8)
        colors = ["tab:red" if c.variant.startswith("decode.") else "tab:blue" for c in variants]
        bars = ax.barh(range(len(variants)), [c.d_fid for c in variants], xerr=[c.entry.fid_std for c in variants],
                       color=colors, alpha=0.8, capsize=3)
        ax.bar_label(bars, labels=[f"{c.d_fid:+.2f}" for c in variants], fontsize=7, padding=3)
        ax.set_yticks(range(len(variants)), [f"{c.variant} (n={c.entry.n})" for c in variants], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{token_rule(t)} tokens, {ref.schedule} T={ref.total_iter}\n"
                     f"correct step: FID {ref.cell('fid', 2)}", fontsize=9)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel("FID cost: variant - correct (+ is worse; symlog)\nred: mistakes, blue: ideas", fontsize=8)
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(axis="x", alpha=0.3)
    worst = max([10.0] + [c.d_fid + c.entry.fid_std for c in costs])
    best = min([-1.0] + [c.d_fid - c.entry.fid_std for c in costs])
    axes[0].set_xlim(10 * best, 10 * worst)                           # room for the labels of the longest bars
    fig.suptitle(f"What each decoding variant costs on {rows[0].images} test images (error bars: std over seeds)")
    fig.tight_layout()
    return fig


def save_figures(rows: list[Row], out_dir: Path) -> None:
    """experiments.png (``fid_figure``), and sweeps.png, summary.png and variants.png where the rows
    hold what they draw."""
    out_dir = Path(out_dir)
    fid_figure(rows).savefig(out_dir / "experiments.png", dpi=110)
    for name, draw in (("sweeps.png", sweep_figure), ("summary.png", summary_figure),
                       ("variants.png", variants_figure)):
        fig = draw(rows)
        if fig is not None:
            fig.savefig(out_dir / name, dpi=110)
