"""The bundled emoji64 dataset, its loaders, the course's mask rule and every bad-input error."""

import csv
import importlib.util
import json
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from labcore.__main__ import main
from labcore.data import InpaintingTestSet, emoji64_dataset, latent_mask_from_pixels, load_normalization
from labcore.dataset_files import image_number, list_images, read_image, read_mask, read_rgb_array, read_test_gt_csv
from labcore.paths import DATA_DIR, EMOJI64_DIR

IMAGES = EMOJI64_DIR / "emoji"


def load_build_script():
    spec = importlib.util.spec_from_file_location("build_emoji64", DATA_DIR / "build_emoji64.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def metadata():
    with open(EMOJI64_DIR / "metadata.csv", newline="") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- integrity

def test_counts_match_metadata_and_files(metadata):
    by_split = defaultdict(list)
    for row in metadata:
        by_split[row["split"]].append(row)
    assert len(by_split["test"]) == 750 and len(by_split["val"]) == 300
    assert len(by_split["train"]) > 5000
    for split in ("train", "val"):
        on_disk = sorted(p.name for p in (IMAGES / split).glob("*.png"))
        assert on_disk == sorted(Path(r["file"]).name for r in by_split[split])
    assert len(list((IMAGES / "masked_image").glob("*.png"))) == 750
    assert len(list((IMAGES / "ground_truth").glob("*.png"))) == 750
    assert len(list((EMOJI64_DIR / "mask64").glob("*.png"))) == 750


def test_splits_are_disjoint_by_identity_and_stratified(metadata):
    ids = defaultdict(set)
    for row in metadata:
        ids[row["split"]].add(row["identity"])
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    # skin-tone variants (unified != identity) only in train
    assert all(r["split"] == "train" for r in metadata if r["unified"] != r["identity"])
    # stratified: every category's share of test identities is within one identity of the target
    per_cat = defaultdict(lambda: defaultdict(set))
    for row in metadata:
        per_cat[row["category"]][row["split"]].add(row["identity"])
    total = sum(len(s) for c in per_cat.values() for s in c.values())
    for cat, splits in per_cat.items():
        n = sum(len(s) for s in splits.values())
        assert abs(len(splits["test"]) - 375 * n / total) < 1, cat


def test_every_test_image_has_a_mask_within_coverage():
    masks = torch.stack([read_mask(p) for p in list_images(EMOJI64_DIR / "mask64")])  # (750,1,64,64)
    missing = 1 - masks.mean(dim=(1, 2, 3))
    assert masks.shape[0] == 750
    assert missing.min() >= 0.10 and missing.max() <= 0.50


def test_masked_images_agree_with_masks_and_ground_truth():
    for i in (0, 123, 749):
        mask = np.asarray(Image.open(EMOJI64_DIR / f"mask64/mask_{i:03d}.png")) > 127
        masked = np.asarray(Image.open(IMAGES / f"masked_image/image_{i:03d}.png"))
        truth = np.asarray(Image.open(IMAGES / f"ground_truth/image_{i:03d}.png"))
        assert (masked[mask] == truth[mask]).all()
        assert (masked[~mask] == 255).all()


def test_stats_json_matches_the_images():
    ds = emoji64_dataset("val")
    x = torch.stack([ds.normalization.denormalize(ds[i]) for i in range(len(ds))])  # back to [0,1]
    stats = json.loads((EMOJI64_DIR / "stats.json").read_text())["val"]
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.tensor(stats["mean"]), atol=1e-3)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.tensor(stats["std"]), atol=1e-3)


def test_masks_are_regenerated_byte_identically(tmp_path):
    build = load_build_script()
    for i in (0, 1, 2, 500):
        mask, _, _ = build.make_mask(i)
        build.save_png(mask, tmp_path / "m.png")
        assert (tmp_path / "m.png").read_bytes() == (EMOJI64_DIR / f"mask64/mask_{i:03d}.png").read_bytes()


def npm_tarballs(cache: Path) -> dict:
    build = load_build_script()
    cache.mkdir(parents=True, exist_ok=True)
    found = {s: next(iter(sorted(cache.glob(f"{p}-{build.VERSION}.tgz"))), None) for s, p in build.STYLES.items()}
    if all(found.values()):
        return found
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: cannot fetch the emoji tarballs for the rebuild test")
    try:
        return build.npm_pack(cache)
    except (subprocess.CalledProcessError, OSError) as err:
        pytest.skip(f"npm pack failed (no registry access?): {err}")


def test_rebuild_of_a_subset_is_byte_identical(tmp_path):
    build = load_build_script()
    tgz = npm_tarballs(Path.home() / ".cache" / "labcore" / "npm")
    subset = {"emoji/train/google_1f600.png", "emoji/train/twitter_1f44d-1f3fd.png", "emoji/val/"
              + sorted(p.name for p in (IMAGES / "val").glob("*.png"))[0],
              "emoji/ground_truth/image_007.png", "emoji/masked_image/image_007.png", "mask64/mask_007.png"}
    build.build(tgz["google"], tgz["twitter"], tmp_path, only=subset)
    assert (tmp_path / "metadata.csv").read_bytes() == (EMOJI64_DIR / "metadata.csv").read_bytes()
    for rel in subset:
        assert (tmp_path / rel).read_bytes() == (EMOJI64_DIR / rel).read_bytes(), rel


# ----------------------------------------------------------------------------- loaders

def test_train_dataset_is_normalised_64x64():
    ds = emoji64_dataset("train")
    x = torch.stack([ds[i] for i in range(0, len(ds), 500)])
    assert x.shape[1:] == (3, 64, 64)
    norm = load_normalization("train")
    back = norm.denormalize(x)
    assert back.min() >= 0 and back.max() <= 1
    # white background maps to (1 - mean) / std
    white = torch.tensor([(1 - m) / s for m, s in zip(norm.mean, norm.std)])
    assert torch.allclose(x[0, :, 0, 0], white, atol=1e-4)


def test_test_set_triples():
    test = InpaintingTestSet()
    assert len(test) == 750
    item = test[5]
    assert item["image"].shape == (3, 64, 64) and item["mask"].shape == (1, 64, 64)
    assert item["target"].shape == (3, 64, 64) and item["name"] == "image_005.png"
    known = item["mask"].bool().expand(3, -1, -1)
    assert torch.allclose(item["image"][known], item["target"][known])


def make_course_layout(root: Path, n: int = 3) -> Path:
    """A tiny lab5_dataset/ in the course's layout, with test_gt.csv, from real emoji images."""
    cat = root / "lab5_dataset" / "cat_face"
    for d in ("train", "val", "masked_image"):
        (cat / d).mkdir(parents=True)
    (root / "lab5_dataset" / "mask64").mkdir()
    rows = []
    for i in range(n):
        truth = Image.open(IMAGES / f"ground_truth/image_{i:03d}.png")
        shutil.copy(IMAGES / f"masked_image/image_{i:03d}.png", cat / "masked_image" / f"image_{i:03d}.png")
        shutil.copy(EMOJI64_DIR / f"mask64/mask_{i:03d}.png", root / "lab5_dataset/mask64" / f"mask_{i:03d}.png")
        truth.save(cat / "train" / f"{i}.png")
        truth.save(cat / "val" / f"{i}.png")
        rows.append(np.asarray(truth).reshape(-1))
    with open(root / "lab5_dataset" / "test_gt.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([f"p{k}" for k in range(12288)])
        writer.writerows(rows)
    return root / "lab5_dataset"


def test_course_layout_loads_with_test_gt_csv(tmp_path):
    root = make_course_layout(tmp_path)
    test = InpaintingTestSet(root)
    assert test.gt_source.name == "test_gt.csv" and len(test) == 3
    assert test.normalization.mean == (0.4868, 0.4341, 0.3844)  # the course's test constants
    truth = test.normalization.transform()(read_image(IMAGES / "ground_truth/image_002.png"))
    assert torch.allclose(test[2]["target"], truth, atol=1e-6)
    assert len(emoji64_dataset("train", root)) == 3


def test_read_test_gt_csv_shape(tmp_path):
    root = make_course_layout(tmp_path, n=2)
    pixels = read_test_gt_csv(root / "test_gt.csv")
    assert pixels.shape == (2, 64, 64, 3) and pixels.dtype == torch.uint8
    assert (pixels[1].numpy() == np.asarray(Image.open(IMAGES / "ground_truth/image_001.png"))).all()


# ----------------------------------------------------------------------------- the mask rule

def test_latent_mask_rule_on_hand_made_masks():
    known = torch.ones(2, 1, 64, 64)
    known[0, 0, 5, 5] = 0            # one missing pixel -> token (1,1) masked
    known[1, 0, 0:8, 60:64] = 0      # a 8x4 block at the right edge -> tokens (0,15), (1,15)
    latent = latent_mask_from_pixels(known)
    assert latent.shape == (2, 16, 16) and latent.dtype == torch.bool
    assert latent[0].nonzero().tolist() == [[1, 1]]
    assert latent[1].nonzero().tolist() == [[0, 15], [1, 15]]
    assert not latent_mask_from_pixels(torch.ones(1, 64, 64)).any()
    assert latent_mask_from_pixels(torch.zeros(1, 64, 64)).all()


# ----------------------------------------------------------------------------- bad input

def test_empty_folder_is_named(tmp_path):
    with pytest.raises(ValueError, match=f"empty: {tmp_path}"):
        list_images(tmp_path)


def test_non_image_file_is_named(tmp_path):
    shutil.copy(IMAGES / "val" / next(iter(sorted(p.name for p in (IMAGES / "val").iterdir()))), tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="notes.txt"):
        list_images(tmp_path)


def test_corrupt_image_is_named(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    with pytest.raises(ValueError, match="broken.png"):
        read_image(tmp_path / "broken.png")


def test_wrong_size_and_mode_are_reported(tmp_path):
    Image.new("RGB", (32, 48)).save(tmp_path / "small.png")
    with pytest.raises(ValueError, match=r"small.png: image is 32x48, expected 64x64"):
        read_image(tmp_path / "small.png")
    Image.new("L", (64, 64)).save(tmp_path / "gray.png")
    with pytest.raises(ValueError, match="gray.png: image mode is L, expected RGB"):
        read_image(tmp_path / "gray.png")


def test_grey_mask_is_rejected(tmp_path):
    Image.new("L", (64, 64), 128).save(tmp_path / "mask_000.png")
    with pytest.raises(ValueError, match="mask_000.png: not a black/white mask"):
        read_mask(tmp_path / "mask_000.png")


def test_mask_count_mismatch_and_unpaired_names(tmp_path):
    root = make_course_layout(tmp_path)
    (root / "mask64" / "mask_002.png").unlink()
    with pytest.raises(ValueError, match="3 files in .*masked_image but 2 in .*mask64"):
        InpaintingTestSet(root)
    shutil.copy(root / "mask64" / "mask_001.png", root / "mask64" / "mask_009.png")
    with pytest.raises(ValueError, match="unpaired names .*image_002.png and .*mask_009.png"):
        InpaintingTestSet(root)


def test_csv_with_wrong_row_width_is_named(tmp_path):
    path = tmp_path / "test_gt.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="test_gt.csv: row 2 has 2 values"):
        read_test_gt_csv(path)


def test_image_number_pairs_names():
    assert image_number("image_012.png") == image_number("mask_12.png") == "12"
    assert image_number("cat.png") is None


def test_bad_csv_files_are_named(tmp_path):
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01\n\x00")
    with pytest.raises(ValueError, match="binary.csv: not a CSV text file"):
        read_test_gt_csv(binary)
    words = tmp_path / "words.csv"
    words.write_text(",".join(["p"] * 12) + "\n" + ",".join(["x"] * 12) + "\n")
    with pytest.raises(ValueError, match="words.csv: not a table of pixel values"):
        read_test_gt_csv(words, image_size=2)
    words.write_text("h\n" + ",".join(["7"] * 12) + "\n")
    assert read_test_gt_csv(words, image_size=None).shape == (1, 2, 2, 3)   # any square size


def truncate_png(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])     # the header survives, the pixel data does not


@pytest.mark.parametrize("where", ["cat_face/train/1.png", "cat_face/masked_image/image_001.png"])
def test_data_info_decodes_every_image(tmp_path, capsys, where):
    root = make_course_layout(tmp_path)
    truncate_png(root / where)
    with pytest.raises(ValueError, match="not a readable image|corrupt image"):
        read_rgb_array(root / where)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(["data-info", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("labcore data-info: error: ") and where in err and "corrupt image" in err
    assert err.count("\n") == 1
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


def test_data_info_of_a_good_course_layout(tmp_path, capsys):
    root = make_course_layout(tmp_path)
    assert main(["data-info", str(root)]) == 0
    out = capsys.readouterr().out
    assert "train     3 images" in out and "test_gt.csv" in out
