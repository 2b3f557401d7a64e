"""The data of MaskGIT inpainting (Chang et al. 2022): images, pixel masks, and the token mask
the transformer fills.

An image x (64x64 RGB) is normalised per channel, x' = (x - mean) / std, with the statistics the
tokenizer was trained with (the course's convention); ``Normalization.denormalize`` brings
tensors back to [0, 1]. A test item is a masked image, its pixel mask m (1 = known, 0 = missing)
and, when known, the ground truth.

The VQGAN tokenizer (Esser et al. 2021) turns each 4x4 pixel patch into one of 16x16 tokens. A
token is known only if its whole patch is known; every other token is masked and predicted:

    M[i, j] = max over the patch (i, j) of (1 - m)      (the course's rule: max-pooling)

Finding, reading and checking the files (the course's layout, bad files named) is
``labcore.dataset_files``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms

from labcore import dataset_files as files
from labcore.paths import EMOJI64_DIR
from labcore.runtime import note

LATENT_PATCH = 4  # 64x64 pixels -> 16x16 tokens


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
    its inputs normalised the way it was trained, and labcore trains on train. Without it (the
    course's zip): the course's constants, test's own for the test split, the template's
    convention that the course's VQGAN expects."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', not {split!r}")
    stats = files.read_split_statistics(root)
    if stats is None:
        return COURSE_TEST if split == "test" else COURSE_TRAIN
    return Normalization(*stats)


_NOTED: set = set()  # (folder, normalisation) pairs already noted


def normalization_for(tokenizer: Normalization | None, root: str | Path = EMOJI64_DIR,
                      split: str = "test") -> Normalization:
    """What a folder's images are normalised with on their way into a tokenizer: the normalisation
    the tokenizer was trained with (its yml records it), whatever the folder says; the folder's
    own (``load_normalization``) only for a tokenizer that records none (the course's VQGAN.yml).
    Feeding a tokenizer other statistics shifts every pixel it sees (the known region of an
    inpainted image comes back washed out). A folder whose own statistics differ gets one note."""
    own = load_normalization(split, root)
    if tokenizer is None:
        return own
    key = (str(Path(root).resolve()), tokenizer)
    if own != tokenizer and key not in _NOTED:
        _NOTED.add(key)
        note(f"{root}: images normalised with the tokenizer's statistics (mean {tokenizer.mean}, "
             f"std {tokenizer.std}), not the folder's own (mean {own.mean}, std {own.std})")
    return tokenizer


# ----------------------------------------------------------------------------- datasets

class ImageFolderDataset(Dataset):
    """A folder of 64x64 RGB images -> normalised tensors (3, 64, 64)."""

    def __init__(self, folder: str | Path, normalization: Normalization, augment: bool = False):
        self.files = files.list_images(folder)
        for p in self.files:
            files.check_image_header(p)
        self.normalization = normalization
        self.transform = normalization.transform(augment)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(files.read_image(self.files[i]))  # (3,64,64)


def emoji64_dataset(split: str = "train", root: str | Path = EMOJI64_DIR, augment: bool = False,
                    normalization: Normalization | None = None) -> ImageFolderDataset:
    """The train or val images of emoji64 (or of the course layout at ``root``)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val' (the test set is InpaintingTestSet), not {split!r}")
    norm = normalization or load_normalization(split, root)
    return ImageFolderDataset(files.find_image_root(root) / split, norm, augment=augment)


class InpaintingTestSet(Dataset):
    """(masked image, mask, ground truth) triples paired by sorted name.

    Ground truth comes from ``<name>/ground_truth/`` (emoji64) or ``test_gt.csv`` (the course's,
    looked for in ROOT and its parent); without either, ``target`` is None.
    """

    def __init__(self, root: str | Path = EMOJI64_DIR, normalization: Normalization | None = None):
        found = files.find_test_files(root)
        self.image_files, self.mask_files = found["images"], found["masks"]
        self.gt_files, self.gt_pixels = found["truth_files"], found["truth_pixels"]
        self.gt_source = found["truth_source"]
        self.normalization = normalization or load_normalization("test", found["base"])
        self._to_tensor = self.normalization.transform()

    def __len__(self) -> int:
        return len(self.image_files)

    def target(self, i: int) -> torch.Tensor | None:
        if self.gt_files is not None:
            return self._to_tensor(files.read_image(self.gt_files[i]))
        if self.gt_pixels is not None:
            return self._to_tensor(Image.fromarray(self.gt_pixels[i].numpy()))
        return None

    def __getitem__(self, i: int) -> dict:
        return {
            "image": self._to_tensor(files.read_image(self.image_files[i])),  # (3,64,64) normalised
            "mask": files.read_mask(self.mask_files[i]),                        # (1,64,64) 1 = known
            "target": self.target(i),                                           # (3,64,64) or None
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
