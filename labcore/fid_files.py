"""FID of files: images read from folders and ``test_gt.csv``, reference activations kept in
``.npz`` files, and ``fid_of_folder``, the one way the lab scores a set of predictions
(``labcore fid``, ``make demo``, ``labcore experiment``, notebook 04). What FID is: ``labcore.fid``.

Reference activations (not only mu, sigma) of a ground-truth set are kept in ``.npz`` files:
- shipped beside the set (``reference_path``: ``ground_truth/`` -> ``ground_truth.inception.npz``,
  ``test_gt.csv`` -> ``test_gt.inception.npz``), written by ``labcore fid --write-reference SOURCE``,
  used only while the set's content hash matches the one recorded in the file (otherwise a note
  and a fresh computation);
- otherwise computed once and cached as ``results/fid_stats/<name>-<hash>.inception.npz``.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from labcore import fid, inception
from labcore.csv_tables import count_csv_rows
from labcore.dataset_files import list_images, read_rgb_array, read_test_gt_csv
from labcore.fid import Stats, stats_of_activations
from labcore.paths import RESULTS_DIR
from labcore.runtime import atomic_write, note

DEFAULT_CACHE_DIR = RESULTS_DIR / "fid_stats"


# ----------------------------------------------------------------------------- images in

def read_folder(folder: str | os.PathLike, limit: int | None = None) -> torch.Tensor:
    """The images of ``folder`` (its first ``limit``) as a uint8 tensor (N, 3, H, W), RGB, sorted
    by file name (``list_images``: a file that is not an image is an error that names it)."""
    images, size = [], None
    for p in list_images(folder)[:limit]:
        array = read_rgb_array(p)  # (H, W, 3) uint8, like pytorch-fid's loader
        if size is None:
            size = array.shape
        elif array.shape != size:
            raise ValueError(f"{p}: size {array.shape[1]}x{array.shape[0]} differs from the folder's "
                             f"first image ({size[1]}x{size[0]}); FID needs one image size")
        images.append(torch.from_numpy(array).permute(2, 0, 1))  # (3, H, W)
    return torch.stack(images)  # (N, 3, H, W)


def read_gt_csv(path: str | os.PathLike) -> torch.Tensor:
    """The course's ``test_gt.csv`` (``read_test_gt_csv``, any square size) as uint8 (N, 3, H, W)."""
    images = read_test_gt_csv(path, image_size=None)  # (N, H, W, 3)
    return images.permute(0, 3, 1, 2).contiguous()    # (N, 3, H, W)


def read_images(source: str | os.PathLike, limit: int | None = None) -> torch.Tensor:
    """A folder of images or a ``test_gt.csv`` (its first ``limit`` images), as uint8 (N, 3, H, W)."""
    source = Path(source)
    return read_gt_csv(source)[:limit] if source.suffix.lower() == ".csv" else read_folder(source, limit)


def compute_stats(source: str | os.PathLike | torch.Tensor, batch_size: int = 50,
                  device: str | torch.device = "auto", progress: bool = True) -> Stats:
    """Stats of a folder, a ``test_gt.csv``, or a tensor of images (no caching)."""
    name = "tensor" if isinstance(source, torch.Tensor) else str(source)
    images = source if isinstance(source, torch.Tensor) else read_images(source)
    if len(images) < 2:
        raise ValueError(f"{name}: {len(images)} image(s); FID needs at least 2 (a covariance)")
    return stats_of_activations(fid.activations(images, batch_size, device, progress=progress))


def content_hash(source: str | os.PathLike) -> str:
    """sha256 of the sorted file names and contents of a folder, or of one file's bytes."""
    source = Path(source)
    digest = hashlib.sha256()
    for p in list_images(source) if source.is_dir() else [source]:
        digest.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return digest.hexdigest()


# ----------------------------------------------------------------------------- activation files

def reference_path(source: str | os.PathLike) -> Path:
    """Where a set's shipped activations live: beside it, ``ground_truth/`` ->
    ``ground_truth.inception.npz``, ``test_gt.csv`` -> ``test_gt.inception.npz``."""
    source = Path(source)
    return source.parent / f"{source.name if source.is_dir() else source.stem}.inception.npz"


def save_activations(path: str | os.PathLike, features: np.ndarray, content_sha256: str, source: str) -> Path:
    """Write features (N, 2048) as float32 (what Inception computes: lossless) with the content
    hash of the images they came from, atomically (temporary file, fsync, rename)."""
    return atomic_write(path, lambda f: np.savez_compressed(
        f, features=np.asarray(features, dtype=np.float32), content_sha256=content_sha256, source=source,
        weights=inception.weights_source or ""))


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (allow_pickle=False: arrays and strings only). A truncated or
    foreign file fails inside NumPy with BadZipFile, EOFError, zlib or pickle errors that do not
    say which file: here it is one ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FID statistics file not found: {path}")
    try:
        loaded = np.load(path)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with loaded as f:
            return {key: f[key] for key in f.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(f"{path}: not a readable .npz file ({type(err).__name__}: {err}); "
                         "delete it or write it again (labcore fid --write-reference)") from None


def read_activation_file(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """(features (N, 2048) float64, content hash) of a file written by ``save_activations``."""
    f = read_npz(path)
    if "features" not in f or "content_sha256" not in f:
        raise ValueError(f"{path}: not an activations file (needs 'features' and 'content_sha256')")
    return _features(f["features"], path), str(f["content_sha256"])


def _features(features: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    if features.ndim != 2 or features.shape[1] != 2048:
        raise ValueError(f"{path}: 'features' has shape {features.shape}, expected (N, 2048)")
    return features.astype(np.float64)  # (N, 2048)


def load_stats(path: str | os.PathLike) -> Stats:
    """Stats from an ``.npz``: labcore's activations (``features``) or ``mu`` and ``sigma``
    (pytorch-fid's ``--save-stats`` output)."""
    f = read_npz(path)
    if "features" in f:
        return stats_of_activations(_features(f["features"], path))
    if "mu" not in f or "sigma" not in f:
        raise ValueError(f"{path}: an FID stats .npz needs 'mu' and 'sigma' arrays (or labcore's "
                         f"'features'), found {list(f)}")
    return Stats(mu=f["mu"], sigma=f["sigma"], count=int(f["count"]) if "count" in f else 0)


def count_images(source: str | os.PathLike) -> int | None:
    """How many images a set holds, without running Inception: the files of a folder, the data
    lines of a ``test_gt.csv``, the rows (or recorded count) of an ``.npz``; None when unknown."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"reference not found: {source}")
    if source.suffix.lower() == ".npz":
        f = read_npz(source)
        return len(f["features"]) if "features" in f else int(f["count"]) if "count" in f else None
    if source.suffix.lower() == ".csv":
        return count_csv_rows(source)
    return len(list_images(source))


def write_reference(source: str | os.PathLike, out: str | os.PathLike | None = None, batch_size: int = 50,
                    device: str | torch.device = "auto", progress: bool = True) -> Path:
    """Compute the activations of a reference set (folder or ``test_gt.csv``) and write them to
    ``out`` (default ``reference_path(source)``, where ``load_or_compute_stats`` looks first)."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"reference not found: {source}")
    key = content_hash(source)
    stats = compute_stats(source, batch_size, device, progress)
    return save_activations(out or reference_path(source), stats.features, key, source.name)


def shipped_activations(source: Path, key: str) -> np.ndarray | None:
    """The features in ``reference_path(source)`` if that file exists and was made from exactly
    these images (same content hash); a stale file is a note, not an error: FID is still
    computed right, only slower."""
    path = reference_path(source)
    if not path.is_file():
        return None
    features, recorded = read_activation_file(path)
    if recorded != key:
        note(f"{path} was computed from other images than {source} (content hash {recorded[:12]} != "
             f"{key[:12]}): ignoring it and computing the activations; refresh it with "
             f"`labcore fid --write-reference {source}`")
        return None
    return features


def load_or_compute_stats(source: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                          batch_size: int = 50, device: str | torch.device = "auto",
                          limit: int | None = None, progress: bool = True) -> Stats:
    """Stats of a reference set (of its first ``limit`` images, in sorted order, when given): an
    ``.npz`` is read as is; for a folder or ``test_gt.csv`` the shipped activations beside it
    (``reference_path``) are used when their content hash matches, else activations computed once
    and cached as ``<cache_dir>/<name>-<content hash>.inception.npz``."""
    source = Path(source)
    if source.suffix.lower() == ".npz":
        stats = load_stats(source)
        if limit is not None and stats.features is None:
            raise ValueError(f"{source}: has mu and sigma only, cannot take the statistics of its first {limit} images")
        return stats if limit is None else stats_of_activations(stats.features[:limit])
    if not source.exists():
        raise FileNotFoundError(f"reference not found: {source}")
    key = content_hash(source)
    features = shipped_activations(source, key)
    if features is None:
        cache = Path(cache_dir or DEFAULT_CACHE_DIR) / f"{source.stem}-{key[:16]}.inception.npz"
        if cache.is_file():
            features = read_activation_file(cache)[0]
        else:
            features = compute_stats(source, batch_size, device, progress).features
            save_activations(cache, features, key, str(source.resolve()))
    return stats_of_activations(features if limit is None else features[:limit])


# ----------------------------------------------------------------------------- FID of a folder

def check_same_count(n_pred: int, n_ref: int | None, pred: object, ref: object) -> None:
    """FID compares two sets of the same size (the bias of small sets depends on it): a
    prediction count other than the reference's is an error naming both."""
    if n_ref and n_pred != n_ref:
        raise ValueError(f"{n_pred} predictions in {pred} but {n_ref} reference images in {ref}: "
                         "FID compares sets of the same size (one prediction per test image)")


@dataclass
class FidResult:
    fid: float
    n_pred: int  # images scored
    n_ref: int   # reference images (0 when an .npz of mu, sigma does not say)


def fid_of_folder(pred: str | os.PathLike | torch.Tensor, ref: str | os.PathLike | torch.Tensor | Stats,
                  batch_size: int = 50, device: str | torch.device = "auto",
                  cache_dir: str | os.PathLike | None = None, limit: int | None = None,
                  progress: bool = True, note_few: bool = True) -> FidResult:
    """FID of predictions (a folder, or a tensor (N, 3, H, W) of uint8 or floats in [0, 1])
    against a reference: a folder, a ``test_gt.csv``, an ``.npz`` (their statistics cached:
    ``load_or_compute_stats``), a tensor, or ``Stats`` already made. ``limit``: the first
    ``limit`` images (sorted by name) of a folder or file. Both sets must hold as many images,
    checked before Inception runs; ``note_few``: see ``fid.frechet_distance``."""
    images = pred[:limit] if isinstance(pred, torch.Tensor) else read_images(pred, limit)  # (N, 3, H, W)
    if isinstance(ref, (Stats, torch.Tensor)):
        n_ref = ref.count if isinstance(ref, Stats) else len(ref[:limit])
    else:
        n_ref = count_images(ref)
        n_ref = n_ref if limit is None or n_ref is None else min(n_ref, limit)
    ref_name = "tensor" if isinstance(ref, torch.Tensor) else "reference statistics" if isinstance(ref, Stats) else ref
    check_same_count(len(images), n_ref, "tensor" if isinstance(pred, torch.Tensor) else pred, ref_name)
    if isinstance(ref, torch.Tensor):
        ref = compute_stats(ref[:limit], batch_size, device, progress)
    elif not isinstance(ref, Stats):
        ref = load_or_compute_stats(ref, cache_dir, batch_size, device, limit, progress)
    stats = compute_stats(images, batch_size, device, progress)
    return FidResult(fid.frechet_distance(stats, ref, note_few), stats.count, ref.count)
