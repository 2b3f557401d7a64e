"""``labcore experiment``: which mask schedule and how many iterations inpaint best, by FID.

One command, fixed seeds, writes ``results/experiments.csv``, ``results/experiments.png`` (FID vs
T per schedule) and ``results/experiments.md`` (the table):

- every schedule x T in {1, 2, 4, 8, 12}, sweet spot S = T;
- a sweet-spot sweep (S < T) for the best schedule at the largest T;
- ``paste_known`` off/on for the best setting;
- baselines in the same table: the VQGAN reconstruction of the ground truth (the tokenizer's
  oracle: no inpainting can beat what the tokenizer can represent), the masked input with its holes
  filled by the image's mean known colour, and one-shot decoding (T = 1).

The test set is encoded to tokens once; each row decodes, turns the result into images and scores
them against cached reference statistics of the ground truth. Wall time is recorded per row.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import fid
from .data import InpaintingTestSet, collate_test
from .maskgit import SCHEDULES, MaskGit
from .paths import EMOJI64_DIR, RESULTS_DIR
from .runtime import fast_mode, pick_device

ITERATIONS = (1, 2, 4, 8, 12)
ONE_SHOT = "any"  # the schedule column of the T = 1 row: gamma(1) = 0 for every schedule
FIELDS = ["kind", "schedule", "total_iter", "sweet_spot", "paste_known", "fid", "images", "seconds"]


def load_test_tensors(test_set: InpaintingTestSet, limit: int | None = None) -> dict:
    """The first ``limit`` test items as stacked tensors (images, masks, targets in [0, 1])."""
    count = len(test_set) if limit is None else min(limit, len(test_set))
    batch = collate_test([test_set[i] for i in tqdm(range(count), desc="load test set", leave=False)])
    if batch["target"] is None:
        raise ValueError(f"the test set has no ground truth (no ground_truth/ folder or test_gt.csv): "
                         f"FID needs one")
    return batch


class Experiment:
    """Scores inpainting settings on one test set with one MaskGit; rows accumulate in ``rows``."""

    def __init__(self, maskgit: MaskGit, test_set: InpaintingTestSet, limit: int | None = None,
                 seed: int = 0, batch_size: int = 64, device: str = "auto", fid_batch_size: int = 50):
        self.device = pick_device(device)
        self.maskgit = maskgit.to(self.device).eval()
        self.norm = test_set.normalization
        self.seed, self.batch_size, self.fid_batch_size = seed, batch_size, fid_batch_size
        data = load_test_tensors(test_set, limit)
        self.images, self.masks = data["image"], data["mask"]                   # (N,3,64,64), (N,1,64,64)
        self.targets01 = self.norm.denormalize(data["target"])                  # (N,3,64,64) in [0,1]
        if limit is None or limit >= len(test_set):  # the whole ground truth: cached by content hash
            self.reference = fid.load_or_compute_stats(test_set.gt_source, batch_size=fid_batch_size,
                                                       device=self.device)
        else:
            self.reference = fid.compute_stats(self.targets01, fid_batch_size, self.device)
        self.tokens, self.latent_masks = [], []
        with torch.no_grad():
            for start in range(0, len(self.images), batch_size):
                imgs = self.images[start:start + batch_size].to(self.device)
                msks = self.masks[start:start + batch_size].to(self.device)
                self.tokens.append(self.maskgit.encode_to_z(imgs))              # (b, 256), encoded once
                self.latent_masks.append(self._latent(msks))                    # (b, 16, 16)
        self.rows: list[dict] = []

    def _latent(self, masks: torch.Tensor) -> torch.Tensor:
        from .maskgit import latent_mask
        return latent_mask(masks, patch=self.maskgit.patch)

    def score(self, kind: str, images01: torch.Tensor, start: float, **setting) -> dict:
        stats = fid.compute_stats(images01, self.fid_batch_size, self.device)
        row = {"kind": kind, "schedule": "", "total_iter": "", "sweet_spot": "", "paste_known": "",
               **setting, "fid": round(fid.frechet_distance(stats, self.reference), 3),
               "images": len(images01), "seconds": round(time.perf_counter() - start, 1)}
        self.rows.append(row)
        return row

    @torch.no_grad()
    def inpaint(self, schedule: str, total_iter: int, sweet_spot: int | None = None,
                paste_known: bool = False, choice_temperature: float = 4.5) -> dict:
        start = time.perf_counter()
        generator = torch.Generator().manual_seed(self.seed)
        outputs = []
        for b, (tokens, masked) in enumerate(zip(self.tokens, self.latent_masks)):
            final, _ = self.maskgit.decode_tokens(tokens, masked, total_iter, sweet_spot, schedule,
                                                  choice_temperature, generator=generator)
            images = self.maskgit.decode_z(final).cpu()                         # (b,3,64,64) normalised
            if paste_known:
                lo = b * self.batch_size
                known = self.masks[lo:lo + len(images)]
                images = known * self.images[lo:lo + len(images)] + (1 - known) * images
            outputs.append(self.norm.denormalize(images))
        kind = "one-shot (T=1)" if total_iter == 1 else "maskgit"
        if total_iter == 1:
            schedule = ONE_SHOT  # one step fills every token whatever the schedule
        return self.score(kind, torch.cat(outputs), start, schedule=schedule, total_iter=total_iter,
                          sweet_spot=sweet_spot or total_iter, paste_known=paste_known)

    @torch.no_grad()
    def oracle(self) -> dict:
        """VQGAN reconstruction of the ground truth: the best any token prediction can do."""
        start = time.perf_counter()
        outputs = []
        for lo in range(0, len(self.targets01), self.batch_size):
            truth = self.norm.normalize(self.targets01[lo:lo + self.batch_size]).to(self.device)
            outputs.append(self.norm.denormalize(self.maskgit.decode_z(self.maskgit.encode_to_z(truth)).cpu()))
        return self.score("oracle: VQGAN reconstruction of the ground truth", torch.cat(outputs), start)

    def mean_fill(self) -> dict:
        """The masked input with every hole filled by the mean colour of the image's known pixels."""
        start = time.perf_counter()
        images01 = self.norm.denormalize(self.images)                           # (N,3,64,64)
        known = self.masks                                                      # (N,1,64,64)
        mean = (images01 * known).sum(dim=(2, 3), keepdim=True) / known.sum(dim=(2, 3), keepdim=True).clamp(min=1)
        return self.score("baseline: holes filled with the mean colour", known * images01 + (1 - known) * mean, start)


def schedule_experiment(maskgit: MaskGit, test_set: InpaintingTestSet, out_dir: str | Path = RESULTS_DIR,
                        schedules=SCHEDULES, iterations=ITERATIONS, limit: int | None = None, seed: int = 0,
                        batch_size: int = 64, device: str = "auto") -> list[dict]:
    """Run the whole table and write experiments.csv / .md / .png into ``out_dir``."""
    exp = Experiment(maskgit, test_set, limit, seed, batch_size, device)
    # T = 1 is the same for every schedule, so it is one row; the grid is the rest
    grid = [(schedules[0], 1)] * (1 in iterations) + [(s, t) for s in schedules for t in iterations if t > 1]
    t_max = max(iterations)
    sweet_spots = sorted({max(1, t_max // 4), max(1, t_max // 2), max(1, 3 * t_max // 4)} - {t_max})
    bar = tqdm(total=2 + len(grid) + len(sweet_spots) + 1, desc="experiment rows")

    def done(row: dict) -> None:
        bar.set_postfix_str(f"{row['schedule'] or row['kind'][:12]} T={row['total_iter']} FID {row['fid']:.1f}")
        bar.update()
        write_results(exp.rows, Path(out_dir))  # after every row: an interrupted run keeps what it has

    done(exp.oracle())
    done(exp.mean_fill())
    for schedule, total_iter in grid:
        done(exp.inpaint(schedule, total_iter))
    best = best_row(exp.rows)
    best_schedule = best["schedule"] if best["schedule"] != ONE_SHOT else schedules[0]
    for sweet_spot in sweet_spots:  # stop early at S < T on the best schedule
        done(exp.inpaint(best_schedule, t_max, sweet_spot=sweet_spot))
    best = best_row(exp.rows)
    done(exp.inpaint(best_schedule, best["total_iter"], best["sweet_spot"], paste_known=True))
    bar.close()
    return exp.rows


def best_row(rows: list[dict]) -> dict:
    """The decoding row (not a baseline) with the lowest FID."""
    return min((r for r in rows if r["kind"] in ("maskgit", "one-shot (T=1)")), key=lambda r: float(r["fid"]))


def best_setting(rows: list[dict]) -> dict:
    best = best_row(rows)
    return {k: best[k] for k in ("schedule", "total_iter", "sweet_spot", "paste_known", "fid")}


def read_results(path: str | Path) -> list[dict]:
    """Rows of an ``experiments.csv``, with numbers and booleans as written."""
    def parse(key: str, value: str):
        if value == "" or key in ("kind", "schedule"):
            return value
        if key == "paste_known":
            return value == "True"
        return float(value) if key in ("fid", "seconds") else int(value)

    with open(path, newline="") as f:
        return [{k: parse(k, v) for k, v in row.items()} for row in csv.DictReader(f)]


def write_results(rows: list[dict], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "experiments.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| setting | schedule | T | S | paste known | FID | images | seconds |",
             "|---|---|---:|---:|---|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: r["fid"]):
        lines.append(f"| {r['kind']} | {r['schedule']} | {r['total_iter']} | {r['sweet_spot']} | "
                     f"{r['paste_known']} | {r['fid']:.2f} | {r['images']} | {r['seconds']} |")
    if any(r["kind"] in ("maskgit", "one-shot (T=1)") for r in rows):
        lines += ["", f"Best setting: {json.dumps(best_setting(rows))}. FID from {rows[0]['images']} images "
                  "(biased upwards below 2048: compare only within this table)."]
    (out_dir / "experiments.md").write_text("\n".join(lines) + "\n")
    plot_fid_vs_iterations(rows, out_dir / "experiments.png")


def plot_fid_vs_iterations(rows: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: leaves a notebook's inline backend alone

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    grid = [r for r in rows if r["kind"] in ("maskgit", "one-shot (T=1)") and r["sweet_spot"] == r["total_iter"]
            and not r["paste_known"]]
    one_shot = [(r["total_iter"], r["fid"]) for r in grid if r["schedule"] == ONE_SHOT]
    for schedule in dict.fromkeys(r["schedule"] for r in grid if r["schedule"] != ONE_SHOT):
        pts = sorted(one_shot + [(r["total_iter"], r["fid"]) for r in grid if r["schedule"] == schedule])
        ax.plot(*zip(*pts), marker="o", label=schedule)
    for r in rows:
        if r["kind"] in ("maskgit", "one-shot (T=1)") and r["paste_known"]:
            ax.plot(r["total_iter"], r["fid"], marker="*", markersize=12, color="black", linestyle="none",
                    label=f"{r['schedule']} T={r['total_iter']} + paste known ({r['fid']:.1f})")
    styles = iter(["--", ":", "-."])
    for r in rows:
        if r["kind"].startswith(("oracle", "baseline")):
            ax.axhline(r["fid"], color="gray", linestyle=next(styles), label=r["kind"].split(":")[0] + f" ({r['fid']:.1f})")
    ax.set_xlabel("total iterations T (sweet spot S = T)")
    ax.set_ylabel("FID (lower is better)")
    ax.set_title(f"Inpainting FID on {rows[0]['images']} test images")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", default=str(EMOJI64_DIR), help="test set (emoji64 or lab5_dataset)")
    parser.add_argument("-o", "--output-dir", default=str(RESULTS_DIR))
    parser.add_argument("--schedules", nargs="+", default=list(SCHEDULES), help=f"choices: {' '.join(SCHEDULES)}")
    parser.add_argument("--iterations", nargs="+", type=int, default=list(ITERATIONS), help="values of T")
    parser.add_argument("--limit", type=int, help="use the first N test images (fast mode: 16)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    for name in ("vqgan-config", "vqgan-weights", "transformer-config", "transformer-weights"):
        parser.add_argument(f"--{name}", help="default: the bundled model")


def run(args: argparse.Namespace) -> int:
    from .maskgit import gamma
    for s in args.schedules:
        gamma(s)  # unknown names fail here, listing the choices
    if any(t < 1 for t in args.iterations):
        raise ValueError(f"--iterations must all be >= 1, got {args.iterations}")
    limit = args.limit
    schedules, iterations = args.schedules, args.iterations
    if fast_mode():
        limit = min(limit or 16, 16)
        schedules, iterations = schedules[:3], [t for t in iterations if t <= 2] or iterations[:1]
    maskgit = MaskGit.from_files(args.vqgan_config, args.vqgan_weights, args.transformer_config,
                                 args.transformer_weights)
    rows = schedule_experiment(maskgit, InpaintingTestSet(args.data_root), args.output_dir, schedules, iterations,
                               limit, args.seed, args.batch_size, args.device)
    out = Path(args.output_dir)
    print((out / "experiments.md").read_text())
    print(f"wrote {out / 'experiments.csv'}, {out / 'experiments.md'}, {out / 'experiments.png'}")
    return 0
