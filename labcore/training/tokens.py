"""The token cache of stage 2: every image encoded once by the frozen VQGAN.

A tokens file holds ``{train (N,256) long, train_flip (N,256) long, val (M,256) long,
num_codebook_vectors, tokenizer_sha256, ...}``: (16*16 = 256) codebook ids per image, and the
ids of each training image's mirror image for the flip augmentation. A training step then only
runs the transformer. The default file (emoji64 through the bundled tokenizer) is made on first
use and made again when the bundled tokenizer changes (its sha256 is recorded).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from labcore.data import emoji64_dataset, normalization_for
from labcore.model_files import load_config_normalization, load_vqgan
from labcore.paths import BUNDLED_VQGAN_CONFIG, BUNDLED_VQGAN_WEIGHTS, DEFAULT_TOKENS, EMOJI64_DIR, REPO_ROOT
from labcore.runtime import atomic_save, load_file, note, pick_device


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@torch.no_grad()
def make_tokens(out_path: str | Path = DEFAULT_TOKENS, vqgan_config: str | Path | None = None,
                vqgan_weights: str | Path | None = None, data_root: str | Path = EMOJI64_DIR,
                flip: bool = True, limit: int | None = None, batch_size: int = 64,
                device: str = "auto", progress: bool = True) -> dict:
    """Encode the train and val images once with the frozen VQGAN (bundled by default) and save
    ``{train (N,256) long, train_flip (N,256) long, val (M,256) long, num_codebook_vectors,
    tokenizer_sha256, ...}`` atomically. ``limit`` keeps the first images of each split (tests)."""
    if (vqgan_config is None) != (vqgan_weights is None):
        raise ValueError("give both vqgan_config and vqgan_weights, or neither (the bundled tokenizer)")
    vqgan_config = Path(vqgan_config or BUNDLED_VQGAN_CONFIG)
    vqgan_weights = Path(vqgan_weights or BUNDLED_VQGAN_WEIGHTS)
    vqgan = load_vqgan(vqgan_config, vqgan_weights, device=pick_device(device))
    out: dict = {"num_codebook_vectors": int(vqgan.config.num_codebook_vectors),
                 "tokenizer_sha256": file_sha256(vqgan_weights), "tokenizer_config": str(vqgan_config),
                 "data_root": str(data_root),
                 "normalization": _normalization_record(getattr(vqgan, "normalization", None))}
    for split in ("train", "val"):
        out[split], flipped = encode_split(vqgan, split, data_root, flip and split == "train", limit, batch_size,
                                           progress)
        if flipped is not None:
            out["train_flip"] = flipped
    atomic_save(out, out_path)
    return out


@torch.no_grad()
def encode_split(vqgan, split: str, data_root: str | Path = EMOJI64_DIR, flip: bool = False,
                 limit: int | None = None, batch_size: int = 64, progress: bool = True):
    """Token ids (N, 256) of one split's images (and of their mirror images when ``flip``, else None),
    encoded by ``vqgan`` on its own device."""
    norm = normalization_for(getattr(vqgan, "normalization", None), data_root, split)  # the tokenizer's own
    dataset = emoji64_dataset(split, root=data_root, normalization=norm)
    if limit is not None:
        dataset = Subset(dataset, range(min(limit, len(dataset))))
    device = next(vqgan.parameters()).device
    plain, flipped = [], []
    for images in tqdm(DataLoader(dataset, batch_size=batch_size), desc=f"tokens {split}", disable=not progress):
        images = images.to(device)                                                    # (B, 3, 64, 64)
        plain.append(vqgan.encode_to_indices(images).flatten(1).cpu())                 # (B, 256)
        if flip:
            flipped.append(vqgan.encode_to_indices(images.flip(-1)).flatten(1).cpu())  # (B, 256)
    return torch.cat(plain).long(), (torch.cat(flipped).long() if flip else None)


def _normalization_record(norm) -> dict | None:
    """A tokenizer's recorded Normalization as a tokens file stores it (None: the folder's own)."""
    return None if norm is None else {"mean": list(norm.mean), "std": list(norm.std)}


def load_tokens(path: str | Path) -> dict:
    """A tokens file: the dict written by ``make_tokens``, or a plain (N, 256) long tensor
    (training tokens only: no validation, no flips)."""
    data = load_file(path, what="tokens file")
    if torch.is_tensor(data):
        data = {"train": data}
    if not isinstance(data, dict) or "train" not in data:
        raise ValueError(f"tokens file {path}: expected a dict with 'train' (and 'val', 'train_flip') "
                         "tensors or a plain (N, 256) tensor; make one with `labcore train --make-tokens`")
    for key in ("train", "train_flip", "val"):
        t = data.get(key)
        if t is None:
            continue
        if not torch.is_tensor(t) or t.dim() != 2 or t.is_floating_point():
            raise ValueError(f"tokens file {path}: '{key}' must be an integer tensor (N, 256), got "
                             f"{getattr(t, 'shape', type(t).__name__)}")
        data[key] = t.long()
    if "train_flip" in data and data["train_flip"].shape != data["train"].shape:
        raise ValueError(f"tokens file {path}: train_flip {tuple(data['train_flip'].shape)} does not match "
                         f"train {tuple(data['train'].shape)}")
    return data


def _still_current(stored: dict) -> bool:
    """Made by the bundled tokenizer as it is now: same weights, same recorded normalisation."""
    current = _normalization_record(load_config_normalization(BUNDLED_VQGAN_CONFIG))
    return (stored.get("tokenizer_sha256") == file_sha256(BUNDLED_VQGAN_WEIGHTS)
            and stored.get("normalization", "missing") == current)


def ensure_tokens(path: str | Path | None, progress: bool = True) -> Path:
    """The default tokens file (bundled tokenizer on emoji64), made on first use and remade when
    the bundled tokenizer changed; an explicit path must exist."""
    if path is not None and Path(path) != DEFAULT_TOKENS:
        if not Path(path).is_file():
            raise FileNotFoundError(f"tokens file not found: {path} (make one with `labcore train --make-tokens "
                                    f"--tokens {path}`)")
        return Path(path)
    path = DEFAULT_TOKENS
    if path.is_file():
        stored = load_file(path, "tokens file")
        if not isinstance(stored, dict) or not BUNDLED_VQGAN_WEIGHTS.is_file() or _still_current(stored):
            return path
        note(f"the bundled tokenizer (or its normalisation) changed since {path.relative_to(REPO_ROOT)} was made: "
             "encoding the images again")
    elif not BUNDLED_VQGAN_WEIGHTS.is_file():
        raise FileNotFoundError(f"no tokens file ({path}) and no bundled tokenizer ({BUNDLED_VQGAN_WEIGHTS}) "
                                "to make it")
    note(f"encoding emoji64 train/val with the bundled tokenizer -> {path.relative_to(REPO_ROOT)} (once)")
    make_tokens(path, progress=progress)
    return path
