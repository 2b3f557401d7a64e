"""FID, the Fréchet Inception Distance (Heusel et al. 2017), as the course scores the lab.

Each image goes through Inception v3 to its 2048 pool3 features (pytorch-fid's ``InceptionV3``:
bilinear resize to 299, inputs scaled to [-1, 1]). A set of images is summarised by the Gaussian
of its features, mean mu and covariance Sigma, and two sets are compared by the Fréchet distance
of their Gaussians:

    FID = |mu_a - mu_b|^2 + tr(Sigma_a + Sigma_b - 2 (Sigma_a Sigma_b)^1/2)

Lower is better; 0 means identical Gaussians. Estimated from N images it is biased upwards, the
more the smaller N: the bias shrinks as N grows but never vanishes (notebook 04 shows it on two halves
of the real test set), so compare only scores computed on the same images.

The network and its offline weights are ``labcore.inception``; reading images, reference files
and caches, and FID of a folder of predictions, are ``labcore.fid_files``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from labcore import inception
from labcore.runtime import note, pick_device
from labcore.validate import integer

RELIABLE_SAMPLES = 2048  # fewer images than features: a low-rank covariance, FID most biased; labcore notes it


@torch.inference_mode()
def activations(images: torch.Tensor, batch_size: int = 50, device: str | torch.device = "auto",
                model: torch.nn.Module | None = None, desc: str = "FID features", progress: bool = True) -> np.ndarray:
    """Inception pool3 features (N, 2048) of uint8 images or floats in [0, 1], (N, 3, H, W).
    ``model`` defaults to ``inception.fast_inception`` (pass ``inception.get_inception(device)``
    for pytorch-fid's module as is); ``desc`` labels the progress bar, ``progress=False`` hides it."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
    batch_size = integer("batch_size", batch_size, 1)
    device = pick_device(device) if isinstance(device, str) else device
    model = inception.fast_inception(device) if model is None else model
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


def _sum_sqrt_eigenvalues(matrix: np.ndarray, known_zeros: int = 0) -> float:
    """Sum of the square roots of the eigenvalues of a symmetric PSD matrix, less its
    ``known_zeros`` smallest (eigenvalues the rank says are 0: rounding makes them +-1e-17, whose
    square roots, 1e-9, are not small). Negative ones from rounding are clipped to 0."""
    eigenvalues = np.linalg.eigvalsh((matrix + matrix.T) / 2)[known_zeros:]  # ascending
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
        return _sum_sqrt_eigenvalues(fa @ b.sigma @ fa.T)               # (2048, 2048)
    return _sum_sqrt_eigenvalues(fa @ b.sigma @ fa.T, known_zeros=1)    # (n, n) of rank <= n - 1 (centred rows)


def note_if_few(count: int, advice: str = "compare only scores computed on the same number of images") -> None:
    """The small-sample caveat, as a note, when ``count`` (0 = unknown) is below 2048 images."""
    if count and count < RELIABLE_SAMPLES:
        note(f"FID from {count} images is biased upwards (the fewer the images, the more; more images shrink "
             f"the bias but never remove it); {advice}")


def frechet_distance(a: Stats, b: Stats, note_few: bool = True) -> float:
    """The Fréchet distance |mu_a - mu_b|^2 + tr(Sa + Sb - 2 sqrt(Sa Sb)) (pytorch-fid's formula),
    its trace term exact and cheap (``trace_sqrt_product``); notes below 2048 images unless
    ``note_few=False`` (a caller that said it once already, e.g. the experiment's table)."""
    if note_few:
        note_if_few(min([s.count for s in (a, b) if s.count], default=0))
    diff = a.mu - b.mu  # (2048,)
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2 * trace_sqrt_product(a, b))


def pytorch_fid_distance(a: Stats, b: Stats) -> float:
    """pytorch-fid's own ``calculate_frechet_distance`` (a 2048x2048 ``scipy.linalg.sqrtm``:
    ~25 s on an idle 2-core CPU): the reference ``frechet_distance`` is tested against."""
    from pytorch_fid.fid_score import calculate_frechet_distance  # lazy: imports SciPy, for the tests only

    note_if_few(min([s.count for s in (a, b) if s.count], default=0))
    with warnings.catch_warnings():  # pytorch-fid 0.3.0 passes sqrtm(disp=False), deprecated in SciPy 1.17
        warnings.filterwarnings("ignore", message="The `disp` argument is deprecated", category=DeprecationWarning)
        return float(calculate_frechet_distance(a.mu, a.sigma, b.mu, b.sigma))
