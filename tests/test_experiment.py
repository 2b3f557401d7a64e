"""`labcore experiment` on an 8-image subset in fast mode, and `labcore demo` on 8 images, with the
bundled models and the real FID path (Inception pool3 + pytorch-fid's Fréchet distance)."""

import csv
import json
import logging
import math
import re
import shutil
import statistics
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from labcore import fid_files
from labcore.__main__ import main
from labcore.data import InpaintingTestSet, normalization_for
from labcore.decoding import DecodingSettings
from labcore.decoding_variants import with_mistakes
from labcore.demo import DEMO_SETTING
from labcore.experiment import (FIELDS, MEAN_FILL, ONE_SHOT, ORACLE, aggregate, fid_figure, load_test_tensors,
                                read_results, results_markdown, summary_figure, sweep_figure, variant_costs,
                                variants_figure, write_results)
from labcore.maskgit import MaskGit, latent_mask
from labcore.model_files import load_bundled_maskgit
from labcore.paths import EMOJI64_DIR, REPO_ROOT
from labcore.schedules import SCHEDULES

ARGS = ["experiment", "--limit", "8", "--schedules", "linear", "cosine", "--iterations", "1", "2",
        "--device", "cpu", "--no-progress"]


class Notes(logging.Handler):
    """Every ``runtime.note`` (the "labcore" logger) while attached."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def experiment_rows(tmp_path_factory):
    out = tmp_path_factory.mktemp("experiment")
    notes, log = Notes(), logging.getLogger("labcore")
    log.addHandler(notes)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("LABCORE_FAST", "1")  # default --seeds 3 becomes 2
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")  # every warning counts, even a repeat from one line
                rc = main([*ARGS, "-o", str(out)])
    finally:
        log.removeHandler(notes)
    assert rc == 0
    with open(out / "experiments.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return out, rows, notes.messages + [str(w.message) for w in caught]


def decoding(rows, **match):
    return [r for r in rows if r["kind"] not in (ORACLE, MEAN_FILL) and all(r[k] == v for k, v in match.items())]


def test_experiment_rows_in_order_both_token_rules(experiment_rows):
    _, rows, _ = experiment_rows
    assert [r["kind"] for r in rows[:2]] == [ORACLE, MEAN_FILL]
    rules = {"argmax": "0.0", "sampled": "1.0"}
    for tokens, temperature in rules.items():
        rule = decoding(rows, tokens=tokens, paste_known="False")
        assert {r["sample_temperature"] for r in rule} == {temperature}
        one_shot = [r for r in rule if r["total_iter"] == "1"]
        assert [r["seed"] for r in one_shot] == ["0", "1"] and {r["schedule"] for r in one_shot} == {ONE_SHOT}
        grid = {(r["schedule"], r["total_iter"]) for r in rule if r["total_iter"] == r["sweet_spot"] == "2"}
        assert grid == {("linear", "2"), ("cosine", "2")}
        sweet = [r for r in rule if r["sweet_spot"] != r["total_iter"]]
        assert [(r["total_iter"], r["sweet_spot"], r["seed"]) for r in sweet] == [("2", "1", "0")]
        # the second seed repeats one-shot and the best iterative setting picked on seed 0
        iterative0 = [r for r in rule if r["total_iter"] == "2" and r["seed"] == "0"]
        best = min(iterative0, key=lambda r: float(r["fid"]))
        repeated = [r for r in rule if r["total_iter"] == "2" and r["seed"] == "1"]
        assert [(r["schedule"], r["sweet_spot"]) for r in repeated] == [(best["schedule"], best["sweet_spot"])]
        pasted = decoding(rows, tokens=tokens, paste_known="True")   # one-shot and the best, every seed
        assert sorted((r["total_iter"], r["seed"]) for r in pasted) == [("1", "0"), ("1", "1"), ("2", "0"), ("2", "1")]
        assert {(r["schedule"], r["sweet_spot"]) for r in pasted if r["total_iter"] == "2"} == \
            {(best["schedule"], best["sweet_spot"])}
    # baselines, one-shot x 2 rules, grid, sweet spot, seeds, paste known: in that order
    phases = [r["kind"][:6] if r["kind"] in (ORACLE, MEAN_FILL) else
              ("paste" if r["paste_known"] == "True" else "seed" if r["seed"] == "1" else
               "sweet" if r["sweet_spot"] != r["total_iter"] else "T" + r["total_iter"]) for r in rows]
    assert phases == ["oracle", "baseli", "T1", "T1", "T2", "T2", "T2", "T2", "sweet", "sweet",
                      "seed", "seed", "seed", "seed"] + ["paste"] * 8


def test_experiment_columns_and_measures(experiment_rows):
    out, rows, _ = experiment_rows
    with open(out / "experiments.csv", newline="") as f:
        assert next(csv.reader(f)) == FIELDS
    for r in rows:
        assert int(r["images"]) == 8 and float(r["seconds"]) > 0
        assert math.isfinite(float(r["fid"])) and float(r["fid"]) >= 0
        assert math.isfinite(float(r["psnr_masked"])) and float(r["psnr_masked"]) > 0
    oracle, mean_fill = rows[0], rows[1]
    assert float(oracle["token_acc"]) == 1.0 and mean_fill["token_acc"] == ""  # the truth's tokens; no tokens
    for r in decoding(rows):
        # far above chance (1/512): the filled tokens are compared with the truth's at the same positions
        assert 0.05 < float(r["token_acc"]) <= 1
    for one_shot in decoding(rows, total_iter="1"):
        # the true tokens decoded beat predicted tokens decoded, in FID and in the holes' PSNR
        assert float(oracle["fid"]) < float(one_shot["fid"])
        assert float(oracle["psnr_masked"]) > float(one_shot["psnr_masked"])


def test_paste_known_changes_only_the_known_pixels(experiment_rows):
    _, rows, _ = experiment_rows
    for pasted in decoding(rows, paste_known="True"):
        twin = decoding(rows, paste_known="False", tokens=pasted["tokens"], total_iter=pasted["total_iter"],
                        sweet_spot=pasted["sweet_spot"], schedule=pasted["schedule"], seed=pasted["seed"])
        assert len(twin) == 1
        # same seed, same tokens; the holes (all psnr_masked sees) are the decoder's in both
        assert pasted["token_acc"] == twin[0]["token_acc"]
        assert float(pasted["psnr_masked"]) == pytest.approx(float(twin[0]["psnr_masked"]), abs=1e-3)
        assert float(pasted["fid"]) != float(twin[0]["fid"])


def test_experiment_table_shows_mean_and_std_over_seeds(experiment_rows):
    out, rows, _ = experiment_rows
    md = (out / "experiments.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("| ")][1:]
    settings = {tuple(r[k] for k in FIELDS[:8]) for r in rows}
    assert len(table) == len(settings) == len(rows) - 8           # 8 rows are second seeds of a setting
    for tokens in ("argmax", "sampled"):
        seeds = [float(r["fid"]) for r in decoding(rows, tokens=tokens, total_iter="1", paste_known="False")]
        cell = f"{statistics.fmean(seeds):.2f} ± {statistics.stdev(seeds):.2f}"
        line = next(line for line in table if f"| {tokens} | {ONE_SHOT} | 1 | 1 | False |" in line)
        assert cell in line and line.split("|")[-3].strip() == "2"  # the seeds column
    assert "Aims:" in md and md.count(" tokens: best iterative") == 2
    with Image.open(out / "experiments.png") as image:
        assert image.size[0] > 2 * image.size[1] * 0.9            # two panels side by side
        assert image.size[1] > 300



def test_table_footnote_explains_only_what_the_table_holds(experiment_rows):
    """The ± / seed-picking sentence belongs under a table with seed repeats, not under one seed per row."""
    out, _, _ = experiment_rows
    rows = read_results(out / "experiments.csv")
    with_seeds = results_markdown(rows, with_aims=False)
    first_seed = results_markdown([r for r in rows if r.seed in (None, 0)], with_aims=False)
    for md in (with_seeds, first_seed):
        assert f"FID from {rows[0].images} images" in md and "s/row: the wall seconds" in md
    assert "standard deviation over seeds" in with_seeds and "(mean over seeds)" in with_seeds
    assert " ± " not in first_seed and "seed" not in first_seed.split("\n\n")[1]

def test_small_sample_note_given_once(experiment_rows):
    _, rows, messages = experiment_rows
    assert len(rows) == 22
    assert len([m for m in messages if "biased" in m]) == 1       # not once per row


def test_resume_computes_nothing_when_done(experiment_rows, tmp_path, monkeypatch, capsys):
    out, _, _ = experiment_rows
    shutil.copytree(out, tmp_path, dirs_exist_ok=True)
    before = (tmp_path / "experiments.csv").read_bytes()

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished experiment was computed again")

    monkeypatch.setenv("LABCORE_FAST", "1")
    monkeypatch.setattr(fid_files, "compute_stats", must_not_run)
    monkeypatch.setattr(fid_files, "load_or_compute_stats", must_not_run)
    monkeypatch.setattr(MaskGit, "decode_tokens", must_not_run)
    assert main([*ARGS, "-o", str(tmp_path)]) == 0
    assert "labcore experiment: note: FID from 8 images is biased upwards" in capsys.readouterr().err
    assert (tmp_path / "experiments.csv").read_bytes() == before


def test_resume_finishes_a_killed_run(experiment_rows, tmp_path, monkeypatch, capsys):
    out, rows, _ = experiment_rows
    shutil.copytree(out, tmp_path, dirs_exist_ok=True)
    lines = (out / "experiments.csv").read_text().splitlines(keepends=True)
    (tmp_path / "experiments.csv").write_text("".join(lines[:1 + 19]))  # killed after 19 of 22 rows
    scored = []  # Inception runs on inpainted images (the reference comes from a file or a path)
    compute_stats = fid_files.compute_stats
    monkeypatch.setattr(fid_files, "compute_stats", lambda source, *a, **k:
                        scored.append(torch.is_tensor(source)) or compute_stats(source, *a, **k))
    monkeypatch.setenv("LABCORE_FAST", "1")
    assert main([*ARGS, "-o", str(tmp_path)]) == 0
    assert "labcore experiment: note: FID from 8 images is biased upwards" in capsys.readouterr().err
    assert scored.count(True) == 3                                 # the 3 missing rows, nothing else
    again = (tmp_path / "experiments.csv").read_text().splitlines(keepends=True)
    assert again[:20] == lines[:20]
    settings = [k for k in FIELDS if k not in ("fid", "psnr_masked", "token_acc", "seconds")]
    finished = list(csv.DictReader(again))
    assert [[r[k] for k in settings] for r in finished] == [[r[k] for k in settings] for r in rows]
    for new, old in zip(finished[19:], rows[19:]):                 # fixed seeds: the same numbers
        assert float(new["fid"]) == pytest.approx(float(old["fid"]), abs=0.05)
        assert new["token_acc"] == old["token_acc"]


def test_results_read_back_as_written(experiment_rows, tmp_path):
    out, _, _ = experiment_rows
    rows = read_results(out / "experiments.csv")
    assert isinstance(rows[2].fid, float) and isinstance(rows[2].total_iter, int)
    assert {type(r.paste_known) for r in rows[2:]} == {bool}
    write_results(rows, tmp_path)
    for name in ("experiments.csv", "experiments.md"):
        assert (tmp_path / name).read_text() == (out / name).read_text()


@pytest.mark.parametrize("argv, message", [
    (["--schedules", "cosine", "zigzag"], "choose one of: " + ", ".join(SCHEDULES)),
    (["--iterations", "0", "4"], "--iterations must all be >= 1"),
    (["--sample-temperatures", "0", "-1"], "--sample-temperatures must all be >= 0"),
    (["--seeds", "0"], "--seeds must all be >= 1"),
    (["--choice-temperatures", "0", "-1"], "--choice-temperatures must all be >= 0"),
    (["--orders", "confidence", "raster"], "order must be one of confidence, halton, got 'raster'"),
    (["--variants", "decode.shared_gumbel", "decode.typo"], "unknown variant 'decode.typo'; choose from order=halton"),
    (["--variants", "--schedules", "cosine", "linear"], "--variants decodes one setting: give one --schedules"),
])
def test_experiment_rejects_bad_settings_before_any_work(argv, message, tmp_path, capsys):
    assert main(["experiment", *argv, "-o", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("change, message", [
    (lambda text: re.sub(r",8,([0-9.]+)$", r",100,\1", text, flags=re.M),       # the images column
     "holds rows scored on 100 images, this run scores 8"),
    (lambda text: text.replace(",4.5,", ",2.0,"), "holds rows with choice temperature 2"),
    (lambda text: text.replace(",token_acc", ""), "columns"),
])
def test_experiment_refuses_to_resume_other_settings(experiment_rows, change, message, tmp_path, capsys,
                                                     monkeypatch):
    out, _, _ = experiment_rows
    (tmp_path / "experiments.csv").write_text(change((out / "experiments.csv").read_text()))
    before = (tmp_path / "experiments.csv").read_text()
    monkeypatch.setenv("LABCORE_FAST", "1")
    assert main([*ARGS, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("labcore experiment: error: ") and message in err and "use another --output-dir" in err
    assert (tmp_path / "experiments.csv").read_text() == before


@pytest.mark.parametrize("missing", [["order", "anneal", "step"], ["anneal", "step"]])
def test_old_results_read_as_what_they_were(experiment_rows, missing, tmp_path, monkeypatch):
    """A CSV from before the order column, or from before the anneal and step columns (docs/results'
    of session 7), reads as confidence order, no annealing, labcore's step, and is resumed as is."""
    out, rows, _ = experiment_rows
    shutil.copytree(out, tmp_path, dirs_exist_ok=True)
    old = [k for k in FIELDS if k not in missing]
    with open(tmp_path / "experiments.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, old, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    read = read_results(tmp_path / "experiments.csv")
    assert [r.order for r in read] == [None, None] + ["confidence"] * (len(rows) - 2)   # baselines: no order
    assert [r.step for r in read] == [None, None] + ["decode_step"] * (len(rows) - 2)
    assert [r.anneal for r in read] == [None, None] + [False] * (len(rows) - 2)

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished experiment was computed again")

    monkeypatch.setenv("LABCORE_FAST", "1")
    monkeypatch.setattr(MaskGit, "decode_tokens", must_not_run)
    assert main([*ARGS, "-o", str(tmp_path)]) == 0                 # resumed: every row is found
    assert (tmp_path / "experiments.csv").read_text() == (out / "experiments.csv").read_text()


def test_variants_each_change_one_thing_seed_by_seed(tmp_path, monkeypatch, capsys):
    """The variants: the correct step and each variant alone, per token rule, first seed of all before the
    second; a second seed only where the seed matters; the table gives each cost."""
    argv = ["experiment", "--variants", "decode.shared_gumbel", "decode.overwrites_known", "order=halton",
            "sample_temperature_anneal", "--limit", "4", "--iterations", "4", "--seeds", "2", "--device", "cpu",
            "--no-progress", "-o", str(tmp_path)]
    monkeypatch.setenv("LABCORE_FAST", "1")
    assert main(argv) == 0
    rows = read_results(tmp_path / "experiments.csv")
    plan = [(r.seed, r.tokens, r.variant) for r in rows]
    first = ["decode_step", "decode.shared_gumbel", "decode.overwrites_known", "order=halton"]
    sampled = first + ["sample_temperature_anneal"]
    assert plan == ([(0, "argmax", v) for v in first] + [(0, "sampled", v) for v in sampled]
                    + [(1, "argmax", v) for v in first[:3:2]]        # argmax: no randomness left in those two
                    + [(1, "sampled", v) for v in sampled])
    assert {(r.schedule, r.total_iter, r.choice_temperature) for r in rows} == {("cosine", 4, 4.5)}
    by = {(r.seed, r.tokens, r.variant): r for r in rows}
    assert by[(0, "argmax", "decode_step")].fid != by[(1, "argmax", "decode_step")].fid  # tau's noise
    assert by[(0, "sampled", "sample_temperature_anneal")].anneal is True
    for rule in ("argmax", "sampled"):                              # known tokens overwritten: the image is lost
        assert by[(0, rule, "decode.overwrites_known")].fid > by[(0, rule, "decode_step")].fid
    table = (tmp_path / "experiments.md").read_text()
    assert "| variant | tokens | setting | FID | cost in FID | in seed std |" in table
    mean = statistics.fmean(by[(sd, "sampled", "order=halton")].fid - by[(sd, "sampled", "decode_step")].fid
                            for sd in (0, 1))
    assert "| order=halton | sampled | cosine T=4 S=4 tau 4.5 |" in table and f"| {mean:+.2f} |" in table
    assert (tmp_path / "variants.png").stat().st_size > 10_000
    assert "step decode.overwrites_known, seed 1" in capsys.readouterr().out
    monkeypatch.setattr(MaskGit, "decode_tokens", lambda *a, **k: pytest.fail("computed again"))
    assert main(argv) == 0                                         # resumable like the plan


@pytest.mark.parametrize("sample_temperature", [0.0, 1.0])
def test_the_unmistaken_student_step_is_labcores_step_bit_for_bit(sample_temperature):
    """Each classic mistake is ONE line changed in ``student_step``: with no mistake it decodes
    exactly what ``decode_step`` decodes (the same random draws), so a cost is that line's alone."""
    maskgit = load_bundled_maskgit().eval()
    test_set = InpaintingTestSet(EMOJI64_DIR, normalization_for(maskgit.normalization, EMOJI64_DIR))
    batch = load_test_tensors(test_set, 8, progress=False)
    tokens = maskgit.encode_to_z(batch["image"])                             # (8, 256)
    masked = latent_mask(batch["mask"], patch=maskgit.patch)                 # (8, 16, 16)
    settings = DecodingSettings(sample_temperature=sample_temperature)
    labcores, _ = maskgit.decode_tokens(tokens, masked, settings)
    students, _ = maskgit.decode_tokens(tokens, masked, settings, step=with_mistakes())
    wrong, _ = maskgit.decode_tokens(tokens, masked, settings, step=with_mistakes("gumbel_on_probs"))
    assert torch.equal(labcores, students)
    assert not torch.equal(labcores, wrong)                                  # the comparison can tell
    if sample_temperature == 0:  # one scalar Gumbel sample orders nothing: tau = 0, whatever the seed
        no_noise, _ = maskgit.decode_tokens(tokens, masked, settings.replace(choice_temperature=0))
        for seed in (0, 1):
            shared, _ = maskgit.decode_tokens(tokens, masked, settings.replace(seed=seed),
                                              step=with_mistakes("shared_gumbel"))
            assert torch.equal(shared, no_noise)


def test_experiment_sweeps_choice_temperatures_and_orders(tmp_path, monkeypatch, capsys):
    argv = ["experiment", "--limit", "4", "--schedules", "cosine", "--iterations", "1", "2", "--sample-temperatures",
            "0", "--seeds", "1", "--device", "cpu", "--no-progress", "--choice-temperatures", "0", "4.5",
            "--orders", "confidence", "halton", "-o", str(tmp_path)]
    monkeypatch.setenv("LABCORE_FAST", "1")
    assert main(argv) == 0
    rows = read_results(tmp_path / "experiments.csv")
    plan, sweep = rows[:7], rows[7:]                     # baselines, T=1, T=2, S=1, paste T=1 and T=2; then the sweep
    assert {(r.choice_temperature, r.order) for r in plan[2:]} == {(4.5, "confidence")}
    best = min((r for r in plan if r.kind == "maskgit" and not r.paste_known), key=lambda r: r.fid)
    assert [(r.choice_temperature, r.order) for r in sweep] == [(0.0, "confidence"), (0.0, "halton"),
                                                              (4.5, "halton")]  # (4.5, confidence): done
    assert all((r.schedule, r.total_iter, r.sweet_spot) == (best.schedule, best.total_iter, best.sweet_spot)
               for r in sweep)
    assert sweep[1].fid == sweep[2].fid                             # the Halton order has no choice noise
    table = (tmp_path / "experiments.md").read_text()
    assert "| maskgit, halton, tau 0 |" in table and "| maskgit, confidence, tau 4.5 |" in table
    assert "halton order, tau 0" in capsys.readouterr().out
    monkeypatch.setattr(MaskGit, "decode_tokens", lambda *a, **k: pytest.fail("computed again"))
    assert main(argv) == 0                                         # resumable like the plan


def test_demo_on_eight_images(tmp_path, capsys):
    assert main(["demo", "--limit", "8", "--device", "cpu", "--out", str(tmp_path), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "labcore demo: note: FID from 8 images is biased upwards" in err
    assert all(line.startswith("labcore demo: note: ") for line in err.splitlines()), err  # no bar, no raw warning
    for folder in ("test_results", "mask_scheduling", "imga"):
        assert len(list((tmp_path / folder).glob("*.png"))) == 8
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["images"] == 8 and summary["setting"] == DEMO_SETTING
    assert math.isfinite(summary["fid"]) and summary["fid"] >= 0
    assert summary["weights"]["fid_inception"]
    assert summary["weights"]["vqgan"] == "data/checkpoints/vqgan_emoji64.pt"  # repo-relative, true on any clone
    assert summary["weights"]["transformer"] == "data/checkpoints/transformer_emoji64.pt"
    assert summary["peak_rss_mb"] > 0 and summary["seconds"]["total"] > 0
    with Image.open(tmp_path / "summary_grid.png") as grid:
        assert grid.size == (8 * 66 + 2, 3 * 66 + 2)                    # masked / inpainted / truth rows


# ----------------------------------------------------------------------------- notebook 04's figures, committed table

COMMITTED = REPO_ROOT / "docs" / "results" / "experiments.csv"


def _bar_heights(ax):
    """(y-range of the axis, the longest vertical error bar drawn in it)."""
    low, high = ax.get_ylim()
    bars = [seg for coll in ax.collections for seg in coll.get_segments() if len(seg) == 2 and seg[0][0] == seg[1][0]]
    return high - low, max((abs(seg[1][1] - seg[0][1]) for seg in bars), default=0.0)


def test_fid_figure_error_bars_can_be_seen():
    """Each token rule on its own FID axis: the 3-seed bars (std 0.35-0.54) span a visible part of it."""
    fig = fid_figure(read_results(COMMITTED))
    assert len(fig.axes) == 2 and not fig.axes[0].get_shared_y_axes().joined(fig.axes[0], fig.axes[1])
    for ax in fig.axes:
        span, bar = _bar_heights(ax)
        assert bar > 0.05 * span, f"{ax.get_title()}: an error bar of {bar:.2f} on an axis of {span:.1f}"


def test_sweep_figure_plots_fid_against_s_and_tau():
    rows = read_results(COMMITTED)
    fig = sweep_figure(rows)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["argmax tokens: FID against sweet spot S", "argmax tokens: FID against choice temperature tau",
                      "sampled tokens: FID against sweet spot S", "sampled tokens: FID against choice temperature tau"]
    def xs(ax):
        return {float(x) for line in ax.lines for x in np.asarray(line.get_xdata(), dtype=float)}
    assert {3.0, 6.0, 9.0, 12.0} <= xs(fig.axes[2])                    # S < T rows and S = T
    for ax, t in ((fig.axes[1], 0.0), (fig.axes[3], 1.0)):
        taus = {r.choice_temperature for r in rows if r.kind == "maskgit" and r.sample_temperature == t}
        assert taus <= xs(ax) and len(taus) >= 2
    assert sweep_figure([r for r in rows if r.kind != "maskgit" or r.sweet_spot == r.total_iter
                         and r.choice_temperature == 4.5]) is None  # neither sweep: no figure


def test_summary_figure_puts_the_pasted_rows_beside_the_baselines():
    rows = read_results(COMMITTED)
    fig = summary_figure(rows)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0] == "oracle: VQGAN reconstruction"                    # sorted by FID, best first
    assert any(label.endswith("+ paste known") for label in labels) and "baseline: mean colour" in labels
    pasted = min(e.fid for e in aggregate(rows) if e.paste_known is True)  # a mean over the seeds run
    assert f" {pasted:.2f}" in [t.get_text() for t in fig.axes[0].texts]
    assert fig.axes[1].get_xlabel().startswith("PSNR of the holes")
    assert summary_figure([r for r in rows if r.paste_known is not True]) is None


VARIANTS_750 = REPO_ROOT / "docs" / "results" / "variants" / "experiments.csv"


def test_variants_figure_draws_each_cost_with_its_number():
    """Notebook 05's figure on the committed 750-image table: one panel per token rule, one bar per
    variant whose length is its FID cost against the correct step (so +0.22 and +320 both read, on
    a symlog axis), labelled with that number."""
    rows = read_results(VARIANTS_750)
    costs = variant_costs(aggregate(rows))
    fig = variants_figure(rows)
    assert len(fig.axes) == 2, "one panel per token rule"
    for ax in fig.axes:
        rule = "argmax" if ax.get_title().startswith("argmax") else "sampled"
        mine = [c for c in costs if c.entry.tokens == rule][1:]     # the correct step is the reference
        widths = [bar.get_width() for bar in ax.patches if bar.get_height() < 1]
        assert widths == pytest.approx([c.d_fid for c in mine]), f"{rule}: bars are not the FID costs"
        labels = [t.get_text() for t in ax.texts]
        assert labels == [f"{c.d_fid:+.2f}" for c in mine], f"{rule}: bar labels {labels}"
        assert ax.get_xscale() == "symlog"
        lo, hi = ax.get_xlim()
        assert lo < min(c.d_fid for c in mine) and hi > max(c.d_fid for c in mine), "a bar is cut off"
