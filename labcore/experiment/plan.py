"""What ``labcore experiment`` runs, as named stages in order; each stage gives its rows' settings
from the rows known so far (a later stage repeats or extends the best setting of the earlier ones):

``baselines``         the VQGAN reconstruction of the ground truth (the tokenizer's oracle: no token
                      prediction can beat what the tokenizer can represent), and the masked input with
                      its holes filled by the image's mean known colour;
``one_shot``          T = 1: every masked token at once (the same for every schedule), per token rule;
``grid``              every schedule x every T > 1, sweet spot S = T, per token rule;
``sweet_spot_sweep``  stop after S < T steps, at the largest T on each rule's best schedule;
``more_seeds``        one-shot and each rule's best iterative setting again with the other seeds, so that
                      a difference can be told from seed noise;
``paste_known``       the known input pixels put back over one-shot and each rule's best iterative
                      setting, every seed;
``tau_order_sweep``   only when asked: each rule's best iterative setting again at every choice
                      temperature x decoding order.

"Best" is picked on the first seed, among the confidence-order rows at the run's choice temperature.
``variant_plan`` is the other plan (``--variants``): one setting decoded correctly and with each
decoding variant alone (``labcore.decoding_variants``), per token rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..decoding import DecodingSettings
from ..decoding_variants import CORRECT_STEP, MEASURED_VARIANTS, seed_matters
from .rows import MEAN_FILL, ONE_SHOT, ORACLE, Row, baseline_setting, decoding_setting, variant_setting

ITERATIONS = (1, 2, 4, 8, 12)
SAMPLE_TEMPERATURES = (0.0, 1.0)  # argmax tokens (the course's rule), sampled tokens
STAGES = ("baselines", "one_shot", "grid", "sweet_spot_sweep", "more_seeds", "paste_known", "tau_order_sweep")


def sweet_spots(t_max: int) -> list[int]:
    return sorted({max(1, t_max // 4), max(1, t_max // 2), max(1, 3 * t_max // 4)} - {t_max})


def best_row(rows: list[Row], sample_temperature: float | None = None, seed: int | None = None,
             iterative: bool = False, choice_temperature: float | None = None) -> Row | None:
    """The decoding row without paste-known with the lowest FID (of one token rule, seed, T > 1),
    among the confidence-order rows that are no variant (at ``choice_temperature``: the run's)."""
    rows = [r for r in rows if r.is_decoding and not r.paste_known and r.order in (None, "confidence")
            and not r.is_variant
            and (choice_temperature is None or r.choice_temperature == choice_temperature)
            and (sample_temperature is None or r.sample_temperature == sample_temperature)
            and (seed is None or r.seed == seed) and (not iterative or r.total_iter > 1)]
    return min(rows, key=lambda r: r.fid, default=None)


@dataclass(frozen=True)
class Plan:
    """The settings of a run: schedules x iterations (T) per token rule (sample temperature),
    ``seeds`` seeds from ``base.seed``, the choice temperature ``base.choice_temperature``; and the
    sweep's choice temperatures x orders (both empty: no sweep); every row decoded with ``step``
    (``CORRECT_STEP``: labcore's; a student's step's name with ``labcore experiment --step``)."""
    schedules: tuple[str, ...]
    iterations: tuple[int, ...]
    sample_temperatures: tuple[float, ...]
    seeds: int
    base: DecodingSettings
    choice_temperatures: tuple[float, ...] = ()
    orders: tuple[str, ...] = ()
    step: str = CORRECT_STEP

    def setting(self, t: float, schedule: str, T: int, S: int | None = None, paste: bool = False,
                seed: int | None = None, **changes) -> Row:
        return decoding_setting(self.base, sample_temperature=t, schedule=schedule, total_iter=T, sweet_spot=S,
                                paste_known=paste, seed=self.base.seed if seed is None else seed, step=self.step,
                                **changes)

    def best(self, rows: list[Row], t: float, iterative: bool = True) -> Row | None:
        return best_row(rows, t, self.base.seed, iterative, self.base.choice_temperature)

    @property
    def sweep(self) -> list[tuple[float, str]]:
        """The (choice temperature, order) pairs of ``tau_order_sweep``."""
        if not self.choice_temperatures and not self.orders:
            return []
        return [(tau, o) for tau in self.choice_temperatures or [self.base.choice_temperature]
                for o in self.orders or ["confidence"]]

    def size(self) -> int:
        """Rows of a full run (upper bound: a rule whose best setting is one-shot runs fewer seed
        rows; one pair of the sweep may be done already)."""
        grid = len(self.schedules) * len([T for T in self.iterations if T > 1])
        per_rule = ((1 in self.iterations) + grid + len(sweet_spots(max(self.iterations)))
                    + 2 * (self.seeds - 1) + 2 * self.seeds + len(self.sweep))
        return 2 + len(self.sample_temperatures) * per_rule

    # ----------------------------------------------------------------------------- the stages

    def baselines(self, rows: list[Row]) -> list[Row]:
        return [baseline_setting(ORACLE), baseline_setting(MEAN_FILL)]

    def one_shot(self, rows: list[Row]) -> list[Row]:
        return [self.setting(t, ONE_SHOT, 1) for t in self.sample_temperatures if 1 in self.iterations]

    def grid(self, rows: list[Row]) -> list[Row]:
        return [self.setting(t, schedule, T) for t in self.sample_temperatures for schedule in self.schedules
                for T in self.iterations if T > 1]

    def sweet_spot_sweep(self, rows: list[Row]) -> list[Row]:
        out, T = [], max(self.iterations)
        for t in self.sample_temperatures:
            best = self.best(rows, t)
            out += [self.setting(t, best.schedule, T, S) for S in sweet_spots(T)] if best else []
        return out

    def repeated(self, rows: list[Row], t: float) -> list[tuple[str, int, int | None]]:
        """(schedule, T, S) of what a rule repeats: one-shot and its best iterative setting so far."""
        best = self.best(rows, t)
        return ([(ONE_SHOT, 1, 1)] if 1 in self.iterations else []) + \
            ([(best.schedule, best.total_iter, best.sweet_spot)] if best else [])

    def more_seeds(self, rows: list[Row]) -> list[Row]:
        return [self.setting(t, schedule, T, S, seed=sd) for t in self.sample_temperatures
                for sd in range(self.base.seed + 1, self.base.seed + self.seeds)
                for schedule, T, S in self.repeated(rows, t)]

    def paste_known(self, rows: list[Row]) -> list[Row]:
        """One-shot and each rule's best iterative setting again with the known pixels pasted back,
        every seed (the first seed of each first): what to submit is then picked on seed means."""
        tops = [(t, *setting) for t in self.sample_temperatures for setting in self.repeated(rows, t)]
        return [self.setting(t, schedule, T, S, paste=True, seed=sd)
                for sd in range(self.base.seed, self.base.seed + self.seeds) for t, schedule, T, S in tops]

    def tau_order_sweep(self, rows: list[Row]) -> list[Row]:
        tops = [(t, self.best(rows, t)) for t in self.sample_temperatures]
        return [self.setting(t, top.schedule, top.total_iter, top.sweet_spot, choice_temperature=tau, order=order)
                for t, top in tops if top for tau, order in self.sweep]


def variant_plan(base: DecodingSettings, sample_temperatures, seeds: int, names=MEASURED_VARIANTS) -> list[Row]:
    """``base`` (a schedule, T, tau) decoded correctly and with each of ``names`` (variants of
    ``labcore.decoding_variants.variant``) alone, for every token rule: the first seed of every
    row, then the other seeds rule by rule, so a run cut short has every variant once. More seeds
    only where the seed changes the result (``seed_matters``). The annealed sample temperature is
    not run with argmax tokens: 0 annealed is 0, the correct step itself."""
    plan = []
    for t, sd in [(t, base.seed) for t in sample_temperatures] + \
            [(t, sd) for t in sample_temperatures for sd in range(base.seed + 1, base.seed + seeds)]:
        for name in (CORRECT_STEP, *names):
            if name == "sample_temperature_anneal" and t == 0:
                continue
            row = variant_setting(name, base, sample_temperature=t, seed=sd)
            if sd == base.seed or seed_matters(row.settings(), row.step):
                plan.append(row)
    return plan
