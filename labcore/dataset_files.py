"""The dataset's files: finding, reading and checking them (the datasets of ``labcore.data`` read
through this module). Every bad file is one ValueError / FileNotFoundError that names it:
a non-image in an image folder, a corrupt or truncated image, a wrong size or mode, a grey
mask, a ``test_gt.csv`` of the wrong shape, masks that do not pair with their images.

Layout (the course's zip, and data/emoji64 built the same way)::

    ROOT/<name>/train/*.png            training images          (cat_face | emoji)
    ROOT/<name>/val/*.png              validation images
    ROOT/<name>/masked_image/*.png     test inputs, holes painted over
    ROOT/<name>/ground_truth/*.png     test ground truth (emoji64; the course ships test_gt.csv)
    ROOT/mask64/*.png                  one mask per test image: white (255) = known, black = missing
    ROOT/test_gt.csv                   course ground truth: one row of 12288 uint8 (HWC) per image
    ROOT/stats.json                    emoji64 only: each split's channel mean/std

Test inputs, masks and ground truth are paired by sorted file name, like the course does; when
names carry numbers (``image_012.png`` / ``mask_012.png``) the numbers must agree, so files are
never paired silently wrong.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from labcore.csv_tables import read_csv_rows

IMAGE_SIZE = 64
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
# A mask pixel below 32 is "missing", above 223 "known"; anything in between means the file is
# not a black/white mask (e.g. a photo or a blurred/resized mask) and is rejected.
MASK_BLACK_MAX, MASK_WHITE_MIN = 32, 223


# ----------------------------------------------------------------------------- folders

def list_images(folder: str | Path) -> list[Path]:
    """Sorted image files of a folder. Hidden files and sub-folders are skipped; any other
    non-image file is an error that names it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files, others = [], []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.is_dir():
            continue
        (files if p.suffix.lower() in IMAGE_SUFFIXES else others).append(p)
    if others:
        more = f" (and {len(others) - 1} more)" if len(others) > 1 else ""
        raise ValueError(f"{others[0]}: not an image file{more}; a folder of images holds only "
                         f"{', '.join(sorted(IMAGE_SUFFIXES))} files")
    if not files:
        raise ValueError(f"image folder is empty: {folder}")
    return files


def find_image_root(root: str | Path) -> Path:
    """``ROOT/<name>`` that holds train/val/masked_image (``emoji`` or the course's ``cat_face``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    if (root / "masked_image").is_dir() or (root / "train").is_dir():
        return root
    found = [d for d in sorted(root.iterdir())
             if d.is_dir() and ((d / "train").is_dir() or (d / "masked_image").is_dir())]
    if len(found) != 1:
        raise FileNotFoundError(f"{root}: expected one sub-folder with train/val/masked_image "
                                f"(like lab5_dataset/cat_face), found {[d.name for d in found]}")
    return found[0]


def image_number(name: str) -> str | None:
    """The last number in a file name (``image_012.png`` -> ``"12"``), None without digits:
    the key that pairs test images, masks and predictions."""
    digits = re.findall(r"\d+", Path(name).stem)
    return str(int(digits[-1])) if digits else None


def check_pairing(a: list[Path], b: list[Path], what: str) -> None:
    """Equal counts, and where both names carry a number, the same number."""
    if len(a) != len(b):
        raise ValueError(f"{what}: {len(a)} files in {a[0].parent} but {len(b)} in {b[0].parent}")
    for x, y in zip(a, b):
        nx, ny = image_number(x.name), image_number(y.name)
        if nx is not None and ny is not None and nx != ny:
            raise ValueError(f"{what}: unpaired names {x} and {y} (pairing is by sorted name)")


def read_split_statistics(root: str | Path) -> tuple[tuple, tuple] | None:
    """The train split's channel (mean, std) from ``ROOT/stats.json`` (emoji64), None without one
    (the course's zip)."""
    path = Path(root) / "stats.json"
    if not path.is_file():
        return None
    stats = json.loads(path.read_text())["train"]
    return tuple(stats["mean"]), tuple(stats["std"])


# ----------------------------------------------------------------------------- the test set's files

def find_test_files(root: str | Path) -> dict:
    """The test set's files, checked and paired: ``images`` (masked inputs), ``masks``, ``base``
    (the folder of mask64/ and test_gt.csv), and its ground truth: ``truth_files`` (a
    ``ground_truth/`` folder, emoji64) or ``truth_pixels`` (the course's ``test_gt.csv``, looked
    for in ROOT and its parent: uint8 (N, 64, 64, 3)), ``truth_source`` (None without either)."""
    root = Path(root)
    images_root = find_image_root(root)
    base = images_root.parent if images_root != root else root
    found = {"images": list_images(images_root / "masked_image"), "masks": list_images(base / "mask64"),
             "base": base, "truth_files": None, "truth_pixels": None, "truth_source": None}
    check_pairing(found["images"], found["masks"], "masked images vs masks")
    for p in found["images"]:
        check_image_header(p)
    if (images_root / "ground_truth").is_dir():
        found["truth_files"] = list_images(images_root / "ground_truth")
        check_pairing(found["images"], found["truth_files"], "masked images vs ground truth")
        found["truth_source"] = images_root / "ground_truth"
        return found
    for csv_path in (base / "test_gt.csv", base.parent / "test_gt.csv"):
        if csv_path.is_file():
            found["truth_pixels"] = read_test_gt_csv(csv_path)  # (N, 64, 64, 3) uint8
            if len(found["truth_pixels"]) != len(found["images"]):
                raise ValueError(f"{csv_path}: {len(found['truth_pixels'])} rows but "
                                 f"{len(found['images'])} masked images")
            found["truth_source"] = csv_path
            break
    return found


# ----------------------------------------------------------------------------- one file

def check_image_header(path: Path, mode: str = "RGB") -> None:
    """Open only the header: a corrupt/non-image file, a wrong size or mode names the file."""
    try:
        with Image.open(path) as im:
            size, im_mode = im.size, im.mode
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{path}: not a readable image ({err})") from None
    if size != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"{path}: image is {size[0]}x{size[1]}, expected {IMAGE_SIZE}x{IMAGE_SIZE}")
    if mode == "RGB" and im_mode != "RGB":
        raise ValueError(f"{path}: image mode is {im_mode}, expected RGB")


def read_image(path: str | Path) -> Image.Image:
    """A 64x64 RGB image, or a ValueError naming the file."""
    path = Path(path)
    check_image_header(path)
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except OSError as err:  # truncated / corrupt pixel data
        raise ValueError(f"{path}: corrupt image ({err})") from None


def read_mask(path: str | Path) -> torch.Tensor:
    """A mask file as a (1, 64, 64) float tensor, 1 = known, 0 = missing."""
    path = Path(path)
    check_image_header(path, mode="any")
    try:
        with Image.open(path) as im:
            gray = np.asarray(im.convert("L"))
    except OSError as err:
        raise ValueError(f"{path}: corrupt mask ({err})") from None
    grey_pixels = int(((gray >= MASK_BLACK_MAX) & (gray <= MASK_WHITE_MIN)).sum())
    if grey_pixels:
        raise ValueError(f"{path}: not a black/white mask ({grey_pixels} pixels between "
                         f"{MASK_BLACK_MAX} and {MASK_WHITE_MIN}; white = known, black = missing)")
    return torch.from_numpy(gray > MASK_WHITE_MIN).float().unsqueeze(0)  # (1,64,64)


def read_rgb_array(path: str | Path) -> np.ndarray:
    """Any image file, fully decoded and converted to RGB like pytorch-fid's loader: uint8
    (H, W, 3) of any size (FID reads predictions as they are); a ValueError names a bad file."""
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))  # (H, W, 3) uint8
    except (UnidentifiedImageError, OSError) as err:  # not an image, truncated pixel data
        raise ValueError(f"{path}: not a readable image ({err})") from None


def check_images(files: list[Path]) -> None:
    """Decode every pixel of every file (``read_image``): a header can be fine while the file
    is truncated; this finds it and names it, at the cost of reading everything once."""
    for p in files:
        read_image(p)


def read_test_gt_csv(path: str | Path, image_size: int | None = IMAGE_SIZE) -> torch.Tensor:
    """The course's ``test_gt.csv``: a header row, then one row of H*W*3 uint8 values (HWC) per
    image -> uint8 tensor (N, H, W, 3). Every row must hold ``image_size`` x ``image_size`` x 3
    values (12288 for the course's 64x64); ``image_size=None`` takes any square size from the
    first row (FID of other image sets). The one reader of this format (``fid_files.read_gt_csv``
    only reorders it to (N, 3, H, W))."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground-truth CSV not found: {path}")
    rows = read_csv_rows(path)[1:]  # after the header row
    if not rows:
        raise ValueError(f"{path}: no image rows")
    width = len(rows[0]) if image_size is None else image_size * image_size * 3
    side = image_size or int(round((width / 3) ** 0.5))
    if width != side * side * 3:
        raise ValueError(f"{path}: {width} values per row, expected H*W*3 of a square image (12288 for 64x64)")
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"{path}: row {i + 2} has {len(row)} values, expected {width} ({side}x{side}x3)")
    try:
        values = np.asarray(rows, dtype=np.float64)  # (N, H*W*3)
    except ValueError as err:
        raise ValueError(f"{path}: not a table of pixel values ({err})") from None
    if values.min() < 0 or values.max() > 255 or not np.all(values == np.round(values)):
        raise ValueError(f"{path}: pixel values must be integers in 0..255")
    return torch.from_numpy(values.astype(np.uint8)).view(-1, side, side, 3)  # (N, H, W, 3)
