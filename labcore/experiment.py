"""``labcore experiment``: does iterative decoding beat one-shot decoding, and which mask schedule
and how many iterations inpaint best? Measured by FID, with two cheap columns beside it.

One command, fixed seeds, writes into the output folder (default ``results/``):
``experiments.csv`` (one line per row), ``experiments.md`` (the table: a setting run with several
seeds shows mean ± std; then the aims, checked against the numbers) and ``experiments.png`` (FID
vs T per schedule, one panel per token rule). The rows, in this order:

1. baselines: the VQGAN reconstruction of the ground truth (the tokenizer's oracle: no token
   prediction can beat what the tokenizer can represent), and the masked input with its holes
   filled by the image's mean known colour;
2. one-shot decoding (T = 1: every masked token at once, the same for every schedule), once per
   token rule;
3. the grid: every schedule (default: the course's linear, cosine, square) x T in {2, 4, 8, 12},
   sweet spot S = T, for each token rule;
4. a sweet-spot sweep (stop after S < T steps) at the largest T, on each rule's best schedule;
5. more seeds (``--seeds``, default 3 in all) for one-shot and for each rule's best iterative
   setting, so that a difference can be told from seed noise;
6. ``paste_known`` (the known input pixels put back over the output) for each rule's best setting;
7. only when asked (``--choice-temperatures``, ``--orders``): each rule's best iterative setting
   again at every choice temperature x decoding order (``DecodingSettings.order``: "confidence",
   MaskGIT's rule, or "halton", a fixed spatial order).

The token rules (``--sample-temperatures``, default 0 1): 0 takes the argmax token (the course's
rule), t > 0 samples each token from softmax(logits / t). With argmax tokens every token is already
the most likely one, and conditioning on the most likely neighbours mostly confirms it, so the
schedule has little to work with; with sampled tokens one-shot decoding draws every token
independently, and iterative decoding lets the later samples agree with the earlier ones, which is
MaskGIT's point. Every decoding row uses the choice temperature ``--choice-temperature`` (default
4.5). Outputs are clamped to [0, 1], as the PNGs ``labcore inpaint`` writes are.

Beside FID (Inception, the slow part of a row), two columns that need no Inception:
``psnr_masked``, the PSNR in dB of the missing pixels only (mask == 0, images in [0, 1], mean over
images), and ``token_acc``, the share of the tokens the decoder fills (the latent mask) that equal
the tokenizer's tokens of the ground truth (1 for the oracle by definition; empty for the mean
colour, which has no tokens).

Resumable: a run reads the output folder's ``experiments.csv`` first and skips every row already
there (key: the setting columns, the seed and the number of images); it rewrites the CSV
atomically after every new row, so a killed run, started again with the same command, carries on
where it stopped. The full run on the bundled models, in the background (``scripts/run-experiment.sh``
does this; run the same command again to resume)::

    mkdir -p results/experiment750 && nohup .venv/bin/labcore experiment -o results/experiment750 \\
        --no-progress >> results/experiment750/run.log 2>&1 &
"""

from __future__ import annotations

import statistics
import sys
import time
from functools import cached_property
from pathlib import Path

import torch
from matplotlib.figure import Figure  # no pyplot figures: a notebook shows only the figure it is handed
from tqdm.auto import tqdm

from . import fid, fid_files
from .csv_tables import csv_text, read_csv
from .data import InpaintingTestSet, collate_test
from .checkers.wrong_steps import MISTAKE_NAMES, classic_steps
from .decoding import DecodingSettings, decode_step
from .maskgit import MaskGit, latent_mask, paste_known_pixels
from .metrics import psnr_masked
from .runtime import atomic_write_text, pick_device
from .viz import COURSE_SCHEDULES, token_rule

ITERATIONS = (1, 2, 4, 8, 12)
SAMPLE_TEMPERATURES = (0.0, 1.0)  # argmax tokens (the course's rule), sampled tokens
ONE_SHOT = "any"  # the schedule column of the T = 1 rows: gamma(1) = 0 for every schedule
ORACLE = "oracle: VQGAN reconstruction of the ground truth"
MEAN_FILL = "baseline: holes filled with the mean colour"
ONE_SHOT_KIND, MASKGIT_KIND = "one-shot (T=1)", "maskgit"
DECODING = (ONE_SHOT_KIND, MASKGIT_KIND)
SETTING_FIELDS = ["kind", "tokens", "sample_temperature", "schedule", "total_iter", "sweet_spot",
                  "paste_known", "choice_temperature", "order", "anneal", "step"]
CORRECT_STEP = "decode_step"  # the step column of a row decoded with labcore's (correct) step
# Columns added after the first results were written, and what an older CSV's decoding rows were.
LATER_FIELDS = {"order": "confidence", "anneal": False, "step": CORRECT_STEP}
# Row 8 (``--variants``): the classic decoding mistakes of notebook 05, each alone, and two ideas
# of recent work that need no retraining.
MISTAKES = ("decode.shared_gumbel", "decode.gumbel_on_probs", "decode.anneal_with_gamma", "decode.reencodes",
            "decode.overwrites_known", "decode.count_from_current")
IDEAS = ("order=halton", "sample_temperature_anneal")
VARIANTS = MISTAKES + IDEAS
MISTAKE_IDS = tuple(f"decode.{name}" for name in MISTAKE_NAMES) + ("decode.reencodes",)
FIELDS = SETTING_FIELDS + ["seed", "fid", "psnr_masked", "token_acc", "images", "seconds"]
KEY_FIELDS = SETTING_FIELDS + ["seed", "images"]  # a row with this key is done: a resumed run skips it


# ----------------------------------------------------------------------------- settings and rows

def decoding_setting(settings: DecodingSettings | None = None, step: str = CORRECT_STEP, **changes) -> dict:
    """The setting columns of one decoding row: ``settings`` with keyword ``changes`` (e.g.
    ``sample_temperature=1.0, total_iter=8``), validated, decoded with ``step`` (labcore's
    ``decode_step``, or a classic mistake's id of ``labcore.checkers.wrong_steps.classic_steps``).
    T = 1 is schedule-free: schedule ``ONE_SHOT``, whichever schedule is given (gamma(1) = 0 for
    every one). Rows have no dilation column: the experiment decodes the course's latent mask."""
    if "schedule" in changes:
        changes["schedule"] = run_schedule(changes["schedule"])                # ONE_SHOT names no schedule
    s = DecodingSettings.resolve(settings, **changes)
    one_shot = s.total_iter == 1
    return {"kind": ONE_SHOT_KIND if one_shot else MASKGIT_KIND, "tokens": token_rule(s.sample_temperature),
            "sample_temperature": s.sample_temperature, "schedule": ONE_SHOT if one_shot else s.schedule,
            "total_iter": s.total_iter, "sweet_spot": s.steps, "paste_known": s.paste_known,
            "choice_temperature": s.choice_temperature, "order": s.order,
            "anneal": s.sample_temperature_anneal, "step": step, "seed": s.seed}


def run_schedule(schedule: str) -> str:
    """The schedule a row decodes with: ``ONE_SHOT`` (T = 1) runs the first course schedule."""
    return COURSE_SCHEDULES[0] if schedule == ONE_SHOT else schedule


def row_settings(row: dict) -> DecodingSettings:
    """The ``DecodingSettings`` of a decoding row (as written by ``decoding_setting`` or read back)."""
    return DecodingSettings(schedule=run_schedule(row["schedule"]), total_iter=row["total_iter"],
                            sweet_spot=row["sweet_spot"], choice_temperature=row["choice_temperature"],
                            sample_temperature=row["sample_temperature"], seed=row["seed"],
                            paste_known=row["paste_known"], order=row.get("order") or "confidence",
                            sample_temperature_anneal=bool(row.get("anneal")))


def baseline_setting(kind: str) -> dict:
    return {**dict.fromkeys(SETTING_FIELDS + ["seed"], ""), "kind": kind}


def _canon(value) -> str:
    """One spelling per value, so that a row read back from the CSV has the key it was written with."""
    if isinstance(value, bool) or value == "":
        return str(value)
    return repr(float(value)) if isinstance(value, (int, float)) else str(value)


def row_key(row: dict, fields=KEY_FIELDS) -> tuple:
    return tuple(_canon(row[k]) for k in fields)


def setting_key(row: dict) -> tuple:
    """The key without the seed: rows that differ only in their seed are one setting."""
    return row_key(row, SETTING_FIELDS + ["images"])


def is_decoding(row: dict) -> bool:
    return row["kind"] in DECODING


def is_variant(row: dict) -> bool:
    """A row of row 8: decoded with a classic mistake's step or with the sample temperature annealed."""
    return row.get("step", CORRECT_STEP) not in (CORRECT_STEP, "") or row.get("anneal") in (True, "True")


def variant_changes(name: str) -> dict:
    """The ``decoding_setting`` changes of a variant of ``VARIANTS`` (or any classic mistake's id)."""
    if name == CORRECT_STEP:
        return {}
    if name == "order=halton":
        return {"order": "halton"}
    if name == "sample_temperature_anneal":
        return {"sample_temperature_anneal": True}
    if name in MISTAKE_IDS:
        return {"step": name}
    raise ValueError(f"unknown variant {name!r}; choose from {', '.join(IDEAS + MISTAKE_IDS)}")


def is_random(settings: DecodingSettings, step: str = CORRECT_STEP) -> bool:
    """Does the seed change what this setting decodes? Sampled tokens, or choice noise that orders
    (per-token noise in the confidence order; one scalar sample, ``decode.shared_gumbel``, shifts
    every confidence alike and orders nothing)."""
    orders = settings.choice_temperature > 0 and settings.order == "confidence" and step != "decode.shared_gumbel"
    return settings.sample_temperature > 0 or orders


def load_test_tensors(test_set: InpaintingTestSet, limit: int | None = None, progress: bool = True) -> dict:
    """The first ``limit`` test items as stacked tensors (images, masks, targets normalised)."""
    count = len(test_set) if limit is None else min(limit, len(test_set))
    items = [test_set[i] for i in tqdm(range(count), desc="load test set", leave=False, disable=not progress)]
    batch = collate_test(items)
    if batch["target"] is None:
        raise ValueError("the test set has no ground truth (no ground_truth/ folder or test_gt.csv): FID needs one")
    return batch


class Experiment:
    """Scores inpainting settings on one test set with one MaskGit: FID against the ground truth,
    PSNR of the holes and token accuracy. The reference statistics and the tokens are computed on
    first use, so a resumed run with nothing left to do computes neither."""

    def __init__(self, maskgit: MaskGit, test_set: InpaintingTestSet, limit: int | None = None,
                 batch_size: int = 64, device: str = "auto", fid_batch_size: int = 50, progress: bool = True):
        self.device = pick_device(device)
        self.maskgit = maskgit.to(self.device).eval()
        self.test_set, self.norm = test_set, test_set.normalization
        self.batch_size, self.fid_batch_size, self.progress = batch_size, fid_batch_size, progress
        data = load_test_tensors(test_set, limit, progress)
        self.images, self.masks, self.targets = data["image"], data["mask"], data["target"]  # (N,3|1|3,64,64)
        self.targets01 = self.norm.denormalize(self.targets).clamp(0, 1)          # (N,3,64,64) in [0,1]
        self.count = len(self.images)
        fid.note_if_few(self.count, "compare only scores within this table")  # said once here, not once per row

    @cached_property
    def reference(self) -> fid.Stats:
        """Inception statistics of the ground truth's first ``count`` images, from the activations
        shipped beside it (or cached on disk) when there are some, else computed once."""
        limit = None if self.count == len(self.test_set) else self.count
        return fid_files.load_or_compute_stats(self.test_set.gt_source, batch_size=self.fid_batch_size,
                                               device=self.device, limit=limit, progress=self.progress)

    @cached_property
    @torch.no_grad()
    def encoded(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per batch: the input's tokens (b, 256), the latent mask (b, 16, 16) and the truth's tokens (b, 256)."""
        batches = []
        for lo in range(0, self.count, self.batch_size):
            part = slice(lo, lo + self.batch_size)
            tokens = self.maskgit.encode_to_z(self.images[part].to(self.device))  # (b, 256), encoded once
            masked = latent_mask(self.masks[part].to(self.device), patch=self.maskgit.patch)  # (b, 16, 16)
            truth = self.maskgit.encode_to_z(self.targets[part].to(self.device))  # (b, 256)
            batches.append((tokens, masked, truth))
        return batches

    @cached_property
    def steps(self) -> dict:
        """Step column -> step function: labcore's ``decode_step`` and every classic mistake."""
        return {CORRECT_STEP: decode_step, **classic_steps(self.maskgit)}

    def fid_of(self, images01: torch.Tensor) -> float:
        """FID of (N, 3, 64, 64) images in [0, 1] against the ground truth (the small-sample note
        was given once, in __init__)."""
        return fid_files.fid_of_folder(images01, self.reference, self.fid_batch_size, self.device,
                                       progress=self.progress, note_few=False).fid

    def score(self, setting: dict, images01: torch.Tensor, token_acc: float | None, start: float) -> dict:
        """A finished row: the setting, the three measures, the image count and the wall time."""
        return {**setting, "fid": round(self.fid_of(images01), 3),
                "psnr_masked": round(psnr_masked(images01, self.targets01, self.masks), 3),
                "token_acc": "" if token_acc is None else round(token_acc, 4),
                "images": self.count, "seconds": round(time.perf_counter() - start, 1)}

    def run(self, setting: dict) -> dict:
        """Compute one row: a baseline or a decoding setting (``decoding_setting``)."""
        start = time.perf_counter()
        if setting["kind"] == ORACLE:
            return self.score(setting, self.oracle_images(), 1.0, start)  # its tokens ARE the truth's
        if setting["kind"] == MEAN_FILL:
            return self.score(setting, self.mean_fill_images(), None, start)
        return self.score(setting, *self.decode(setting), start)

    @torch.no_grad()
    def decode(self, setting: dict) -> tuple[torch.Tensor, float]:
        """Inpaint every test image with ``setting``: images in [0, 1] (N,3,64,64) and the token accuracy."""
        settings = row_settings(setting)
        generator = settings.generator()  # one stream through every batch, the same numbers on any device
        outputs, hits, filled = [], 0, 0
        for b, (tokens, masked, truth) in enumerate(self.encoded):
            final, _ = self.maskgit.decode_tokens(tokens, masked, settings, generator=generator,
                                                  step=self.steps[setting.get("step") or CORRECT_STEP])  # (b, 16, 16)
            hits += int((final.flatten(1) == truth)[masked.flatten(1)].sum())
            filled += int(masked.sum())
            images = self.maskgit.decode_z(final).cpu()                          # (b,3,64,64) normalised
            if settings.paste_known:
                part = slice(b * self.batch_size, b * self.batch_size + len(images))
                images = paste_known_pixels(self.images[part], self.masks[part], images)
            outputs.append(self.norm.denormalize(images).clamp(0, 1))           # (b,3,64,64) in [0,1]
        return torch.cat(outputs), hits / max(filled, 1)

    @torch.no_grad()
    def oracle_images(self) -> torch.Tensor:
        """VQGAN reconstruction of the ground truth: the best any token prediction can do."""
        outputs = [self.maskgit.decode_z(truth).cpu() for _, _, truth in self.encoded]  # (b,3,64,64) each
        return self.norm.denormalize(torch.cat(outputs)).clamp(0, 1)            # (N,3,64,64)

    def mean_fill_images(self) -> torch.Tensor:
        """The masked input with every hole filled by the mean colour of the image's known pixels."""
        images01, known = self.norm.denormalize(self.images), self.masks        # (N,3,64,64), (N,1,64,64)
        mean = (images01 * known).sum(dim=(2, 3), keepdim=True) / known.sum(dim=(2, 3), keepdim=True).clamp(min=1)
        return paste_known_pixels(images01, known, mean.expand_as(images01)).clamp(0, 1)  # (N,3,64,64)


# ----------------------------------------------------------------------------- the run

class Runner:
    """Runs rows in order, skipping those already in ``out_dir/experiments.csv``; writes the
    results after every new row. ``computed`` counts the rows this run computed."""

    def __init__(self, exp: Experiment, out_dir: Path, choice_temperature: float, total: int):
        self.exp, self.out_dir = exp, Path(out_dir)
        self.rows = previous_rows(self.out_dir, exp.count, choice_temperature)
        self.tau = float(choice_temperature)
        self.done = {row_key(r) for r in self.rows}
        self.computed, self.index = 0, 0
        self.bar = tqdm(total=total, desc="experiment rows", disable=not exp.progress)

    def row(self, setting: dict) -> dict:
        """The row of ``setting``: read from the CSV when done before, else computed and written."""
        setting = {**setting, "images": self.exp.count}
        self.index += 1
        label = describe(setting, self.tau)
        if row_key(setting) in self.done:
            say(f"row {self.index}: {label}: in experiments.csv already, skipped")
            self.bar.update()
            return next(r for r in self.rows if row_key(r) == row_key(setting))
        row = self.exp.run(setting)
        self.rows.append(row)
        self.done.add(row_key(row))
        self.computed += 1
        write_results(self.rows, self.out_dir)  # after every row: a killed run keeps what it has
        say(f"row {self.index}: {label}: FID {row['fid']:.2f}, PSNR of the holes {row['psnr_masked']:.2f} dB"
            + (f", token acc {row['token_acc']:.3f}" if row["token_acc"] != "" else "") + f" ({row['seconds']:.1f} s)")
        self.bar.update()
        return row


def say(line: str) -> None:
    """One line on stdout beside the progress bar, flushed: a background run's log shows each row at once."""
    tqdm.write(line, file=sys.stdout)
    sys.stdout.flush()


def describe(row: dict, tau: float | None = None) -> str:
    """A row's label; its choice temperature only where it is not ``tau`` (the run's)."""
    if not is_decoding(row):
        return row["kind"]
    text = f"{row['tokens']} tokens, {row['schedule']} T={row['total_iter']} S={row['sweet_spot']}"
    if row.get("order", "confidence") != "confidence":
        text += f", {row['order']} order"
    if row.get("anneal"):
        text += ", sample temperature annealed"
    if row.get("step", CORRECT_STEP) != CORRECT_STEP:
        text += f", step {row['step']}"
    if tau is not None and row["choice_temperature"] != tau:
        text += f", tau {row['choice_temperature']:g}"
    return text + (", paste known" if row["paste_known"] else "") + f", seed {row['seed']}"


def plan_size(schedules, iterations, temperatures, seeds: int, sweep: int = 0) -> int:
    """Rows of a full run (upper bound: a rule whose best setting is one-shot runs fewer seed rows;
    ``sweep``: the choice temperature x order pairs of row 7, one of which may be done already)."""
    grid = len(schedules) * len([t for t in iterations if t > 1])
    per_rule = (1 in iterations) + grid + len(sweet_spots(max(iterations))) + 2 * (seeds - 1) + 1 + sweep
    return 2 + len(temperatures) * per_rule


def sweet_spots(t_max: int) -> list[int]:
    return sorted({max(1, t_max // 4), max(1, t_max // 2), max(1, 3 * t_max // 4)} - {t_max})


def best_row(rows: list[dict], sample_temperature: float | None = None, seed: int | None = None,
             iterative: bool = False, choice_temperature: float | None = None) -> dict | None:
    """The decoding row without paste-known with the lowest FID (of one token rule, seed, T > 1),
    among the confidence-order rows (at ``choice_temperature``: the run's, not row 7's sweep)."""
    rows = [r for r in rows if is_decoding(r) and not r["paste_known"] and r.get("order") in (None, "confidence")
            and not is_variant(r)
            and (choice_temperature is None or r["choice_temperature"] == choice_temperature)
            and (sample_temperature is None or r["sample_temperature"] == sample_temperature)
            and (seed is None or r["seed"] == seed) and (not iterative or r["total_iter"] > 1)]
    return min(rows, key=lambda r: float(r["fid"]), default=None)


def run_rows(exp: Experiment, out_dir: Path, schedules, iterations, sample_temperatures, seeds: int,
             seed: int, choice_temperature: float, choice_temperatures=(), orders=()) -> Runner:
    """The rows in the module docstring's order; returns the runner (its rows and its count).
    ``choice_temperatures`` and ``orders`` (empty: the run's only) make row 7's sweep."""
    taus, orders = list(choice_temperatures), list(orders)
    sweep = [(tau, o) for tau in taus or [choice_temperature] for o in orders or ["confidence"]]
    sweep = sweep if taus or orders else []
    total = plan_size(schedules, iterations, sample_temperatures, seeds, len(sweep))
    runner = Runner(exp, out_dir, choice_temperature, total)

    base = DecodingSettings(choice_temperature=choice_temperature, seed=seed)

    def setting(t: float, schedule: str, T: int, S: int | None = None, paste: bool = False, sd: int = seed,
                **changes) -> dict:
        return decoding_setting(base, sample_temperature=t, schedule=schedule, total_iter=T, sweet_spot=S,
                                paste_known=paste, seed=sd, **changes)

    def best_of(t: float) -> dict | None:
        return best_row(runner.rows, t, seed, iterative=True, choice_temperature=base.choice_temperature)

    runner.row(baseline_setting(ORACLE))
    runner.row(baseline_setting(MEAN_FILL))
    steps = [T for T in iterations if T > 1]
    for t in sample_temperatures:
        if 1 in iterations:
            runner.row(setting(t, ONE_SHOT, 1))
    for t in sample_temperatures:
        for schedule in schedules:
            for T in steps:
                runner.row(setting(t, schedule, T))
    for t in sample_temperatures:  # stop early (S < T) on the rule's best schedule at the largest T
        best = best_of(t)
        for S in sweet_spots(max(iterations)) if best else []:
            runner.row(setting(t, best["schedule"], max(iterations), S))
    for t in sample_temperatures:  # one-shot and the best iterative setting, with more seeds
        best = best_of(t)
        repeat = ([(ONE_SHOT, 1, 1)] if 1 in iterations else []) + \
                 ([(best["schedule"], best["total_iter"], best["sweet_spot"])] if best else [])
        for sd in range(seed + 1, seed + seeds):
            for schedule, T, S in repeat:
                runner.row(setting(t, schedule, T, S, sd=sd))
    for t in sample_temperatures:  # the known pixels put back over the rule's best setting
        top = best_row(runner.rows, t, seed, choice_temperature=base.choice_temperature)
        if top:
            runner.row(setting(t, top["schedule"], top["total_iter"], top["sweet_spot"], paste=True))
    for t in sample_temperatures:  # row 7: the rule's best iterative setting at other taus and orders
        top = best_of(t)
        for tau, order in sweep if top else []:
            runner.row(setting(t, top["schedule"], top["total_iter"], top["sweet_spot"],
                               choice_temperature=tau, order=order))
    runner.bar.close()
    write_results(runner.rows, out_dir)
    return runner


def previous_rows(out_dir: Path, images: int, choice_temperature: float) -> list[dict]:
    """The rows of an earlier run in ``out_dir`` (none if there is no experiments.csv). They must
    be scored on as many images, with the same choice temperature (that of the first decoding row;
    row 7's sweep adds others): one table holds numbers that compare."""
    path = Path(out_dir) / "experiments.csv"
    rows = read_results(path) if path.is_file() else []
    counts = sorted({r["images"] for r in rows})
    if counts and counts != [images]:
        raise ValueError(f"{path} holds rows scored on {', '.join(map(str, counts))} images, this run scores "
                         f"{images}: FIDs on different image counts do not compare; use another --output-dir")
    tau = next((r["choice_temperature"] for r in rows if is_decoding(r)), None)
    if tau is not None and tau != float(choice_temperature):
        raise ValueError(f"{path} holds rows with choice temperature {tau:g}, "
                         f"this run uses {choice_temperature:g}: use another --output-dir")
    return rows


# ----------------------------------------------------------------------------- results files

def read_results(path: str | Path) -> list[dict]:
    """Rows of an ``experiments.csv``, with numbers and booleans as written. A file from before the
    ``order``, ``anneal`` or ``step`` column reads as what it was (``LATER_FIELDS``: confidence
    order, no annealing, labcore's step)."""
    ints, texts = {"total_iter", "sweet_spot", "seed", "images"}, {"kind", "tokens", "schedule", "order", "step"}

    def parse(key: str, value: str):
        if value == "" or key in texts:
            return value
        if key in ("paste_known", "anneal"):
            return value == "True"
        return int(value) if key in ints else float(value)

    columns, rows = read_csv(path)
    missing = [k for k in FIELDS if k not in columns]
    if missing and set(missing) <= set(LATER_FIELDS) and columns == [k for k in FIELDS if k in columns]:
        rows = [{**row, **{k: str(LATER_FIELDS[k]) if row["kind"] in DECODING else "" for k in missing}}
                for row in rows]  # written before these columns: what those rows were
    elif columns != FIELDS:
        raise ValueError(f"{path}: columns {columns or None} are not this labcore's {FIELDS} "
                         "(an older experiment?): use another --output-dir")
    return [{k: parse(k, v) for k, v in row.items()} for row in rows]


def write_results(rows: list[dict], out_dir: Path) -> None:
    """experiments.csv, .md and .png; each file is replaced whole (atomically)."""
    out_dir = Path(out_dir)
    atomic_write_text(csv_text(FIELDS, ({k: r[k] for k in FIELDS} for r in rows)), out_dir / "experiments.csv")
    atomic_write_text(results_markdown(rows), out_dir / "experiments.md")
    plot_fid_vs_iterations(rows, out_dir / "experiments.png")
    if variant_costs(aggregate(rows)):
        variants_figure(rows).savefig(out_dir / "variants.png", dpi=110)


def aggregate(rows: list[dict]) -> list[dict]:
    """One entry per setting (rows that differ only in their seed), in first-seen order:
    the setting, ``n`` seeds, and mean / std (0 for one seed) of every measure."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(setting_key(r), []).append(r)
    out = []
    for members in groups.values():
        entry = {k: members[0][k] for k in SETTING_FIELDS + ["images"]}
        entry["n"] = len(members)
        for measure in ("fid", "psnr_masked", "token_acc", "seconds"):
            values = [float(m[measure]) for m in members if m[measure] != ""]
            entry[measure] = statistics.fmean(values) if values else None
            entry[f"{measure}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        out.append(entry)
    return out


def _cell(entry: dict, measure: str, digits: int) -> str:
    if entry[measure] is None:
        return ""
    text = f"{entry[measure]:.{digits}f}"
    return text + (f" ± {entry[measure + '_std']:.{digits}f}" if entry["n"] > 1 else "")


def results_markdown(rows: list[dict], with_aims: bool = True) -> str:
    """The table (sorted by FID; several seeds: mean ± std, sample std), a footnote saying what its
    numbers are, and the aims checked."""
    entries = aggregate(rows)
    label = _setting_label(entries)
    lines = ["| setting | tokens | schedule | T | S | paste known | FID | PSNR holes (dB) | token acc | seeds | s/row |",
             "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for e in sorted(entries, key=lambda e: e["fid"]):
        lines.append(f"| {label(e)} | {e['tokens']} | {e['schedule']} | {e['total_iter']} | {e['sweet_spot']} | "
                     f"{e['paste_known']} | {_cell(e, 'fid', 2)} | {_cell(e, 'psnr_masked', 2)} | "
                     f"{_cell(e, 'token_acc', 3)} | {e['n'] if is_decoding(e) else ''} | {e['seconds']:.0f} |")
    if rows:
        seeds = any(e["n"] > 1 for e in entries)  # mention seeds only under a table with seed repeats
        note = (f"FID from {rows[0]['images']} images (biased upwards below {fid.RELIABLE_SAMPLES}: compare only "
                "within this table). "
                + ("± is the standard deviation over seeds; the best iterative setting was picked on the first "
                   "seed. " if seeds else "")
                + "s/row: the wall seconds each row took as it ran" + (" (mean over seeds)" if seeds else "")
                + ", whatever else the machine was doing: a record, not a benchmark.")
        lines += ["", note] + (["", *aims(entries)] if with_aims else [])
    if variant_costs(entries):
        lines += ["", variants_markdown(entries)]
    return "\n".join(lines) + "\n"


def _sweep_test(entries: list[dict]):
    """A test of an entry: is it one of row 7's sweep (another choice temperature than the first
    decoding entry's, or another order than "confidence") or of row 8's variants?"""
    tau = next((e["choice_temperature"] for e in entries if is_decoding(e)), None)
    return lambda e: is_decoding(e) and (e["choice_temperature"] != tau or e["order"] != "confidence"
                                         or is_variant(e))


def _setting_label(entries: list[dict]):
    """The setting cell: the kind, plus the order and tau of every decoding row when the table
    holds a sweep (row 7); the kind alone otherwise, as before the sweep existed."""
    if not any(map(_sweep_test(entries), entries)):
        return lambda e: e["kind"]
    def label(e: dict) -> str:
        if not is_decoding(e):
            return e["kind"]
        text = f"{e['kind']}, {e['order']}, tau {e['choice_temperature']:g}"
        text += ", sample temperature annealed" if e.get("anneal") else ""
        return text + (f", {e['step']}" if e.get("step", CORRECT_STEP) != CORRECT_STEP else "")
    return label


def aims(entries: list[dict]) -> list[str]:
    """The issue's aims, each checked against the table: met / not met / not measured."""
    lines = ["Aims:"]
    variant = _sweep_test(entries)
    entries = [e for e in entries if not variant(e)]  # the sweep has no aim of its own
    for t in dict.fromkeys(e["sample_temperature"] for e in entries if is_decoding(e)):
        rule = [e for e in entries if is_decoding(e) and e["sample_temperature"] == t and not e["paste_known"]]
        one = next((e for e in rule if e["total_iter"] == 1), None)
        best = min((e for e in rule if e["total_iter"] > 1 and e["n"] > 1), key=lambda e: e["fid"], default=None)
        if one is None or best is None or one["n"] < 2:
            lines.append(f"- {token_rule(t)} tokens: best iterative vs one-shot: not measured (needs both with seeds)")
            continue
        std = max(one["fid_std"], best["fid_std"])
        gap = one["fid"] - best["fid"]
        verdict = "met" if gap > 3 * std else "not met"
        lines.append(f"- {token_rule(t)} tokens: best iterative ({best['schedule']} T={best['total_iter']} "
                     f"S={best['sweet_spot']}) FID {_cell(best, 'fid', 2)} vs one-shot {_cell(one, 'fid', 2)}: "
                     f"one-shot - best = {gap:.2f}, {gap / std if std else float('inf'):.1f} x the larger seed std "
                     f"(aim: > 3): {verdict}")
    return lines + baseline_aims(entries)


def baseline_aims(entries: list[dict]) -> list[str]:
    by_kind = {e["kind"]: e for e in entries if not is_decoding(e)}
    pasted = min((e for e in entries if is_decoding(e) and e["paste_known"]), key=lambda e: e["fid"], default=None)
    oracle, mean = by_kind.get(ORACLE), by_kind.get(MEAN_FILL)
    if pasted is None or oracle is None or mean is None:
        return ["- paste known vs mean colour vs oracle: not measured"]
    label = f"paste known ({pasted['tokens']}, {pasted['schedule']} T={pasted['total_iter']}) FID {pasted['fid']:.2f}"
    return [f"- {label} vs mean colour {mean['fid']:.2f}: {'met' if pasted['fid'] < mean['fid'] else 'not met'}",
            f"- oracle {oracle['fid']:.2f} below both: "
            f"{'met' if oracle['fid'] < min(pasted['fid'], mean['fid']) else 'not met'}"]


def plot_fid_vs_iterations(rows: list[dict], path: Path) -> None:
    """experiments.png (``fid_figure``); sweeps.png (``sweep_figure``) and summary.png
    (``summary_figure``) when the rows hold what they draw."""
    fid_figure(rows).savefig(path, dpi=110)
    for name, draw in (("sweeps.png", sweep_figure), ("summary.png", summary_figure)):
        fig = draw(rows)
        if fig is not None:
            fig.savefig(Path(path).parent / name, dpi=110)


def _grid_entries(rows: list[dict]) -> list[dict]:
    """The plan's entries (``aggregate``'s), without row 7's sweep and row 8's variants."""
    entries = aggregate(rows)
    variant = _sweep_test(entries)
    return [e for e in entries if not variant(e)]


def _errorbar(ax, points: list[dict], x: str, **style) -> None:
    """FID of ``points`` against column ``x``, error bars = std over seeds (a bar only where n > 1)."""
    points = sorted(points, key=lambda e: e[x])
    ax.errorbar([e[x] for e in points], [e["fid"] for e in points], yerr=[e["fid_std"] for e in points],
                marker="o", capsize=5, elinewidth=2, **style)


def fid_figure(rows: list[dict]):
    """FID vs T per schedule (S = T, no paste), one panel per token rule, each with its own FID
    axis so that the seed error bars (std over seeds, where seeds were run: one-shot and the
    rule's best setting) can be seen. The baselines and paste-known are in ``summary_figure``.
    Returns a matplotlib Figure (a notebook shows it)."""
    entries = _grid_entries(rows)
    rules = list(dict.fromkeys(e["sample_temperature"] for e in entries if is_decoding(e))) or [0.0]
    fig = Figure(figsize=(5.2 * len(rules), 4.2))
    axes = fig.subplots(1, len(rules), squeeze=False)[0]
    for ax, t in zip(axes, rules):
        grid = [e for e in entries if is_decoding(e) and e["sample_temperature"] == t
                and e["sweet_spot"] == e["total_iter"] and not e["paste_known"]]
        one_shot = [e for e in grid if e["schedule"] == ONE_SHOT]
        for schedule in dict.fromkeys(e["schedule"] for e in grid if e["schedule"] != ONE_SHOT):
            _errorbar(ax, one_shot + [e for e in grid if e["schedule"] == schedule], "total_iter", label=schedule)
        ax.set_title(f"{token_rule(t)} tokens (sample temperature {t:g})", fontsize=10)
        ax.set_xticks(sorted({e["total_iter"] for e in grid}) or [1])
        ax.set_xlabel("total iterations T (sweet spot S = T)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("FID (lower is better)")
    seeds = "; error bars: std over seeds where seeds were run" if any(e["n"] > 1 for e in entries) else ""
    fig.suptitle(f"FID against T on {rows[0]['images'] if rows else 0} test images (own axis per panel{seeds})",
                 fontsize=10)
    fig.tight_layout()
    return fig


def sweep_figure(rows: list[dict]):
    """FID against the sweet spot S (at the largest T, on the rule's schedule of the S < T rows)
    and against the choice temperature tau (row 7, confidence order), one row of panels per token
    rule, each panel with its own axis; error bars = std over seeds; the rule's one-shot FID as a
    dotted line. None when the rows hold neither sweep."""
    entries = [e for e in aggregate(rows) if is_decoding(e) and not e["paste_known"] and not is_variant(e)
               and e["order"] == "confidence"]
    tau = next((e["choice_temperature"] for e in entries), None)
    rules = list(dict.fromkeys(e["sample_temperature"] for e in entries))
    spots = {t: [e for e in entries if e["sample_temperature"] == t and e["sweet_spot"] < e["total_iter"]
                 and e["choice_temperature"] == tau] for t in rules}
    taus = {t: [e for e in entries if e["sample_temperature"] == t and e["choice_temperature"] != tau] for t in rules}
    if not any(spots.values()) and not any(taus.values()):
        return None
    fig = Figure(figsize=(10.4, 3.4 * len(rules)))
    axes = fig.subplots(len(rules), 2, squeeze=False)
    for row, t in zip(axes, rules):
        one = next((e for e in entries if e["sample_temperature"] == t and e["total_iter"] == 1), None)
        for ax, found, x, label in ((row[0], spots[t], "sweet_spot", "sweet spot S (stop after S of T steps)"),
                                    (row[1], taus[t], "choice_temperature", "choice temperature tau")):
            if found:
                same = dict(schedule=found[0]["schedule"], total_iter=found[0]["total_iter"])
                mates = [e for e in entries if e["sample_temperature"] == t and all(e[k] == v for k, v in same.items())
                         and (x == "sweet_spot" and e["choice_temperature"] == tau
                              or x == "choice_temperature" and e["sweet_spot"] == found[0]["sweet_spot"])]
                _errorbar(ax, mates, x, color="tab:blue",
                          label=f"{same['schedule']} T={same['total_iter']}" + (f", S={found[0]['sweet_spot']}"
                                                                               if x != "sweet_spot" else ""))
            if one is not None:
                ax.axhline(one["fid"], color="gray", linestyle=":", label=f"one-shot ({_cell(one, 'fid', 1)})")
            noise = max((e["fid_std"] for e in entries if e["sample_temperature"] == t and e["total_iter"] > 1), default=0)
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
    fig.suptitle(f"{rows[0]['images']} test images; error bars: std over seeds where seeds were run", fontsize=10)
    fig.tight_layout()
    return fig


def summary_figure(rows: list[dict]):
    """What to submit: FID (left) and PSNR of the holes (right) of the baselines, one-shot, each
    rule's best iterative setting and the same with the known pixels pasted back, as bars with
    their seed std. None without a paste-known row."""
    entries = _grid_entries(rows)
    decoding = [e for e in entries if is_decoding(e)]
    picks = [e for e in entries if not is_decoding(e)]
    for t in dict.fromkeys(e["sample_temperature"] for e in decoding):
        mine = [e for e in decoding if e["sample_temperature"] == t]
        picks += [e for e in mine if e["total_iter"] == 1 and not e["paste_known"]]
        picks += [e for e in mine if e["total_iter"] > 1 and e["n"] > 1 and not e["paste_known"]]
        picks += [e for e in mine if e["paste_known"]]
    if not any(e.get("paste_known") is True for e in picks):
        return None
    picks.sort(key=lambda e: e["fid"])

    def name(e: dict) -> str:
        if not is_decoding(e):
            return e["kind"].split(":")[0] + (": VQGAN reconstruction" if e["kind"] == ORACLE else ": mean colour")
        text = f"{e['tokens']}, " + ("one-shot" if e["total_iter"] == 1 else
                                     f"{e['schedule']} T={e['total_iter']} S={e['sweet_spot']}")
        return text + (" + paste known" if e["paste_known"] else "")
    fig = Figure(figsize=(10.4, 0.42 * len(picks) + 1.4))
    axes = fig.subplots(1, 2, sharey=True)
    colors = ["tab:gray" if not is_decoding(e) else "tab:green" if e["paste_known"] else "tab:blue" for e in picks]
    for ax, measure, label in ((axes[0], "fid", "FID (lower is better)"),
                               (axes[1], "psnr_masked", "PSNR of the holes, dB (higher is better)")):
        values = [e[measure] for e in picks]
        ax.barh(range(len(picks)), values, xerr=[e[f"{measure}_std"] for e in picks], color=colors, capsize=3)
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:.2f}", va="center", fontsize=8)
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlim(0, max(values) * 1.15)
    axes[0].set_yticks(range(len(picks)), [name(e) for e in picks], fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle(f"What to submit: {rows[0]['images']} test images (green: known pixels pasted back; "
                 "grey: baselines; error bars: std over seeds where run)", fontsize=10)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- row 8: the variants

def variant_name(entry: dict) -> str:
    """What a decoding row changed: a mistake's id, an idea of ``IDEAS``, or ``CORRECT_STEP``."""
    if entry.get("step", CORRECT_STEP) not in (CORRECT_STEP, ""):
        return entry["step"]
    if entry.get("order") == "halton":
        return "order=halton"
    return "sample_temperature_anneal" if entry.get("anneal") in (True, "True") else CORRECT_STEP


def variant_costs(entries: list[dict]) -> list[dict]:
    """Every variant entry (``aggregate``'s) beside its reference, the entry of the same token rule
    and setting decoded correctly (labcore's step, confidence order, no annealing), reference
    first: each with ``variant``, ``d_fid`` and ``d_psnr`` (variant - reference, means over seeds)
    and ``ref_fid_std`` (the reference's seed std).
    Empty when the rows hold no variant."""
    def base(e: dict) -> tuple:
        return (e["sample_temperature"], e["schedule"], e["total_iter"], e["sweet_spot"],
                e["choice_temperature"], e["paste_known"])
    decoding = [e for e in entries if is_decoding(e)]
    refs = {base(e): e for e in decoding if variant_name(e) == CORRECT_STEP}
    out = []
    for key, ref in refs.items():
        variants = [e for e in decoding if base(e) == key and variant_name(e) != CORRECT_STEP]
        order = {name: i for i, name in enumerate(VARIANTS)}
        for e in [ref] + sorted(variants, key=lambda e: order.get(variant_name(e), len(order))) if variants else []:
            out.append({**e, "variant": variant_name(e), "d_fid": e["fid"] - ref["fid"],
                        "d_psnr": e["psnr_masked"] - ref["psnr_masked"], "ref_fid_std": ref["fid_std"]})
    return out


def variants_markdown(entries: list[dict]) -> str:
    """Row 8's table: each variant's FID and PSNR of the holes, and what it costs against the
    correct step of the same token rule and setting."""
    costs = variant_costs(entries)
    lines = ["Variants (row 8): each changes one thing of the correct step; cost = variant - correct "
             "(FID: + is worse; PSNR: - is worse); in seed std: the FID cost over the larger of the two "
             "seed standard deviations (where seeds were run; beyond about 3 it is not seed noise).", "",
             "| variant | tokens | setting | FID | cost in FID | in seed std | PSNR holes (dB) | cost in PSNR | token acc | seeds |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for e in costs:
        setting = f"{e['schedule']} T={e['total_iter']} S={e['sweet_spot']} tau {e['choice_temperature']:g}"
        ref = e["variant"] == CORRECT_STEP
        name = f"correct: {CORRECT_STEP}" if ref else e["variant"]
        d_fid, d_psnr = ("", "") if ref else (f"{e['d_fid']:+.2f}", f"{e['d_psnr']:+.2f}")
        noise = max(e["fid_std"], e["ref_fid_std"])
        in_std = f"{e['d_fid'] / noise:+.1f}" if not ref and noise > 0 else ""
        lines.append(f"| {name} | {e['tokens']} | {setting} | {_cell(e, 'fid', 2)} | {d_fid} | {in_std} | "
                     f"{_cell(e, 'psnr_masked', 2)} | {d_psnr} | {_cell(e, 'token_acc', 3)} | {e['n']} |")
    return "\n".join(lines)


def variants_figure(rows: list[dict]):
    """What each variant costs in FID against the correct step of its token rule (bars: variant -
    correct, error bars: the variant's std over seeds, grey band: the correct step's), one panel
    per token rule on one symlog axis, so a cost of 0.2 and one of 300 both read. Each bar carries
    its number. Returns a matplotlib Figure."""
    costs = variant_costs(aggregate(rows))
    rules = list(dict.fromkeys(e["sample_temperature"] for e in costs))
    fig = Figure(figsize=(5.2 * len(rules), 0.45 * max(len(costs) // max(len(rules), 1), 4) + 1.6))
    axes = fig.subplots(1, len(rules), sharex=True, squeeze=False)[0]
    for ax, t in zip(axes, rules):
        mine = [e for e in costs if e["sample_temperature"] == t]
        ref, variants = mine[0], mine[1:]
        ax.axvspan(-ref["fid_std"], ref["fid_std"], color="0.6", alpha=0.3, label=f"correct step's seed std (±{ref['fid_std']:.2f})")
        ax.axvline(0, color="0.3", linewidth=0.8)
        colors = ["tab:red" if e["variant"].startswith("decode.") else "tab:blue" for e in variants]
        bars = ax.barh(range(len(variants)), [e["d_fid"] for e in variants], xerr=[e["fid_std"] for e in variants],
                       color=colors, alpha=0.8, capsize=3)
        ax.bar_label(bars, labels=[f"{e['d_fid']:+.2f}" for e in variants], fontsize=7, padding=3)
        ax.set_yticks(range(len(variants)), [f"{e['variant']} (n={e['n']})" for e in variants], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{token_rule(t)} tokens, {ref['schedule']} T={ref['total_iter']}\n"
                     f"correct step: FID {_cell(ref, 'fid', 2)}", fontsize=9)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel("FID cost: variant - correct (+ is worse; symlog)\nred: mistakes, blue: ideas", fontsize=8)
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(axis="x", alpha=0.3)
    worst = max([10.0] + [e["d_fid"] + e["fid_std"] for e in costs])
    best = min([-1.0] + [e["d_fid"] - e["fid_std"] for e in costs])
    axes[0].set_xlim(10 * best, 10 * worst)                           # room for the labels of the longest bars
    fig.suptitle(f"What each decoding variant costs on {rows[0]['images']} test images (error bars: std over seeds)")
    fig.tight_layout()
    return fig


def run_variants(exp: Experiment, out_dir: Path, base: DecodingSettings, sample_temperatures, seeds: int,
                 variants=VARIANTS) -> Runner:
    """Row 8: ``base`` (a schedule, T, tau) decoded correctly and with each of ``variants`` (ids of
    ``VARIANTS`` or ``MISTAKE_IDS``) alone, for every token rule: the first seed of every row,
    then the other seeds rule by rule (in ``sample_temperatures``' order), so a run cut short has
    every variant once. More seeds only where the seed changes the result (``is_random``). The annealed sample temperature is
    not run with argmax tokens: 0 annealed is 0, the correct step itself."""
    plan = []
    for t, sd in [(t, base.seed) for t in sample_temperatures] + \
            [(t, sd) for t in sample_temperatures for sd in range(base.seed + 1, base.seed + seeds)]:
        for name in (CORRECT_STEP, *variants):
            if name == "sample_temperature_anneal" and t == 0:
                continue
            setting = decoding_setting(base, sample_temperature=t, seed=sd, **variant_changes(name))
            if sd == base.seed or is_random(row_settings(setting), setting["step"]):
                plan.append(setting)
    runner = Runner(exp, out_dir, base.choice_temperature, len(plan))
    for setting in plan:
        runner.row(setting)
    runner.bar.close()
    write_results(runner.rows, out_dir)
    return runner
