"""``make demo``: the lab's main job on the bundled data and weights.

Inpaint the bundled emoji64 test set with the bundled tokenizer + transformer (the course's default
decoding with paste known, ``DEMO_SETTING`` below), score it with FID against the ground truth, and
write ``results/``:

- the course's output folders: ``test_results/`` for every test image, and the per-step strips
  ``mask_scheduling/``, ``imga/`` for the first ``DEMO_STRIPS`` images (each strip costs T extra
  VQGAN decodes per image, most of a CPU's time; ``labcore inpaint`` writes them for every image);
- ``summary_grid.png``: masked input / inpainted / ground truth for a few test images;
- ``summary.json``: FID, the setting, the weights used, the time of each phase, the ETA it
  printed at the start, and peak memory.

The ground truth's Inception activations ship with the data
(``data/emoji64/emoji/ground_truth.inception.npz``, checked against the images by content hash),
so the demo runs Inception on its own outputs only. At the start it times a few images of each
phase (inpainting, Inception) and prints an ETA; a progress bar follows each phase.

Without a bundled transformer (a checkout in the middle of training it) the demo says so and
writes a grid of the dataset instead.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.functional import to_tensor  # torchvision.io's decoders are deprecated
from torchvision.utils import make_grid, save_image

from . import fid, fid_files, inception
from .data import InpaintingTestSet, emoji64_dataset, latent_mask_from_pixels, normalization_for
from .decoding import DecodingSettings
from .inpaint import inpaint_test_set
from .model_files import load_bundled_maskgit
from .paths import BUNDLED_TRANSFORMER_WEIGHTS, BUNDLED_VQGAN_WEIGHTS, EMOJI64_DIR, RESULTS_DIR, repo_relative
from .runtime import atomic_write_text, note, peak_rss_mb, pick_device

# The course's default decoding (argmax tokens, cosine, T = 8) with the known pixels pasted back. In
# `labcore experiment` on all 750 test images (README "Results", docs/results/experiments.md) every argmax
# setting lies within seed noise of it (76.8-77.9 FID without paste known, one-shot 77.38; the seed-0 best,
# linear T = 4, averages 77.39 +- 0.54 over 3 seeds); paste known is what beats the baselines (46.78 +- 0.29).
DEMO_SETTING = dict(schedule="cosine", total_iter=8, sweet_spot=8, choice_temperature=4.5, paste_known=True)
DEMO_DECODING = DecodingSettings(**DEMO_SETTING)  # validated at import; summary.json records DEMO_SETTING
DEMO_STRIPS = 32  # test images that get per-step strips (mask_scheduling/, imga/)


def dataset_grid(root: Path = EMOJI64_DIR, n: int = 8) -> torch.Tensor:
    """Rows: masked input, pixel mask, latent token mask (upsampled), ground truth, train images."""
    test = InpaintingTestSet(root)
    items = [test[i * (len(test) // n)] for i in range(n)]
    norm = test.normalization
    masked = torch.stack([norm.denormalize(it["image"]) for it in items])               # (n,3,64,64)
    masks = torch.stack([it["mask"] for it in items])                                    # (n,1,64,64)
    latent = latent_mask_from_pixels(masks).float().unsqueeze(1)                         # (n,1,16,16)
    latent_up = 1 - F.interpolate(latent, scale_factor=4, mode="nearest")                # (n,1,64,64) white = kept
    truth = torch.stack([norm.denormalize(it["target"]) for it in items])                # (n,3,64,64)
    train = emoji64_dataset("train", root)
    step = len(train) // n
    train_images = torch.stack([train.normalization.denormalize(train[i * step]) for i in range(n)])
    rows = [masked, masks.expand(-1, 3, -1, -1), latent_up.expand(-1, 3, -1, -1), truth, train_images]
    return make_grid(torch.cat(rows), nrow=n, padding=2, pad_value=0.5)                  # (3,H,W)


def summary_grid(test: InpaintingTestSet, results: Path, n: int = 10, count: int | None = None) -> torch.Tensor:
    """Rows: masked input / inpainted / ground truth for ``n`` test images evenly spaced over the
    first ``count`` (the ones inpainted; default all)."""
    count = len(test) if count is None else count
    n = min(n, count)
    picks = [i * (count // n) for i in range(n)]
    norm = test.normalization
    masked = torch.stack([norm.denormalize(test[i]["image"]) for i in picks])            # (n,3,64,64)
    output = torch.stack([to_tensor(Image.open(results / test.image_files[i].name).convert("RGB"))
                          for i in picks])                                               # (n,3,64,64)
    truth = torch.stack([norm.denormalize(test[i]["target"]) for i in picks])            # (n,3,64,64)
    return make_grid(torch.cat([masked, output, truth]), nrow=n, padding=2, pad_value=0.5)


CALIBRATION_IMAGES = 4  # images each phase is timed on before the run, for the ETA


def calibrate(maskgit, test: InpaintingTestSet, reference: fid.Stats, device: torch.device,
              progress: bool = True) -> dict:
    """Seconds per image of inpainting (without strips: only the first DEMO_STRIPS images get them) and
    of Inception, each timed on the first few test images. The Inception features of those
    ground-truth images are compared with the shipped reference activations: a mismatch means
    they came from other Inception weights, and the FID would not be comparable."""
    n = min(CALIBRATION_IMAGES, len(test))
    with tempfile.TemporaryDirectory() as scratch:
        t0 = time.perf_counter()
        inpaint_test_set(maskgit, test, scratch, DEMO_DECODING, limit=n, device=device, progress=False,
                         strips=0)  # the strips of the first DEMO_STRIPS images are a small fixed extra
        inpaint_s = (time.perf_counter() - t0) / n
    truth = fid_files.read_images(test.gt_source, limit=n)                         # (n, 3, 64, 64) uint8
    t0 = time.perf_counter()
    features = fid.activations(truth, batch_size=n, device=device, progress=progress)  # (n, 2048)
    inception_s = (time.perf_counter() - t0) / n
    if reference.features is not None and len(reference.features) >= n:
        gap = float(abs(features - reference.features[:n]).max())
        if gap > 1e-3:
            note(f"the reference activations differ from this Inception's by up to {gap:.1e} on the "
                 f"first {n} ground-truth images: other weights? Rewrite them with "
                 f"`labcore fid --write-reference {test.gt_source}`")
    return {"inpaint_s_per_image": inpaint_s, "inception_s_per_image": inception_s}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def run_phases(maskgit, test: InpaintingTestSet, count: int, out: Path, device: torch.device,
               timings: dict, progress: bool = True) -> dict:
    """Reference activations, calibration + ETA line, inpainting, FID, grid: each phase's seconds
    go into ``timings``. Returns the FID, the files written, the ETA and the calibration."""
    t0 = time.perf_counter()  # the shipped activations (content hash checked); computed only if stale
    reference = fid_files.load_or_compute_stats(test.gt_source, device=device, limit=count, progress=progress)
    timings["fid_reference"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    rates = calibrate(maskgit, test, reference, device, progress)
    timings["calibrate"] = time.perf_counter() - t0
    eta = count * (rates["inpaint_s_per_image"] + rates["inception_s_per_image"])
    print(f"ETA {_minutes(eta)} for {count} images (inpaint {rates['inpaint_s_per_image']:.2f} s/image, "
          f"Inception {rates['inception_s_per_image']:.2f} s/image, timed on {CALIBRATION_IMAGES} images)", flush=True)

    t0 = time.perf_counter()
    written = inpaint_test_set(maskgit, test, out, DEMO_DECODING, limit=count, device=device, progress=progress,
                               strips=DEMO_STRIPS)
    timings["inpaint"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    n = written["test_results"]  # the first n files of test_results/, sorted like the test set (older ones after)
    score = fid_files.fid_of_folder(out / "test_results", reference, device=device, limit=n, progress=progress).fid
    timings["fid"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    save_image(summary_grid(test, out / "test_results", n=10, count=n), out / "summary_grid.png")
    timings["grid"] = time.perf_counter() - t0
    return {"fid": score, "written": written, "eta": eta, "rates": rates}


def run_demo(out: str | Path = RESULTS_DIR, limit: int | None = None, device: str = "auto",
             progress: bool = True) -> dict | None:
    """The demo (see the module docstring): writes into ``out`` and prints what it wrote. Returns
    the summary (None without a bundled transformer: then only the dataset grid is written).
    ``progress=False`` hides every progress bar."""
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not BUNDLED_TRANSFORMER_WEIGHTS.is_file():
        path = out / "dataset_grid.png"
        save_image(dataset_grid(), path)
        print(f"no bundled transformer {BUNDLED_TRANSFORMER_WEIGHTS} yet: wrote the dataset grid {path} "
              "(rows: masked input / pixel mask / latent token mask / ground truth / train images)")
        return None

    device = pick_device(device)
    maskgit = load_bundled_maskgit()
    test = InpaintingTestSet(EMOJI64_DIR, normalization_for(maskgit.normalization, EMOJI64_DIR))
    count = len(test) if limit is None else min(limit, len(test))
    inception.fast_inception(device)  # build the network now, not inside a timed phase
    timings = {"load": time.perf_counter() - start}
    result = run_phases(maskgit, test, count, out, device, timings, progress)
    timings["total"] = time.perf_counter() - start
    summary = _summary(result, timings, device)
    atomic_write_text(json.dumps(summary, indent=2) + "\n", out / "summary.json")
    _print_summary(summary, result, timings, out)
    return summary


def _summary(result: dict, timings: dict, device: torch.device) -> dict:
    """What summary.json holds: FID, the setting, the weights (repo-relative paths), the time of
    each phase, memory."""
    return {
        "fid": round(result["fid"], 3),
        "images": result["written"]["test_results"],
        "setting": dict(DEMO_SETTING),
        "weights": {"vqgan": repo_relative(BUNDLED_VQGAN_WEIGHTS),
                    "transformer": repo_relative(BUNDLED_TRANSFORMER_WEIGHTS),
                    "fid_inception": inception.weights_source},
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "eta_seconds": round(result["eta"], 1),
        "calibration_s_per_image": {k: round(v, 3) for k, v in result["rates"].items()},
        "peak_rss_mb": round(peak_rss_mb()),
        "device": str(device),
    }


def _print_summary(summary: dict, result: dict, timings: dict, out: Path) -> None:
    print(f"FID {result['fid']:.2f} on {summary['images']} inpainted test images ({DEMO_DECODING.schedule}, "
          f"T={DEMO_DECODING.total_iter}, S={DEMO_DECODING.steps}) in {timings['total']:.0f} s "
          f"(ETA was {result['eta']:.0f} s), peak memory {summary['peak_rss_mb']} MB")
    print("  seconds per phase: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items() if k != "total"))
    for name, folder_count in result["written"].items():
        print(f"  {out / name}/  {folder_count} images")
    print(f"  {out / 'summary_grid.png'}  (rows: masked input / inpainted / ground truth)")
    print(f"  {out / 'summary.json'}")
