"""FID (Fréchet Inception Distance) with pytorch-fid's Inception, offline.

The lab is scored like the course scores it: pytorch-fid's ``InceptionV3`` (pool3, 2048 features,
bilinear resize to 299, inputs scaled to [-1, 1]) and its ``calculate_frechet_distance``.

The network and its offline weights (a local file, no download) come from ``labcore.inception``;
this module is what FID is: features, their Gaussian statistics, the distance, reference files.

Speed (issue #13):
- The trace term tr sqrt(S1 S2) is computed exactly without a 2048x2048 ``sqrtm``: with n < 2048
  images, S = A^T A for the centred activations A = (X - mean) / sqrt(n - 1) (n x 2048), and the
  eigenvalues of S1 S2 are the squared singular values of A1 A2^T, so tr sqrt(S1 S2) is the nuclear
  norm of that n1 x n2 matrix. ``trace_sqrt_product`` picks the cheapest exact route by n; pytorch-fid's
  ``calculate_frechet_distance`` stays as the reference (``pytorch_fid_distance``, used by the tests).
- Inception runs with its batch norms folded into the convolutions (``inception.fold_batch_norms``),
  channels-last, under ``inference_mode`` (``fast_inception``; within 1e-4 of pytorch-fid's module).

Reference activations (not only mu, sigma) of a ground-truth set are kept in ``.npz`` files:
- shipped beside the set (``reference_path``: ``ground_truth/`` -> ``ground_truth.inception.npz``,
  ``test_gt.csv`` -> ``test_gt.inception.npz``), written by ``labcore fid --write-reference SOURCE``,
  used only while the set's content hash matches the one recorded in the file (otherwise a warning
  and a fresh computation);
- otherwise computed once and cached as ``results/fid_stats/<name>-<hash>.inception.npz``.
"""

from __future__ import annotations

import copy
import hashlib
import os
import sys
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from labcore.data import list_images, read_rgb_array, read_test_gt_csv
from labcore.inception import build_inception, fold_batch_norms
from labcore.paths import RESULTS_DIR
from labcore.runtime import atomic_write, pick_device

DEFAULT_CACHE_DIR = RESULTS_DIR / "fid_stats"
RELIABLE_SAMPLES = 2048  # below this many images FID is biased (upwards) and noisy

weights_source: str | None = None  # which weights the Inception uses; set when it is first built
_models: dict[str, torch.nn.Module] = {}  # device -> pytorch-fid's InceptionV3, built once per process
_fast_models: dict[str, torch.nn.Module] = {}  # device -> the same, batch norms folded, channels-last


# ----------------------------------------------------------------------------- the network

def get_inception(device: str | torch.device = "cpu") -> torch.nn.Module:
    """pytorch-fid's InceptionV3 on ``device``, unchanged, built once per process; sets ``weights_source``."""
    global weights_source
    key = str(torch.device(device))
    if key not in _models:
        if _models:  # already built for another device
            model = copy.deepcopy(next(iter(_models.values())))
        else:
            model, weights_source, path = build_inception()
            print(f"FID weights: {weights_source} ({path.name})", file=sys.stderr)
        _models[key] = model.to(device)
    return _models[key]


def fast_inception(device: str | torch.device = "cpu") -> torch.nn.Module:
    """What ``activations`` runs: pytorch-fid's InceptionV3 with its batch norms folded
    (``fold_batch_norms``) and channels-last weights (oneDNN's preferred layout on CPUs, and
    tensor cores' on GPUs); within 1e-4 of ``get_inception`` (tests/test_fid.py). With
    ``inference_mode`` it takes ~1.65x fewer CPU seconds per image than the plain module under
    ``no_grad`` (``labcore bench fid``; measured on a shared 2-core CPU)."""
    key = str(torch.device(device))
    if key not in _fast_models:
        _fast_models[key] = fold_batch_norms(get_inception(device)).to(memory_format=torch.channels_last)
    return _fast_models[key]


# ----------------------------------------------------------------------------- images in

def read_folder(folder: str | os.PathLike) -> torch.Tensor:
    """All images of ``folder`` as a uint8 tensor (N, 3, H, W), RGB, sorted by file name
    (``data.list_images``: a file that is not an image is an error that names it)."""
    images, size = [], None
    for p in list_images(folder):
        array = read_rgb_array(p)  # (H, W, 3) uint8, like pytorch-fid's loader
        if size is None:
            size = array.shape
        elif array.shape != size:
            raise ValueError(f"{p}: size {array.shape[1]}x{array.shape[0]} differs from the folder's "
                             f"first image ({size[1]}x{size[0]}); FID needs one image size")
        images.append(torch.from_numpy(array).permute(2, 0, 1))  # (3, H, W)
    return torch.stack(images)  # (N, 3, H, W)


def read_gt_csv(path: str | os.PathLike) -> torch.Tensor:
    """The course's ``test_gt.csv`` (``data.read_test_gt_csv``, any square size) as uint8 (N, 3, H, W)."""
    images = read_test_gt_csv(path, image_size=None)  # (N, H, W, 3)
    return images.permute(0, 3, 1, 2).contiguous()    # (N, 3, H, W)


def read_images(source: str | os.PathLike) -> torch.Tensor:
    """A folder of images or a ``test_gt.csv``, as uint8 (N, 3, H, W)."""
    source = Path(source)
    return read_gt_csv(source) if source.suffix.lower() == ".csv" else read_folder(source)


# ----------------------------------------------------------------------------- activations

@torch.inference_mode()
def activations(images: torch.Tensor, batch_size: int = 50, device: str | torch.device = "auto",
                model: torch.nn.Module | None = None, desc: str = "FID features", progress: bool = True) -> np.ndarray:
    """Inception pool3 features (N, 2048) of uint8 images or floats in [0, 1], (N, 3, H, W).
    ``model`` defaults to ``fast_inception`` (pass ``get_inception(device)`` for pytorch-fid's
    module as is); ``desc`` labels the progress bar, ``progress=False`` hides it."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    device = pick_device(device) if isinstance(device, str) else device
    model = fast_inception(device) if model is None else model
    features = np.empty((len(images), 2048), dtype=np.float64)
    with tqdm(total=len(images), desc=desc, unit="image", leave=False, disable=not progress) as bar:
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].to(device)
            batch = batch.float() / 255 if batch.dtype == torch.uint8 else batch.float()  # (B, 3, H, W) in [0, 1]
            batch = batch.contiguous(memory_format=torch.channels_last)  # (B, 3, H, W), NHWC in memory
            pool3 = model(batch)[0]  # (B, 2048, 1, 1); InceptionV3 resizes to 299 and scales to [-1, 1]
            features[start:start + len(batch)] = pool3.flatten(1).cpu().numpy()
            bar.update(len(batch))
    return features


# ----------------------------------------------------------------------------- statistics

@dataclass
class Stats:
    """Gaussian fit of the pool3 features of a set of images, and the features themselves when
    known (they make the Fréchet distance cheap below 2048 images: ``trace_sqrt_product``)."""
    mu: np.ndarray     # (2048,)
    sigma: np.ndarray  # (2048, 2048)
    count: int         # number of images (0 when unknown, e.g. an .npz from pytorch-fid)
    features: np.ndarray | None = None  # (count, 2048) float64, None for an .npz of mu, sigma only


def stats_of_activations(features: np.ndarray) -> Stats:
    """mu, sigma (float64) of features (N, 2048); keeps the features."""
    features = np.asarray(features, dtype=np.float64)  # (N, 2048)
    if len(features) < 2:
        raise ValueError(f"{len(features)} image(s); FID needs at least 2 (a covariance)")
    return Stats(mu=features.mean(axis=0), sigma=np.cov(features, rowvar=False), count=len(features),
                 features=features)


def compute_stats(source: str | os.PathLike | torch.Tensor, batch_size: int = 50,
                  device: str | torch.device = "auto", progress: bool = True) -> Stats:
    """Stats of a folder, a ``test_gt.csv``, or a tensor of images (no caching)."""
    name = "tensor" if isinstance(source, torch.Tensor) else str(source)
    images = source if isinstance(source, torch.Tensor) else read_images(source)
    if len(images) < 2:
        raise ValueError(f"{name}: {len(images)} image(s); FID needs at least 2 (a covariance)")
    return stats_of_activations(activations(images, batch_size, device, progress=progress))


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
        weights=weights_source or ""))


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
        with open(source, "rb") as lines:
            return max(sum(1 for line in lines if line.strip()) - 1, 0)  # minus the header row
    return len(list_images(source))


def check_same_count(n_pred: int, n_ref: int | None, pred: object, ref: object) -> None:
    """FID compares two sets of the same size (the bias of small sets depends on it): a
    prediction count other than the reference's is an error naming both."""
    if n_ref and n_pred != n_ref:
        raise ValueError(f"{n_pred} predictions in {pred} but {n_ref} reference images in {ref}: "
                         "FID compares sets of the same size (one prediction per test image)")


def write_reference(source: str | os.PathLike, out: str | os.PathLike | None = None, batch_size: int = 50,
                    device: str | torch.device = "auto") -> Path:
    """Compute the activations of a reference set (folder or ``test_gt.csv``) and write them to
    ``out`` (default ``reference_path(source)``, where ``load_or_compute_stats`` looks first)."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"reference not found: {source}")
    key = content_hash(source)
    stats = compute_stats(source, batch_size, device)
    return save_activations(out or reference_path(source), stats.features, key, source.name)


def shipped_activations(source: Path, key: str) -> np.ndarray | None:
    """The features in ``reference_path(source)`` if that file exists and was made from exactly
    these images (same content hash); a stale file is a warning, not an error: FID is still
    computed right, only slower."""
    path = reference_path(source)
    if not path.is_file():
        return None
    features, recorded = read_activation_file(path)
    if recorded != key:
        warnings.warn(f"{path} was computed from other images than {source} (content hash {recorded[:12]} != "
                      f"{key[:12]}): ignoring it and computing the activations; refresh it with "
                      f"`labcore fid --write-reference {source}`", stacklevel=3)
        return None
    return features


def load_or_compute_stats(source: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                          batch_size: int = 50, device: str | torch.device = "auto",
                          limit: int | None = None) -> Stats:
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
            features = compute_stats(source, batch_size, device).features
            save_activations(cache, features, key, str(source.resolve()))
    return stats_of_activations(features if limit is None else features[:limit])


# ----------------------------------------------------------------------------- Fréchet distance

def _sum_sqrt_eigenvalues(matrix: np.ndarray) -> float:
    """Sum of the square roots of the eigenvalues of a symmetric PSD matrix (rounding makes
    the zero ones slightly negative: clipped)."""
    eigenvalues = np.linalg.eigvalsh((matrix + matrix.T) / 2)
    return float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())


def _low_rank_factor(stats: Stats) -> np.ndarray | None:
    """A with A^T A = sigma, A = centred features / sqrt(n - 1) (n x 2048), when it has fewer
    rows than sigma has (n < 2048); else None."""
    if stats.features is None or len(stats.features) >= stats.sigma.shape[0]:
        return None
    return (stats.features - stats.mu) / np.sqrt(len(stats.features) - 1)  # (n, 2048)


def trace_sqrt_product(a: Stats, b: Stats) -> float:
    """tr sqrt(Sa Sb), exactly (float64), by the cheapest route the statistics allow. Sa Sb has
    the same non-zero eigenvalues as A Sb A^T for any factor Sa = A^T A, so:
    - both from n < 2048 images (factors A, B): the nuclear norm of A B^T (SVD, na x nb);
    - one of them: the eigenvalues of A Sb A^T (n x n);
    - neither (n >= 2048, or mu and sigma only): A = Sa^1/2 by ``eigh``, the eigenvalues of
      Sa^1/2 Sb Sa^1/2 (2048 x 2048, symmetric: no complex ``sqrtm``)."""
    fa, fb = _low_rank_factor(a), _low_rank_factor(b)
    if fa is not None and fb is not None:
        return float(np.linalg.svd(fa @ fb.T, compute_uv=False).sum())  # (na, nb) -> singular values
    if fa is None and fb is not None:  # tr sqrt(Sa Sb) = tr sqrt(Sb Sa)
        (fa, a), (fb, b) = (fb, b), (fa, a)
    if fa is None:
        w, v = np.linalg.eigh(a.sigma)                                  # (2048,), (2048, 2048)
        fa = (v * np.sqrt(np.clip(w, 0, None))) @ v.T                   # (2048, 2048) Sa^1/2
    return _sum_sqrt_eigenvalues(fa @ b.sigma @ fa.T)                   # (n, n) or (2048, 2048)


def _warn_if_few(a: Stats, b: Stats) -> None:
    counts = [s.count for s in (a, b) if s.count]
    if counts and min(counts) < RELIABLE_SAMPLES:
        warnings.warn(f"FID from {min(counts)} images: below {RELIABLE_SAMPLES} samples FID is biased "
                      "upwards; compare only scores computed on the same number of images", stacklevel=3)


def frechet_distance(a: Stats, b: Stats) -> float:
    """The Fréchet distance |mu_a - mu_b|^2 + tr(Sa + Sb - 2 sqrt(Sa Sb)) (pytorch-fid's formula),
    its trace term exact and cheap (``trace_sqrt_product``); warns below 2048 images."""
    _warn_if_few(a, b)
    diff = a.mu - b.mu  # (2048,)
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2 * trace_sqrt_product(a, b))


def pytorch_fid_distance(a: Stats, b: Stats) -> float:
    """pytorch-fid's own ``calculate_frechet_distance`` (a 2048x2048 ``scipy.linalg.sqrtm``:
    ~25 s on an idle 2-core CPU): the reference ``frechet_distance`` is tested against."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    _warn_if_few(a, b)
    with warnings.catch_warnings():  # pytorch-fid 0.3.0 passes sqrtm(disp=False), deprecated in SciPy 1.17
        warnings.filterwarnings("ignore", message="The `disp` argument is deprecated", category=DeprecationWarning)
        return float(calculate_frechet_distance(a.mu, a.sigma, b.mu, b.sigma))


def fid_between(pred: str | os.PathLike | torch.Tensor, ref: str | os.PathLike | torch.Tensor,
                batch_size: int = 50, device: str | torch.device = "auto",
                cache_dir: str | os.PathLike | None = None) -> float:
    """FID of predictions (folder or tensor) against a reference: a folder, a ``test_gt.csv``,
    an ``.npz`` of stats (reference stats are cached) or a tensor. Both must hold as many
    images (checked before Inception runs)."""
    images = pred if isinstance(pred, torch.Tensor) else read_images(pred)           # (N, 3, H, W)
    n_ref = len(ref) if isinstance(ref, torch.Tensor) else count_images(ref)
    check_same_count(len(images), n_ref, "tensor" if isinstance(pred, torch.Tensor) else pred,
                     "tensor" if isinstance(ref, torch.Tensor) else ref)
    ref_stats = (compute_stats(ref, batch_size, device) if isinstance(ref, torch.Tensor)
                 else load_or_compute_stats(ref, cache_dir, batch_size, device))
    return frechet_distance(compute_stats(images, batch_size, device), ref_stats)
