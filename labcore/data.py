"""Datasets: the bundled emoji64 set and the course's ``lab5_dataset`` layout, one loader for both.

Layout (the course's zip, and data/emoji64 built the same way)::

    ROOT/<name>/train/*.png            training images          (cat_face | emoji)
    ROOT/<name>/val/*.png              validation images
    ROOT/<name>/masked_image/*.png     test inputs, holes painted over
    ROOT/<name>/ground_truth/*.png     test ground truth (emoji64; the course ships test_gt.csv)
    ROOT/mask64/*.png                  one mask per test image: white (255) = known, black = missing
    ROOT/test_gt.csv                   course ground truth: one row of 12288 uint8 (HWC) per image

Test inputs, masks and ground truth are paired by sorted file name, like the course does; when
names carry numbers (``image_012.png`` / ``mask_012.png``) the numbers must agree, so files are
never paired silently wrong.

Images are normalised with the split's own channel mean/std (the course's convention): the models
work in that space, ``Normalization.denormalize`` brings tensors back to [0, 1].
"""

from __future__ import annotations

import csv
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import transforms

from .paths import EMOJI64_DIR

IMAGE_SIZE = 64
LATENT_PATCH = 4  # 64x64 pixels -> 16x16 tokens
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
# A mask pixel below 32 is "missing", above 223 "known"; anything in between means the file is
# not a black/white mask (e.g. a photo or a blurred/resized mask) and is rejected.
MASK_BLACK_MAX, MASK_WHITE_MIN = 32, 223


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean/std of RGB in [0, 1]."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def _shape(self, x: torch.Tensor, values) -> torch.Tensor:
        return torch.tensor(values, dtype=x.dtype, device=x.device).view(3, 1, 1)  # (3,1,1)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self._shape(x, self.mean)) / self._shape(x, self.std)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Back to [0, 1] (clamped), ready for ``torchvision.utils.save_image``."""
        return (x * self._shape(x, self.std) + self._shape(x, self.mean)).clamp(0, 1)

    def transform(self, augment: bool = False) -> transforms.Compose:
        steps = [transforms.ToTensor()]
        if augment:
            steps.append(transforms.RandomHorizontalFlip())
        steps.append(transforms.Normalize(self.mean, self.std))
        return transforms.Compose(steps)


# The course's constants (lab-format README): cat faces, test and train/val.
COURSE_TRAIN = Normalization((0.4816, 0.4324, 0.3845), (0.2602, 0.2518, 0.2537))
COURSE_TEST = Normalization((0.4868, 0.4341, 0.3844), (0.2620, 0.2527, 0.2543))


def load_normalization(split: str = "train", root: str | Path = EMOJI64_DIR) -> Normalization:
    """The normalisation of a folder's images for a model trained on that folder.

    With ``ROOT/stats.json`` (emoji64): the train split's mean/std, for every split: a model is fed
    its inputs normalised the way it was trained, and labcore trains on train (stats.json's val and
    test entries describe those splits; nothing normalises with them). Without it (the course's
    zip): the course's constants, test's own for the test split, the template's convention that
    the course's VQGAN expects."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', not {split!r}")
    path = Path(root) / "stats.json"
    if not path.is_file():
        return COURSE_TEST if split == "test" else COURSE_TRAIN
    stats = json.loads(path.read_text())["train"]
    return Normalization(tuple(stats["mean"]), tuple(stats["std"]))


_NOTED: set = set()  # (folder, normalisation) pairs already reported


def normalization_for(tokenizer: Normalization | None, root: str | Path = EMOJI64_DIR,
                      split: str = "test") -> Normalization:
    """What a folder's images are normalised with on their way into a tokenizer: the normalisation
    the tokenizer was trained with (its yml records it), whatever the folder says; the folder's
    own (``load_normalization``) only for a tokenizer that records none (the course's VQGAN.yml).
    Feeding a tokenizer other statistics shifts every pixel it sees (the known region of an
    inpainted image comes back washed out). A folder whose own statistics differ gets one note."""
    if tokenizer is None:
        return load_normalization(split, root)
    own = load_normalization(split, root)
    key = (str(Path(root).resolve()), tokenizer)
    if own != tokenizer and key not in _NOTED:
        _NOTED.add(key)
        print(f"note: {root}: images normalised with the tokenizer's statistics (mean {tokenizer.mean}, "
              f"std {tokenizer.std}), not the folder's own (mean {own.mean}, std {own.std})", file=sys.stderr)
    return tokenizer


# ----------------------------------------------------------------------------- reading files

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


def _csv_rows(path: Path) -> list[list[str]]:
    """The non-empty rows of a CSV file after its header row."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [row for row in csv.reader(f) if row][1:]
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{path}: not a CSV text file ({err})") from None


def read_test_gt_csv(path: str | Path, image_size: int | None = IMAGE_SIZE) -> torch.Tensor:
    """The course's ``test_gt.csv``: a header row, then one row of H*W*3 uint8 values (HWC) per
    image -> uint8 tensor (N, H, W, 3). Every row must hold ``image_size`` x ``image_size`` x 3
    values (12288 for the course's 64x64); ``image_size=None`` takes any square size from the
    first row (FID of other image sets). The one reader of this format (``fid.read_gt_csv``
    only reorders it to (N, 3, H, W))."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground-truth CSV not found: {path}")
    rows = _csv_rows(path)
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


# ----------------------------------------------------------------------------- datasets

class ImageFolderDataset(Dataset):
    """A folder of 64x64 RGB images -> normalised tensors (3, 64, 64)."""

    def __init__(self, folder: str | Path, normalization: Normalization, augment: bool = False):
        self.files = list_images(folder)
        for p in self.files:
            check_image_header(p)
        self.normalization = normalization
        self.transform = normalization.transform(augment)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(read_image(self.files[i]))  # (3,64,64)


def find_image_root(root: str | Path) -> Path:
    """``ROOT/<name>`` that holds train/val/masked_image (``emoji`` or the course's ``cat_face``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    if (root / "masked_image").is_dir() or (root / "train").is_dir():
        return root
    found = [d for d in sorted(root.iterdir()) if d.is_dir() and ((d / "train").is_dir() or (d / "masked_image").is_dir())]
    if len(found) != 1:
        raise FileNotFoundError(f"{root}: expected one sub-folder with train/val/masked_image "
                                f"(like lab5_dataset/cat_face), found {[d.name for d in found]}")
    return found[0]


def emoji64_dataset(split: str = "train", root: str | Path = EMOJI64_DIR, augment: bool = False,
                    normalization: Normalization | None = None) -> ImageFolderDataset:
    """The train or val images of emoji64 (or of the course layout at ``root``)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val' (the test set is InpaintingTestSet), not {split!r}")
    norm = normalization or load_normalization(split, root)
    return ImageFolderDataset(find_image_root(root) / split, norm, augment=augment)


class InpaintingTestSet(Dataset):
    """(masked image, mask, ground truth) triples paired by sorted name.

    Ground truth comes from ``<name>/ground_truth/`` (emoji64) or ``test_gt.csv`` (the course's,
    looked for in ROOT and its parent); without either, ``target`` is None.
    """

    def __init__(self, root: str | Path = EMOJI64_DIR, normalization: Normalization | None = None):
        root = Path(root)
        images_root = find_image_root(root)
        base = images_root.parent if images_root != root else root
        self.image_files = list_images(images_root / "masked_image")
        mask_dir = base / "mask64"
        self.mask_files = list_images(mask_dir)
        check_pairing(self.image_files, self.mask_files, "masked images vs masks")
        for p in self.image_files:
            check_image_header(p)
        self.normalization = normalization or load_normalization("test", base)
        self.gt_files, self.gt_pixels, self.gt_source = None, None, None
        if (images_root / "ground_truth").is_dir():
            self.gt_files = list_images(images_root / "ground_truth")
            check_pairing(self.image_files, self.gt_files, "masked images vs ground truth")
            self.gt_source = images_root / "ground_truth"
        else:
            for csv_path in (base / "test_gt.csv", base.parent / "test_gt.csv"):
                if csv_path.is_file():
                    self.gt_pixels = read_test_gt_csv(csv_path)  # (N,64,64,3) uint8
                    if len(self.gt_pixels) != len(self.image_files):
                        raise ValueError(f"{csv_path}: {len(self.gt_pixels)} rows but "
                                         f"{len(self.image_files)} masked images")
                    self.gt_source = csv_path
                    break
        self._to_tensor = self.normalization.transform()

    def __len__(self) -> int:
        return len(self.image_files)

    def target(self, i: int) -> torch.Tensor | None:
        if self.gt_files is not None:
            return self._to_tensor(read_image(self.gt_files[i]))
        if self.gt_pixels is not None:
            return self._to_tensor(Image.fromarray(self.gt_pixels[i].numpy()))
        return None

    def __getitem__(self, i: int) -> dict:
        return {
            "image": self._to_tensor(read_image(self.image_files[i])),  # (3,64,64) normalised
            "mask": read_mask(self.mask_files[i]),                        # (1,64,64) 1 = known
            "target": self.target(i),                                     # (3,64,64) or None
            "name": self.image_files[i].name,
        }


def collate_test(items: list[dict]) -> dict:
    """DataLoader collate for InpaintingTestSet (keeps names as a list, target may be None)."""
    out = {k: torch.stack([it[k] for it in items]) for k in ("image", "mask")}
    targets = [it["target"] for it in items]
    out["target"] = None if any(t is None for t in targets) else torch.stack(targets)
    out["name"] = [it["name"] for it in items]
    return out


# ----------------------------------------------------------------------------- the mask rule

def latent_mask_from_pixels(mask_known: torch.Tensor, patch: int = LATENT_PATCH) -> torch.Tensor:
    """The course's rule: a token is masked unless its whole ``patch x patch`` pixel patch is known.

    mask_known: (B, 1, H, W) or (B, H, W), 1 = known, 0 = missing -> (B, H/patch, W/patch) bool,
    True = token masked.
    """
    if mask_known.dim() == 3:
        mask_known = mask_known.unsqueeze(1)                         # (B,1,H,W)
    missing = (mask_known < 0.5).float()                             # (B,1,H,W) 1 = missing
    any_missing = F.max_pool2d(missing, kernel_size=patch)           # (B,1,H/p,W/p)
    return any_missing[:, 0] > 0                                     # (B,H/p,W/p) bool
