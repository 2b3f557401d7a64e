"""``make demo``: the lab's main job on the bundled data and weights.

Inpaint the bundled emoji64 test set with the bundled tokenizer + transformer (the best setting of
``labcore experiment``, ``DEMO_SETTING`` below), score it with FID against the ground truth, and
write ``results/``:

- the course's output folders ``test_results/``, ``mask_scheduling/``, ``imga/``;
- ``summary_grid.png``: masked input / inpainted / ground truth for a few test images;
- ``summary.json``: FID, the setting, the weights used, timings and peak memory.

Without a bundled transformer (a checkout in the middle of training it) the demo says so and
writes a grid of the dataset instead.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import make_grid, save_image

from .data import InpaintingTestSet, emoji64_dataset, latent_mask_from_pixels
from .paths import CHECKPOINT_DIR, EMOJI64_DIR, RESULTS_DIR

# The best setting of `labcore experiment --limit 100` on the bundled models (README "Results",
# docs/results/experiments.md). Schedules and T differ within FID noise there; paste-known is what counts.
DEMO_SETTING = dict(schedule="cosine", total_iter=12, sweet_spot=12, choice_temperature=4.5, paste_known=True)


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
    from torchvision.io import decode_image

    count = len(test) if count is None else count
    n = min(n, count)
    picks = [i * (count // n) for i in range(n)]
    norm = test.normalization
    masked = torch.stack([norm.denormalize(test[i]["image"]) for i in picks])            # (n,3,64,64)
    output = torch.stack([decode_image(str(results / test.image_files[i].name)).float() / 255
                          for i in picks])                                               # (n,3,64,64)
    truth = torch.stack([norm.denormalize(test[i]["target"]) for i in picks])            # (n,3,64,64)
    return make_grid(torch.cat([masked, output, truth]), nrow=n, padding=2, pad_value=0.5)


def add_arguments(parser) -> None:
    parser.add_argument("--out", default=str(RESULTS_DIR), help="output folder (default: results/)")
    parser.add_argument("--limit", type=int, help="inpaint only the first N test images")
    parser.add_argument("--device", default="auto")


def run(args) -> int:
    start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not (CHECKPOINT_DIR / "transformer_emoji64.pt").is_file():
        path = out / "dataset_grid.png"
        save_image(dataset_grid(), path)
        print(f"no bundled transformer in {CHECKPOINT_DIR} yet: wrote the dataset grid {path} "
              "(rows: masked input / pixel mask / latent token mask / ground truth / train images)")
        return 0

    from . import fid
    from .inpaint import inpaint_test_set, peak_rss_mb
    from .maskgit import MaskGit
    from .runtime import pick_device

    device = pick_device(args.device)
    test = InpaintingTestSet(EMOJI64_DIR)
    maskgit = MaskGit.bundled()
    timings = {"load": time.perf_counter() - start}

    t0 = time.perf_counter()
    setting = dict(DEMO_SETTING)
    written = inpaint_test_set(maskgit, test, out, setting["total_iter"], setting["sweet_spot"], setting["schedule"],
                               setting["choice_temperature"], paste_known=setting["paste_known"],
                               limit=args.limit, device=device)
    timings["inpaint"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    n = written["test_results"]
    reference = (fid.load_or_compute_stats(test.gt_source, device=device) if args.limit is None
                 else fid.compute_stats(fid.read_images(test.gt_source)[:n], device=device))
    timings["fid_reference"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    predictions = fid.read_folder(out / "test_results")[:n]  # sorted like the test set
    score = fid.frechet_distance(fid.compute_stats(predictions, device=device), reference)
    timings["fid"] = time.perf_counter() - t0

    grid_path = out / "summary_grid.png"
    save_image(summary_grid(test, out / "test_results", n=10, count=written["test_results"]), grid_path)
    timings["total"] = time.perf_counter() - start
    summary = {
        "fid": round(score, 3),
        "images": written["test_results"],
        "setting": setting,
        "weights": {"vqgan": str(CHECKPOINT_DIR / "vqgan_emoji64.pt"),
                    "transformer": str(CHECKPOINT_DIR / "transformer_emoji64.pt"),
                    "fid_inception": fid.weights_source},
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "peak_rss_mb": round(peak_rss_mb()),
        "device": str(device),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"FID {score:.2f} on {summary['images']} inpainted test images "
          f"({setting['schedule']}, T={setting['total_iter']}, S={setting['sweet_spot']}) "
          f"in {timings['total']:.0f} s, peak memory {summary['peak_rss_mb']} MB")
    for name, count in written.items():
        print(f"  {out / name}/  {count} images")
    print(f"  {grid_path}  (rows: masked input / inpainted / ground truth)")
    print(f"  {out / 'summary.json'}")
    return 0
