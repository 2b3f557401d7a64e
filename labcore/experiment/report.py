"""The report of the rows: one entry per setting (its seeds: mean ± std), the Markdown table
sorted by FID, the aims checked against it (only those the table can speak to), and the variants'
table: what each costs against the correct step of the same token rule and setting."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from .. import fid
from ..decoding_variants import CORRECT_STEP, MEASURED_VARIANTS, token_rule
from .rows import MEAN_FILL, MEASURES, ORACLE, SETTING_FIELDS, Row


@dataclass(frozen=True)
class Entry(Row):
    """One setting over its seeds (``n`` rows that differ only in their seed): the setting, each
    measure's mean (seed: None) and its sample std (0 for one seed)."""
    n: int = 1
    fid_std: float = 0.0
    psnr_masked_std: float = 0.0
    token_acc_std: float = 0.0
    seconds_std: float = 0.0

    def cell(self, measure: str, digits: int) -> str:
        """A measure as a table cell: the mean, ± the std where several seeds were run."""
        value = getattr(self, measure)
        if value is None:
            return ""
        return f"{value:.{digits}f}" + (f" ± {getattr(self, measure + '_std'):.{digits}f}" if self.n > 1 else "")


def aggregate(rows: list[Row]) -> list[Entry]:
    """One entry per setting, in first-seen order."""
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        groups.setdefault(r.setting_key(), []).append(r)
    return [_entry(members) for members in groups.values()]


def _entry(members: list[Row]) -> Entry:
    stats = {}
    for measure in MEASURES:
        values = [float(getattr(m, measure)) for m in members if getattr(m, measure) is not None]
        stats[measure] = statistics.fmean(values) if values else None
        stats[f"{measure}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    setting = {k: getattr(members[0], k) for k in SETTING_FIELDS + ["images"]}
    return Entry(**setting, **stats, n=len(members))


def off_plan_test(entries: list[Entry]):
    """A test of an entry: is it off the plan's grid, one of the choice-temperature x order sweep
    (another choice temperature than the first decoding entry's, or another order than
    "confidence") or a variant?"""
    tau = next((e.choice_temperature for e in entries if e.is_decoding), None)
    return lambda e: e.is_decoding and (e.choice_temperature != tau or e.order != "confidence" or e.is_variant)


def plan_entries(rows: list[Row]) -> list[Entry]:
    """The plan's entries, without the sweep and the variants."""
    entries = aggregate(rows)
    off_plan = off_plan_test(entries)
    return [e for e in entries if not off_plan(e)]


# ----------------------------------------------------------------------------- the table and its aims

def _text(value) -> str:
    return "" if value is None else str(value)


def results_markdown(rows: list[Row], with_aims: bool = True) -> str:
    """The table (sorted by FID; several seeds: mean ± std, sample std), a footnote saying what its
    numbers are, the aims checked, and the variants' table where there are variants."""
    entries = aggregate(rows)
    label = _setting_label(entries)
    lines = ["| setting | tokens | schedule | T | S | paste known | FID | PSNR holes (dB) | token acc | seeds "
             "| s/row |",
             "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for e in sorted(entries, key=lambda e: e.fid):
        lines.append(f"| {label(e)} | {_text(e.tokens)} | {_text(e.schedule)} | {_text(e.total_iter)} | "
                     f"{_text(e.sweet_spot)} | {_text(e.paste_known)} | {e.cell('fid', 2)} | "
                     f"{e.cell('psnr_masked', 2)} | {e.cell('token_acc', 3)} | {e.n if e.is_decoding else ''} | "
                     f"{e.seconds:.0f} |")
    if rows:
        seeds = any(e.n > 1 for e in entries)  # mention seeds only under a table with seed repeats
        note = (f"FID from {rows[0].images} images (biased upwards below {fid.RELIABLE_SAMPLES}: compare only "
                "within this table). "
                + ("± is the standard deviation over seeds; the best iterative setting was picked on the first "
                   "seed. " if seeds else "")
                + "s/row: the wall seconds each row took as it ran" + (" (mean over seeds)" if seeds else "")
                + ", whatever else the machine was doing: a record, not a benchmark.")
        own = sorted({e.step for e in entries if e.is_decoding and not e.is_variant} - {CORRECT_STEP, None})
        note = (f"Decoded with the step {', '.join(own)} (--step), not labcore's. " if own else "") + note
        checked = aims(entries) if with_aims else []
        lines += ["", note] + (["", *checked] if checked else [])
    if variant_costs(entries):
        lines += ["", variants_markdown(entries)]
    return "\n".join(lines) + "\n"


def _setting_label(entries: list[Entry]):
    """The setting cell: the kind, plus the order and tau of every decoding row when the table
    holds a sweep or variants; the kind alone otherwise, as before the sweep existed."""
    if not any(map(off_plan_test(entries), entries)):
        return lambda e: e.kind

    def label(e: Entry) -> str:
        if not e.is_decoding:
            return e.kind
        text = f"{e.kind}, {e.order}, tau {e.choice_temperature:g}"
        text += ", sample temperature annealed" if e.anneal else ""
        text += f", remask {e.remask:g}" if e.remask else ""
        return text + (f", {e.step}" if e.step not in (CORRECT_STEP, None) else "")
    return label


def aims(entries: list[Entry]) -> list[str]:
    """The issue's aims, each checked against the table: met / not met / not measured. An aim is
    listed only where the table holds what it compares (a variants table has no one-shot rows and
    no baselines: no aims)."""
    off_plan = off_plan_test(entries)
    plan = [e for e in entries if not off_plan(e)]  # the sweep and the variants have no aim of their own
    lines = [line for t in dict.fromkeys(e.sample_temperature for e in plan if e.is_decoding)
             for line in _rule_aim(plan, t)] + _baseline_aims(plan)
    return ["Aims:", *lines] if lines else []


def _rule_aim(plan: list[Entry], t: float) -> list[str]:
    """Does the best iterative setting of token rule ``t`` beat one-shot by more than 3 seed std?"""
    rule = [e for e in plan if e.is_decoding and e.sample_temperature == t and not e.paste_known]
    one = next((e for e in rule if e.total_iter == 1), None)
    if one is None or all(e.total_iter == 1 for e in rule):
        return []                                               # nothing to compare: the aim does not apply
    best = min((e for e in rule if e.total_iter > 1 and e.n > 1), key=lambda e: e.fid, default=None)
    if best is None or one.n < 2:
        return [f"- {token_rule(t)} tokens: best iterative vs one-shot: not measured (needs both with seeds)"]
    std = max(one.fid_std, best.fid_std)
    gap = one.fid - best.fid
    verdict = "met" if gap > 3 * std else "not met"
    return [f"- {token_rule(t)} tokens: best iterative ({best.schedule} T={best.total_iter} "
            f"S={best.sweet_spot}) FID {best.cell('fid', 2)} vs one-shot {one.cell('fid', 2)}: "
            f"one-shot - best = {gap:.2f}, {gap / std if std else float('inf'):.1f} x the larger seed std "
            f"(aim: > 3): {verdict}"]


def _baseline_aims(plan: list[Entry]) -> list[str]:
    """Does pasting the known pixels back beat the mean colour, and the oracle both?"""
    by_kind = {e.kind: e for e in plan if not e.is_decoding}
    pasted = min((e for e in plan if e.is_decoding and e.paste_known), key=lambda e: e.fid, default=None)
    oracle, mean = by_kind.get(ORACLE), by_kind.get(MEAN_FILL)
    if pasted is None and not by_kind:
        return []                                               # none of the three: the aim does not apply
    if pasted is None or oracle is None or mean is None:
        return ["- paste known vs mean colour vs oracle: not measured"]
    label = f"paste known ({pasted.tokens}, {pasted.schedule} T={pasted.total_iter}) FID {pasted.fid:.2f}"
    return [f"- {label} vs mean colour {mean.fid:.2f}: {'met' if pasted.fid < mean.fid else 'not met'}",
            f"- oracle {oracle.fid:.2f} below both: {'met' if oracle.fid < min(pasted.fid, mean.fid) else 'not met'}"]


# ----------------------------------------------------------------------------- the variants

@dataclass(frozen=True)
class Cost:
    """A variant's entry beside its reference: the entry of the same token rule and setting decoded
    correctly (labcore's step, confidence order, no annealing, no re-masking)."""
    entry: Entry
    reference: Entry

    @property
    def variant(self) -> str:
        return self.entry.variant

    @property
    def d_fid(self) -> float:
        return self.entry.fid - self.reference.fid                 # + is worse

    @property
    def d_psnr(self) -> float:
        return self.entry.psnr_masked - self.reference.psnr_masked  # - is worse


def variant_costs(entries: list[Entry]) -> list[Cost]:
    """Every variant entry beside its reference, reference first (its own cost: 0), variants in
    ``MEASURED_VARIANTS``' order. Empty when the entries hold no variant."""
    def base(e: Entry) -> tuple:
        return e.sample_temperature, e.schedule, e.total_iter, e.sweet_spot, e.choice_temperature, e.paste_known
    decoding = [e for e in entries if e.is_decoding]
    refs = {base(e): e for e in decoding if e.variant == CORRECT_STEP}
    rank = {name: i for i, name in enumerate(MEASURED_VARIANTS)}
    out = []
    for key, ref in refs.items():
        variants = [e for e in decoding if base(e) == key and e.variant != CORRECT_STEP]
        variants.sort(key=lambda e: rank.get(e.variant, len(rank)))
        out += [Cost(e, ref) for e in [ref] + variants] if variants else []
    return out


def variants_markdown(entries: list[Entry]) -> str:
    """The variants' table: each variant's FID and PSNR of the holes, and what it costs against the
    correct step of the same token rule and setting."""
    lines = ["Variants: each changes one thing of the correct step; cost = variant - correct "
             "(FID: + is worse; PSNR: - is worse); in seed std: the FID cost over the larger of the two "
             "seed standard deviations (where seeds were run; beyond about 3 it is not seed noise).", "",
             "| variant | tokens | setting | FID | cost in FID | in seed std | PSNR holes (dB) | cost in PSNR "
             "| token acc | seeds |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in variant_costs(entries):
        e, ref = c.entry, c.variant == CORRECT_STEP
        setting = f"{e.schedule} T={e.total_iter} S={e.sweet_spot} tau {e.choice_temperature:g}"
        name = f"correct: {CORRECT_STEP}" if ref else c.variant
        d_fid, d_psnr = ("", "") if ref else (f"{c.d_fid:+.2f}", f"{c.d_psnr:+.2f}")
        noise = max(e.fid_std, c.reference.fid_std)
        in_std = f"{c.d_fid / noise:+.1f}" if not ref and noise > 0 else ""
        lines.append(f"| {name} | {e.tokens} | {setting} | {e.cell('fid', 2)} | {d_fid} | {in_std} | "
                     f"{e.cell('psnr_masked', 2)} | {d_psnr} | {e.cell('token_acc', 3)} | {e.n} |")
    return "\n".join(lines)
