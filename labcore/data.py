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
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}
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
    """The mean/std of a split from ``ROOT/stats.json`` (emoji64); the course's constants when
    the folder has no stats file (the course zip)."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', not {split!r}")
    path = Path(root) / "stats.json"
    if not path.is_file():
        return COURSE_TEST if split == "test" else COURSE_TRAIN
    stats = json.loads(path.read_text())[split]
    return Normalization(tuple(stats["mean"]), tuple(stats["std"]))


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
        raise ValueError(f"{folder} holds files that are not images: " + ", ".join(p.name for p in others[:5]))
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


def read_test_gt_csv(path: str | Path) -> torch.Tensor:
    """The course's ``test_gt.csv``: a header row, then one row of 12288 uint8 values (HWC) per
    image -> uint8 tensor (N, 64, 64, 3)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground-truth CSV not found: {path}")
    width = IMAGE_SIZE * IMAGE_SIZE * 3
    with open(path, newline="") as f:
        reader = csv.reader(f)
        next(reader, None)  # header
        rows = [row for row in reader if row]
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"{path}: row {i + 2} has {len(row)} values, expected {width} (64x64x3)")
    if not rows:
        raise ValueError(f"{path}: no image rows")
    return torch.from_numpy(np.asarray(rows, dtype=np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 3))


def _number(name: str) -> str | None:
    digits = re.findall(r"\d+", Path(name).stem)
    return str(int(digits[-1])) if digits else None


def check_pairing(a: list[Path], b: list[Path], what: str) -> None:
    """Equal counts, and where both names carry a number, the same number."""
    if len(a) != len(b):
        raise ValueError(f"{what}: {len(a)} files in {a[0].parent} but {len(b)} in {b[0].parent}")
    for x, y in zip(a, b):
        nx, ny = _number(x.name), _number(y.name)
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


# ----------------------------------------------------------------------------- CLI: data-info

def add_arguments(parser) -> None:
    parser.add_argument("root", nargs="?", default=str(EMOJI64_DIR),
                        help="dataset folder: data/emoji64 (default) or the course's lab5_dataset")


def run(args) -> int:
    root = Path(args.root)
    images_root = find_image_root(root)
    for split in ("train", "val"):
        if (images_root / split).is_dir():
            ds = emoji64_dataset(split, root)
            print(f"{split:5s} {len(ds):5d} images  {images_root / split}")
    test = InpaintingTestSet(root)
    masks = torch.stack([read_mask(p) for p in test.mask_files])           # (N,1,64,64)
    missing = 1 - masks.mean(dim=(1, 2, 3))                                 # (N,)
    tokens = latent_mask_from_pixels(masks).float().mean(dim=(1, 2))        # (N,)
    print(f"test  {len(test):5d} masked images + masks, ground truth: {test.gt_source or 'none'}")
    print(f"      missing pixels {missing.min():.1%} .. {missing.max():.1%} (mean {missing.mean():.1%}); "
          f"masked tokens mean {tokens.mean():.1%}")
    print(f"      test normalisation mean={test.normalization.mean} std={test.normalization.std}")
    return 0
