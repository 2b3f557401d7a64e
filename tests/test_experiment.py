"""`labcore experiment` on a 16-image subset in fast mode, and `labcore demo` on 8 images, with the
bundled models and the real FID path (Inception pool3 + pytorch-fid's Fréchet distance)."""

import csv
import json
import math

import pytest
from PIL import Image

from labcore.__main__ import main
from labcore.demo import DEMO_SETTING
from labcore.experiment import ONE_SHOT, read_results, write_results
from labcore.maskgit import SCHEDULES


@pytest.fixture(scope="module")
def experiment_rows(tmp_path_factory):
    out = tmp_path_factory.mktemp("experiment")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABCORE_FAST", "1")
        with pytest.warns(UserWarning, match="biased"):  # 16 images: FID warns and still computes
            rc = main(["experiment", "--limit", "16", "--schedules", "linear", "cosine", "--iterations", "1", "2",
                       "--device", "cpu", "-o", str(out)])
    assert rc == 0
    with open(out / "experiments.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return out, rows


def test_experiment_table_has_every_row_once(experiment_rows):
    _, rows = experiment_rows
    kinds = [r["kind"] for r in rows]
    assert kinds[0].startswith("oracle") and kinds[1].startswith("baseline")
    one_shot = [r for r in rows if r["total_iter"] == "1" and r["paste_known"] == "False"]
    assert len(one_shot) == 1 and one_shot[0]["schedule"] == ONE_SHOT   # T = 1 is schedule-free: one row
    grid = {(r["schedule"], r["total_iter"]) for r in rows if r["kind"] == "maskgit"
            and r["sweet_spot"] == r["total_iter"] and r["paste_known"] == "False"}
    assert grid == {("linear", "2"), ("cosine", "2")}
    sweet = [r for r in rows if r["kind"] == "maskgit" and r["sweet_spot"] != r["total_iter"]
             and r["paste_known"] == "False"]
    assert [(r["total_iter"], r["sweet_spot"]) for r in sweet] == [("2", "1")]
    pasted = [r for r in rows if r["paste_known"] == "True"]
    assert len(pasted) == 1
    assert len(rows) == 2 + 1 + 2 + 1 + 1
    for r in rows:
        assert int(r["images"]) == 16
        assert math.isfinite(float(r["fid"])) and float(r["fid"]) >= 0
        assert float(r["seconds"]) > 0


def test_experiment_scores_make_sense(experiment_rows):
    _, rows = experiment_rows
    oracle = float(rows[0]["fid"])
    one_shot = float(next(r for r in rows if r["total_iter"] == "1" and r["paste_known"] == "False")["fid"])
    # the true tokens decoded beat predicted tokens decoded (the same tokenizer blur, no wrong holes).
    # The mean-colour baseline is no bound: it keeps the sharp known pixels, which FID rewards.
    assert oracle < one_shot


def test_experiment_writes_table_and_plot(experiment_rows):
    out, rows = experiment_rows
    decoding = [r for r in rows if r["kind"] in ("maskgit", "one-shot (T=1)")]
    best = min(decoding, key=lambda r: float(r["fid"]))
    md = (out / "experiments.md").read_text()
    assert md.count("\n| ") == len(rows)                                 # one line per row under the header
    assert f'"fid": {best["fid"]}' in md.split("Best setting:")[1]
    pasted = next(r for r in rows if r["paste_known"] == "True")
    assert (pasted["total_iter"], pasted["sweet_spot"]) == (best["total_iter"], best["sweet_spot"]) or \
        best["paste_known"] == "True"
    with Image.open(out / "experiments.png") as image:
        assert image.size[0] > 400 and image.size[1] > 300


def test_results_read_back_as_written(experiment_rows, tmp_path):
    out, _ = experiment_rows
    rows = read_results(out / "experiments.csv")
    assert isinstance(rows[2]["fid"], float) and isinstance(rows[2]["total_iter"], int)
    assert {type(r["paste_known"]) for r in rows[2:]} == {bool}
    write_results(rows, tmp_path)
    for name in ("experiments.csv", "experiments.md"):
        assert (tmp_path / name).read_text() == (out / name).read_text()


@pytest.mark.parametrize("argv, message", [
    (["--schedules", "cosine", "zigzag"], "choose one of: " + ", ".join(SCHEDULES)),
    (["--iterations", "0", "4"], "--iterations must all be >= 1"),
])
def test_experiment_rejects_bad_settings_before_any_work(argv, message, tmp_path, capsys):
    assert main(["experiment", *argv, "-o", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_demo_on_eight_images(tmp_path):
    with pytest.warns(UserWarning, match="biased"):
        assert main(["demo", "--limit", "8", "--device", "cpu", "--out", str(tmp_path)]) == 0
    for folder in ("test_results", "mask_scheduling", "imga"):
        assert len(list((tmp_path / folder).glob("*.png"))) == 8
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["images"] == 8 and summary["setting"] == DEMO_SETTING
    assert math.isfinite(summary["fid"]) and summary["fid"] >= 0
    assert summary["weights"]["fid_inception"]
    assert summary["peak_rss_mb"] > 0 and summary["seconds"]["total"] > 0
    with Image.open(tmp_path / "summary_grid.png") as grid:
        assert grid.size == (8 * 66 + 2, 3 * 66 + 2)                    # masked / inpainted / truth rows
