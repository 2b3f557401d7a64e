"""`labcore inpaint` and labcore.bench.benchmark_inpaint on a few images of the bundled emoji64 test set, with
tiny randomly initialised models saved in the course's checkpoint format (and, when present,
the course-format fixtures in ../shared/lab-format)."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from labcore.__main__ import build_parser, main
from labcore.data import InpaintingTestSet
from labcore.bench import benchmark_inpaint
from labcore.inpaint import mask_strip
from labcore.model_files import load_maskgit
from labcore.paths import EMOJI64_DIR

LAB_FORMAT = Path(__file__).resolve().parents[2] / "shared" / "lab-format"


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_inpaint_command_writes_the_course_folders(tiny_files, tmp_path):
    out = tmp_path / "out"
    rc = main(["inpaint", "--limit", "3", "--batch-size", "2", "--total-iter", "3", "--seed", "1",
               "--device", "cpu", "-o", str(out), *tiny_files])
    assert rc == 0
    assert names(out) == ["imga", "mask_scheduling", "test_results"]
    assert names(out / "test_results") == ["image_000.png", "image_001.png", "image_002.png"]
    assert names(out / "mask_scheduling") == ["test_000.png", "test_001.png", "test_002.png"]
    assert names(out / "imga") == ["test_000.png", "test_001.png", "test_002.png"]
    assert Image.open(out / "test_results" / "image_000.png").size == (64, 64)
    frames = 3 + 1                                   # the input / initial mask, then one per step
    strip = (frames * (64 + 2) + 2, 64 + 4)          # make_grid with padding 2, one row
    assert Image.open(out / "imga" / "test_001.png").size == strip
    assert Image.open(out / "mask_scheduling" / "test_001.png").size == strip


def test_inpaint_strips_for_the_first_images_only_same_outputs(tiny_files, tmp_path):
    """--strips N: strips for the first N images (across batches), and the same test_results/ as a full run."""
    full, part = tmp_path / "full", tmp_path / "part"
    common = ["inpaint", "--limit", "5", "--batch-size", "2", "--total-iter", "3", "--device", "cpu", *tiny_files]
    assert main([*common, "-o", str(full)]) == 0
    assert main([*common, "--strips", "3", "-o", str(part)]) == 0
    assert names(part / "imga") == names(part / "mask_scheduling") == ["test_000.png", "test_001.png", "test_002.png"]
    assert names(part / "test_results") == names(full / "test_results") and len(names(full / "test_results")) == 5
    for name in names(full / "test_results"):
        assert np.array_equal(np.array(Image.open(full / "test_results" / name)),
                              np.array(Image.open(part / "test_results" / name)))
    assert main([*common, "--strips", "-1", "-o", str(tmp_path / "bad")]) == 2


def test_inpaint_command_sweet_spot_paste_known_course_aliases(tiny_files, tmp_path):
    out = tmp_path / "out"
    rc = main(["inpaint", "--limit", "1", "--mask-func", "linear", "--total_iter", "4", "--sweet_spot", "2",
               "--paste-known", "--device", "cpu", "-o", str(out), *tiny_files])
    assert rc == 0
    strip = Image.open(out / "imga" / "test_000.png")
    assert strip.size == (3 * 66 + 2, 68)            # masked input + 2 steps
    # --paste-known: the known pixels of the input are in the output (up to 8-bit rounding)
    test_set = InpaintingTestSet(EMOJI64_DIR)
    known = test_set[0]["mask"][0].bool()                                       # (64, 64)
    original = torch.from_numpy(np.array(Image.open(test_set.image_files[0]).convert("RGB")))  # (64, 64, 3)
    result = torch.from_numpy(np.array(Image.open(out / "test_results" / "image_000.png")))
    assert (original[known].int() - result[known].int()).abs().max() <= 1


def test_inpaint_no_progress_silences_every_bar(tiny_files, tmp_path, capsys):
    common = ["inpaint", "--limit", "2", "--total-iter", "2", "--device", "cpu", *tiny_files]
    assert main([*common, "-o", str(tmp_path / "bars")]) == 0
    assert "inpaint:" in capsys.readouterr().err                                # the bar, without the flag
    assert main([*common, "--no-progress", "-o", str(tmp_path / "quiet")]) == 0
    assert capsys.readouterr().err == ""


def test_course_aliases_parse_to_the_same_settings():
    parser = build_parser("inpaint")
    a = parser.parse_args(["inpaint", "--mask-func", "square", "--total_iter", "10", "--sweet_spot", "6",
                           "--MaskGitConfig", "m.yml", "--load-transformer-ckpt-path", "t.pt"])
    b = parser.parse_args(["inpaint", "--schedule", "square", "--total-iter", "10", "--sweet-spot", "6",
                           "--transformer-config", "m.yml", "--transformer-weights", "t.pt"])
    for key in ("schedule", "total_iter", "sweet_spot", "transformer_config", "transformer_weights"):
        assert getattr(a, key) == getattr(b, key)
    d = parser.parse_args(["inpaint"])
    assert (d.schedule, d.total_iter, d.sweet_spot, d.temperature) == ("cosine", 8, None, 4.5)


@pytest.mark.parametrize("flags,match", [
    (["--total-iter", "3", "--sweet-spot", "5"], "sweet_spot"),
    (["--total-iter", "0"], "total_iter"),
    (["--temperature", "-1"], "temperature"),
])
def test_inpaint_command_bad_settings_fail_before_work(flags, match, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["inpaint", "-o", str(out), "--vqgan-config", "missing.yml", "--vqgan-weights", "missing.pt", *flags])
    assert rc == 2
    assert re.search(f"labcore inpaint: error: .*{match}", capsys.readouterr().err)
    assert not out.exists()


def test_inpaint_command_unknown_schedule_lists_choices(capsys):
    assert main(["inpaint", "--schedule", "zigzag"]) == 2           # argparse's own error, one line
    err = capsys.readouterr().err
    assert "zigzag" in err and "cosine" in err and "arccos" in err


def test_inpaint_command_names_a_missing_checkpoint(tiny_files, tmp_path, capsys):
    flags = list(tiny_files)
    flags[flags.index("--transformer-weights") + 1] = str(tmp_path / "nope.pt")
    rc = main(["inpaint", "--limit", "1", "-o", str(tmp_path / "out"), *flags])
    assert rc == 2 and "nope.pt" in capsys.readouterr().err


def test_mask_strip_is_white_where_known():
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[0, 3, 5] = True
    frames = mask_strip(masks, patch=4)
    assert frames.shape == (2, 3, 64, 64)
    assert (frames[0, :, 12:16, 20:24] == 0).all() and frames[0].sum() == 3 * (64 * 64 - 16)
    assert (frames[1] == 1).all()


def test_benchmark_inpaint_reports_figures(tiny_files):
    f = dict(zip(tiny_files[::2], tiny_files[1::2]))
    mg = load_maskgit(f["--vqgan-config"], f["--vqgan-weights"], f["--transformer-config"],
                      f["--transformer-weights"])
    figures = benchmark_inpaint(mg, total_iter=1, batch_size=2, limit=2, progress=False)
    assert figures["images"] == 2 and figures["total_iter"] == 1
    assert figures["course_images_per_s"] > 0 and figures["batched_images_per_s"] > 0
    assert figures["speedup"] == pytest.approx(figures["course_seconds"] / figures["batched_seconds"])
    assert figures["peak_rss_mb"] >= figures["peak_rss_mb_after_course_loop"] > 0


@pytest.mark.skipif(not LAB_FORMAT.is_dir(), reason=f"course-format fixtures not found at {LAB_FORMAT}")
def test_inpaint_with_course_format_fixtures(tmp_path):
    """The lab's own checkpoint format (tiny configs, K=64) drives the command end to end."""
    out = tmp_path / "out"
    rc = main(["inpaint", "--limit", "1", "--total-iter", "2", "--device", "cpu", "-o", str(out),
               "--vqgan-config", str(LAB_FORMAT / "vqgan_tiny.yml"),
               "--vqgan-weights", str(LAB_FORMAT / "vqgan_tiny.pt"),
               "--MaskGitConfig", str(LAB_FORMAT / "transformer_tiny.yml"),
               "--load-transformer-ckpt-path", str(LAB_FORMAT / "transformer_tiny.pt")])
    assert rc == 0
    assert [len(names(out / d)) for d in ("test_results", "mask_scheduling", "imga")] == [1, 1, 1]
