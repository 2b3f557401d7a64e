"""Running a plan, resumable: a run reads the output folder's ``experiments.csv`` first and skips
every row already there (key: the setting columns, the seed and the number of images); it rewrites
the results atomically after every new row, so a killed run, started again with the same command,
carries on where it stopped. The files: ``experiments.csv`` (one line per row), ``experiments.md``
(``report.results_markdown``) and the figures (``figures.save_figures``)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from tqdm.auto import tqdm

from ..decoding import DecodingSettings
from ..decoding_variants import CORRECT_STEP, MEASURED_VARIANTS, MISTAKE_IDS
from ..runtime import atomic_write_text
from .figures import save_figures
from .plan import STAGES, Plan, variant_plan
from .report import results_markdown
from .rows import Row, read_results, write_csv
from .scoring import Experiment


def write_results(rows: list[Row], out_dir: Path) -> None:
    """experiments.csv, .md and the figures; each file is replaced whole (atomically for the text)."""
    out_dir = Path(out_dir)
    write_csv(rows, out_dir / "experiments.csv")
    atomic_write_text(results_markdown(rows), out_dir / "experiments.md")
    save_figures(rows, out_dir)


def previous_rows(out_dir: Path, images: int, choice_temperature: float, step: str = CORRECT_STEP) -> list[Row]:
    """The rows of an earlier run in ``out_dir`` (none if there is no experiments.csv). They must
    be scored on as many images, with the same choice temperature (that of the first decoding row;
    the sweep adds others) and decoded with the same step (labcore's or a student's; the classic
    mistakes of ``--variants`` aside): one table holds numbers that compare."""
    path = Path(out_dir) / "experiments.csv"
    rows = read_results(path) if path.is_file() else []
    counts = sorted({r.images for r in rows})
    if counts and counts != [images]:
        raise ValueError(f"{path} holds rows scored on {', '.join(map(str, counts))} images, this run scores "
                         f"{images}: FIDs on different image counts do not compare; use another --output-dir")
    tau = next((r.choice_temperature for r in rows if r.is_decoding), None)
    if tau is not None and tau != float(choice_temperature):
        raise ValueError(f"{path} holds rows with choice temperature {tau:g}, "
                         f"this run uses {choice_temperature:g}: use another --output-dir")
    others = sorted({r.step or CORRECT_STEP for r in rows if r.is_decoding and r.step not in MISTAKE_IDS} - {step})
    if others:
        raise ValueError(f"{path} holds rows decoded with step {', '.join(others)}, this run decodes with {step}: "
                         "one table compares one step's settings; use another --output-dir")
    return rows


def say(line: str) -> None:
    """One line on stdout beside the progress bar, flushed: a background run's log shows each row at once."""
    tqdm.write(line, file=sys.stdout)
    sys.stdout.flush()


class Runner:
    """Runs rows in order, skipping those already in ``out_dir/experiments.csv``; writes the
    results after every new row. ``computed`` counts the rows this run computed; ``step``: the
    step the run decodes with (``previous_rows``)."""

    def __init__(self, exp: Experiment, out_dir: Path, choice_temperature: float, total: int,
                 step: str = CORRECT_STEP):
        self.exp, self.out_dir = exp, Path(out_dir)
        self.rows = previous_rows(self.out_dir, exp.count, choice_temperature, step)
        self.tau = float(choice_temperature)
        self.done: dict[tuple, Row] = {}
        for r in self.rows:
            self.done.setdefault(r.key(), r)
        self.computed, self.index = 0, 0
        self.bar = tqdm(total=total, desc="experiment rows", disable=not exp.progress)

    def row(self, setting: Row) -> Row:
        """The row of ``setting``: read from the CSV when done before, else computed and written."""
        setting = dataclasses.replace(setting, images=self.exp.count)
        self.index += 1
        label = setting.describe(self.tau)
        if setting.key() in self.done:
            say(f"row {self.index}: {label}: in experiments.csv already, skipped")
            self.bar.update()
            return self.done[setting.key()]
        row = self.exp.run(setting)
        self.rows.append(row)
        self.done[row.key()] = row
        self.computed += 1
        write_results(self.rows, self.out_dir)  # after every row: a killed run keeps what it has
        acc = f", token acc {row.token_acc:.3f}" if row.token_acc is not None else ""
        say(f"row {self.index}: {label}: FID {row.fid:.2f}, PSNR of the holes {row.psnr_masked:.2f} dB{acc} "
            f"({row.seconds:.1f} s)")
        self.bar.update()
        return row

    def run(self, settings: list[Row]) -> None:
        for setting in settings:
            self.row(setting)

    def finish(self) -> "Runner":
        self.bar.close()
        write_results(self.rows, self.out_dir)
        return self


def run_plan(exp: Experiment, out_dir: Path, plan: Plan) -> Runner:
    """The plan's stages in order (``plan.STAGES``); returns the runner (its rows and its count)."""
    runner = Runner(exp, out_dir, plan.base.choice_temperature, plan.size(), plan.step)
    for stage in STAGES:
        runner.run(getattr(plan, stage)(runner.rows))
    return runner.finish()


def run_variants(exp: Experiment, out_dir: Path, base: DecodingSettings, sample_temperatures, seeds: int,
                 names=MEASURED_VARIANTS) -> Runner:
    """``variant_plan``'s rows: ``base`` decoded correctly and with each variant of ``names`` alone."""
    settings = variant_plan(base, sample_temperatures, seeds, names)
    runner = Runner(exp, out_dir, base.choice_temperature, len(settings))
    runner.run(settings)
    return runner.finish()
