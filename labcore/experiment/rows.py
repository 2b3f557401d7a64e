"""One row of the experiment, typed: a setting (how one test set was inpainted) and, once scored,
its measures; and ``experiments.csv``, the one schema the rows are kept in.

A baseline row has a kind and nothing else of a setting (``None``: an empty CSV cell). A decoding
row has every setting column: the token rule, schedule, T, sweet spot S, paste known, choice
temperature, order, annealing, re-masking (ReMDM's eta), the step (``CORRECT_STEP``, a classic
mistake's id or the name of a student's step, ``labcore experiment --step``) and the seed.
T = 1 is schedule-free: schedule ``ONE_SHOT`` (gamma(1) = 0 for every schedule). Rows have no
dilation column: the experiment decodes the course's latent mask.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path

from ..csv_tables import csv_text, read_csv
from ..decoding import DecodingSettings
from ..decoding_variants import CORRECT_STEP, MISTAKE_IDS, token_rule, variant
from ..runtime import atomic_write_text
from ..schedules import COURSE_SCHEDULES

ONE_SHOT = "any"  # the schedule column of the T = 1 rows: gamma(1) = 0 for every schedule
ORACLE = "oracle: VQGAN reconstruction of the ground truth"
MEAN_FILL = "baseline: holes filled with the mean colour"
ONE_SHOT_KIND, MASKGIT_KIND = "one-shot (T=1)", "maskgit"
DECODING = (ONE_SHOT_KIND, MASKGIT_KIND)


@dataclass(frozen=True)
class Row:
    """One line of ``experiments.csv``: the setting columns, the seed, then what was measured (None
    until scored): FID, PSNR of the holes (dB), token accuracy (None for the mean colour, which has
    no tokens), the number of test images and the wall seconds."""
    kind: str
    tokens: str | None = None
    sample_temperature: float | None = None
    schedule: str | None = None
    total_iter: int | None = None
    sweet_spot: int | None = None
    paste_known: bool | None = None
    choice_temperature: float | None = None
    order: str | None = None
    anneal: bool | None = None
    remask: float | None = None
    step: str | None = None
    seed: int | None = None
    fid: float | None = None
    psnr_masked: float | None = None
    token_acc: float | None = None
    images: int | None = None
    seconds: float | None = None

    @property
    def is_decoding(self) -> bool:
        return self.kind in DECODING

    @property
    def variant(self) -> str:
        """What a decoding row changed: a mistake's id, an idea of ``IDEAS``, or ``CORRECT_STEP`` (the
        run's own step: labcore's, or a student's, which a folder never mixes with labcore's)."""
        if self.step in MISTAKE_IDS:
            return self.step
        if self.order == "halton":
            return "order=halton"
        if self.remask:
            return "remask"
        return "sample_temperature_anneal" if self.anneal else CORRECT_STEP

    @property
    def is_variant(self) -> bool:
        """Decoded with a classic mistake's step, with the sample temperature annealed or with
        re-masking (the Halton order is also a choice of the choice-temperature x order sweep). A
        student's step (``--step``) is no variant: its run's grid is its own."""
        return self.step in MISTAKE_IDS or bool(self.anneal) or bool(self.remask)

    def settings(self) -> DecodingSettings:
        """The ``DecodingSettings`` a decoding row decodes with (``ONE_SHOT``: the first course schedule)."""
        return DecodingSettings(schedule=run_schedule(self.schedule), total_iter=self.total_iter,
                                sweet_spot=self.sweet_spot, choice_temperature=self.choice_temperature,
                                sample_temperature=self.sample_temperature, seed=self.seed,
                                paste_known=self.paste_known, order=self.order or "confidence",
                                sample_temperature_anneal=bool(self.anneal), remask=self.remask or 0.0)

    def key(self) -> tuple:
        """The setting, the seed and the image count: a resumed run skips a row whose key is done."""
        return tuple(getattr(self, name) for name in KEY_FIELDS)

    def setting_key(self) -> tuple:
        """The key without the seed: rows that differ only in their seed are one setting."""
        return tuple(getattr(self, name) for name in SETTING_FIELDS + ["images"])

    def describe(self, tau: float | None = None) -> str:
        """The row's label; its choice temperature only where it is not ``tau`` (the run's)."""
        if not self.is_decoding:
            return self.kind
        text = f"{self.tokens} tokens, {self.schedule} T={self.total_iter} S={self.sweet_spot}"
        text += f", {self.order} order" if self.order not in ("confidence", None) else ""
        text += ", sample temperature annealed" if self.anneal else ""
        text += f", remask {self.remask:g}" if self.remask else ""
        text += f", step {self.step}" if self.step not in (CORRECT_STEP, None) else ""
        text += f", tau {self.choice_temperature:g}" if tau is not None and self.choice_temperature != tau else ""
        return text + (", paste known" if self.paste_known else "") + f", seed {self.seed}"


FIELDS = [f.name for f in dataclasses.fields(Row)]                 # the CSV's columns, in order
SETTING_FIELDS = FIELDS[:FIELDS.index("seed")]
KEY_FIELDS = SETTING_FIELDS + ["seed", "images"]
MEASURES = ("fid", "psnr_masked", "token_acc", "seconds")
# Columns added after the first results were written, and what an older CSV's decoding rows were.
LATER_FIELDS = {"order": "confidence", "anneal": False, "remask": 0.0, "step": CORRECT_STEP}


def run_schedule(schedule: str) -> str:
    """The schedule a row decodes with: ``ONE_SHOT`` (T = 1) runs the first course schedule."""
    return COURSE_SCHEDULES[0] if schedule == ONE_SHOT else schedule


def decoding_setting(settings: DecodingSettings | None = None, step: str = CORRECT_STEP, **changes) -> Row:
    """The row to compute for ``settings`` with keyword ``changes`` (e.g. ``sample_temperature=1.0,
    total_iter=8``), validated, decoded with ``step`` (``CORRECT_STEP``, a classic mistake's id or a
    student's step's name)."""
    if "schedule" in changes:
        changes["schedule"] = run_schedule(changes["schedule"])          # ONE_SHOT names no schedule
    s = DecodingSettings.resolve(settings, **changes)
    one_shot = s.total_iter == 1
    return Row(kind=ONE_SHOT_KIND if one_shot else MASKGIT_KIND, tokens=token_rule(s.sample_temperature),
               sample_temperature=s.sample_temperature, schedule=ONE_SHOT if one_shot else s.schedule,
               total_iter=s.total_iter, sweet_spot=s.steps, paste_known=s.paste_known,
               choice_temperature=s.choice_temperature, order=s.order, anneal=s.sample_temperature_anneal,
               remask=s.remask, step=step, seed=s.seed)


def variant_setting(name: str, settings: DecodingSettings | None = None, **changes) -> Row:
    """The row to compute for the decoding variant ``name`` (``labcore.decoding_variants.variant``:
    ``CORRECT_STEP``, an idea or a classic mistake's id) of ``settings`` with keyword ``changes``."""
    v = variant(name)
    return decoding_setting(v.settings(DecodingSettings.resolve(settings, **changes)), step=v.step)


def baseline_setting(kind: str) -> Row:
    """The row to compute for a baseline (``ORACLE`` or ``MEAN_FILL``): a kind and nothing else."""
    return Row(kind=kind)


# ----------------------------------------------------------------------------- experiments.csv

_TYPES = {name: typing.get_args(hint)[0] if typing.get_args(hint) else hint
          for name, hint in typing.get_type_hints(Row).items()}   # field -> int, float, bool or str


def _parse(name: str, text: str | None):
    if text in ("", None):
        return None
    kind = _TYPES[name]
    return text == "True" if kind is bool else kind(text)


def read_results(path: str | Path) -> list[Row]:
    """The rows of an ``experiments.csv``. A file from before the ``order``, ``anneal``, ``remask`` or
    ``step`` column reads as what it was (``LATER_FIELDS``: confidence order, no annealing, no
    re-masking, labcore's step);
    any other set of columns is an error that names them."""
    columns, cells = read_csv(path)
    missing = [k for k in FIELDS if k not in columns]
    if missing and set(missing) <= set(LATER_FIELDS) and columns == [k for k in FIELDS if k in columns]:
        cells = [{**line, **{k: str(LATER_FIELDS[k]) if line["kind"] in DECODING else "" for k in missing}}
                 for line in cells]  # written before these columns: what those rows were
    elif columns != FIELDS:
        raise ValueError(f"{path}: columns {columns or None} are not this labcore's {FIELDS} "
                         "(an older experiment?): use another --output-dir")
    return [Row(**{k: _parse(k, line[k]) for k in FIELDS}) for line in cells]


def write_csv(rows: list[Row], path: str | Path) -> None:
    """``rows`` as ``experiments.csv`` (None: an empty cell), replacing the file whole (atomically)."""
    atomic_write_text(csv_text(FIELDS, ({k: getattr(r, k) for k in FIELDS} for r in rows)), path)
