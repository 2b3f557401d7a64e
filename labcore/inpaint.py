"""``labcore inpaint``: fill the masked regions of a test set by iterative decoding, and
``benchmark_inpaint`` (wired to ``labcore bench inpaint``).

Writes the course's three folders under the output directory:

- ``test_results/image_XXX.png``   the inpainted image (one per test image; FID reads this folder)
- ``mask_scheduling/test_XXX.png`` a strip: the initial latent mask, then the mask after each
                                   step (white = known token, black = still masked), 4x enlarged
- ``imga/test_XXX.png``            a strip: the masked input, then the decoded image after each step
"""

from __future__ import annotations

import argparse
import re
import resource
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import make_grid, save_image
from tqdm.auto import tqdm

from labcore.maskgit import SCHEDULES, MaskGit, check_decoding_args
from labcore.paths import EMOJI64_DIR, RESULTS_DIR
from labcore.runtime import fast_mode, pick_device

FOLDERS = ("test_results", "mask_scheduling", "imga")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", "--dataset", default=str(EMOJI64_DIR),
                        help="test set: data/emoji64 (default) or the course's lab5_dataset folder")
    parser.add_argument("--output-dir", "-o", default=str(RESULTS_DIR / "inpaint"),
                        help="where test_results/, mask_scheduling/ and imga/ go (default: results/inpaint)")
    parser.add_argument("--schedule", "--mask-func", "--mask_func", dest="schedule", default="cosine",
                        choices=SCHEDULES, metavar="NAME", help=f"mask schedule gamma, one of {', '.join(SCHEDULES)} "
                        "(default: cosine)")
    parser.add_argument("--total-iter", "--total_iter", dest="total_iter", type=int, default=8,
                        help="decoding steps T (default: 8)")
    parser.add_argument("--sweet-spot", "--sweet_spot", dest="sweet_spot", type=int, default=None,
                        help="stop after S <= T steps and fill what is left with the current prediction "
                        "(default: S = T)")
    parser.add_argument("--temperature", "--choice-temperature", "--choice_temperature", dest="temperature",
                        type=float, default=4.5, help="scale of the per-token Gumbel noise on the confidences "
                        "(default: 4.5; 0 = pure confidence order)")
    parser.add_argument("--sample-temperature", type=float, default=0.0,
                        help="0 (default): take the argmax token; > 0: sample softmax(logits / this)")
    parser.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=32)
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1 ...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--paste-known", action="store_true",
                        help="put the known input pixels back over the decoded image")
    parser.add_argument("--dilation", type=int, default=0,
                        help="also mask tokens within this many tokens of a masked one (default: 0)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N test images")
    parser.add_argument("--no-steps", action="store_true",
                        help="write test_results/ only (skip the per-step strips: faster)")
    parser.add_argument("--strips", type=int, default=None,
                        help="write the per-step strips for the first N images only (default: every image)")
    parser.add_argument("--vqgan-config", default=None, help="course-style VQGAN.yml (default: bundled)")
    parser.add_argument("--vqgan-weights", "--vqgan-ckpt-path", dest="vqgan_weights", default=None,
                        help="VQGAN.pt state dict (default: bundled)")
    parser.add_argument("--transformer-config", "--MaskGitConfig", dest="transformer_config", default=None,
                        help="MaskGit.yml / transformer config (default: bundled, or read off the weights)")
    parser.add_argument("--transformer-weights", "--load-transformer-ckpt-path", dest="transformer_weights",
                        default=None, help="stage-2 transformer checkpoint (default: bundled)")


def _number(name: str, fallback: int) -> str:
    """'image_012.png' -> '012' (the course pairs test_XXX with image_XXX)."""
    digits = re.findall(r"\d+", Path(name).stem)
    return digits[-1] if digits else f"{fallback:03d}"


def mask_strip(masks: torch.Tensor, patch: int) -> torch.Tensor:
    """(S+1, 16, 16) bool masks -> (S+1, 3, 16*patch, 16*patch) frames: white known, black masked."""
    known = (~masks).float()[:, None]                                           # (S+1, 1, 16, 16)
    return F.interpolate(known, scale_factor=patch, mode="nearest").expand(-1, 3, -1, -1)


def _strip(frames: torch.Tensor) -> torch.Tensor:
    return make_grid(frames, nrow=len(frames), padding=2, pad_value=0.5)


def inpaint_test_set(maskgit: MaskGit, test_set, output_dir: str | Path, total_iter: int = 8,
                     sweet_spot: int | None = None, schedule: str = "cosine", choice_temperature: float = 4.5,
                     sample_temperature: float = 0.0, batch_size: int = 32, seed: int = 0,
                     paste_known: bool = False, dilation: int = 0, limit: int | None = None,
                     steps: bool = True, device: torch.device | str = "cpu", progress: bool = True,
                     strips: int | None = None) -> dict:
    """Inpaint ``test_set`` (a ``labcore.data.InpaintingTestSet``) and write the course's folders.
    ``steps=False`` writes test_results/ only; ``strips=N`` writes the per-step strips
    (mask_scheduling/, imga/) for the first N images only (each strip costs T extra VQGAN decodes
    per image: on a CPU most of the time). Returns {folder name: number of files written}."""
    check_decoding_args(total_iter, sweet_spot, schedule, choice_temperature, sample_temperature)
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    if dilation < 0:
        raise ValueError(f"--dilation must be >= 0, got {dilation}")
    if strips is not None and strips < 0:
        raise ValueError(f"--strips must be >= 0, got {strips}")
    output_dir = Path(output_dir)
    folders = {name: output_dir / name for name in (FOLDERS if steps else FOLDERS[:1])}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    maskgit = maskgit.to(device).eval()
    generator = torch.Generator().manual_seed(seed)  # CPU generator: same numbers on every device
    norm = test_set.normalization
    count = len(test_set) if limit is None else min(limit, len(test_set))
    written = {name: 0 for name in folders}
    for start in tqdm(range(0, count, batch_size), desc="inpaint", unit="batch", disable=not progress):
        items = [test_set[i] for i in range(start, min(start + batch_size, count))]
        images = torch.stack([it["image"] for it in items]).to(device)          # (B, 3, 64, 64)
        masks = torch.stack([it["mask"] for it in items]).to(device)            # (B, 1, 64, 64)
        result = maskgit.inpaint(images, masks, total_iter, sweet_spot, schedule, choice_temperature,
                                 sample_temperature, generator, paste_known, dilation)
        outputs = norm.denormalize(result.images.cpu()).clamp(0, 1)            # (B, 3, 64, 64)
        step_images = step_masks = None
        strip_count = len(items) if strips is None else max(0, min(len(items), strips - start))  # in this batch
        if steps and strip_count:
            step_images = norm.denormalize(result.trace.images(maskgit).cpu()).clamp(0, 1)  # (S, B, 3, 64, 64)
            step_masks = result.trace.masks().cpu()                             # (S+1, B, 16, 16)
            inputs = norm.denormalize(images.cpu()).clamp(0, 1)                 # (B, 3, 64, 64)
        for b, item in enumerate(items):
            number = _number(item["name"], start + b)
            save_image(outputs[b], folders["test_results"] / f"{Path(item['name']).stem}.png")
            written["test_results"] += 1
            if steps and b < strip_count:
                save_image(_strip(mask_strip(step_masks[:, b], maskgit.patch)),
                           folders["mask_scheduling"] / f"test_{number}.png")
                save_image(_strip(torch.cat([inputs[b:b + 1], step_images[:, b]])),
                           folders["imga"] / f"test_{number}.png")
                written["mask_scheduling"] += 1
                written["imga"] += 1
    return written


def run(args: argparse.Namespace) -> int:
    from labcore.data import InpaintingTestSet

    # settings first: a bad flag fails before any model or image is loaded
    check_decoding_args(args.total_iter, args.sweet_spot, args.schedule, args.temperature, args.sample_temperature)
    device = pick_device(args.device)
    test_set = InpaintingTestSet(args.data_root)
    maskgit = MaskGit.from_files(args.vqgan_config, args.vqgan_weights, args.transformer_config,
                                 args.transformer_weights)
    t0 = time.perf_counter()
    written = inpaint_test_set(maskgit, test_set, args.output_dir, args.total_iter, args.sweet_spot,
                               args.schedule, args.temperature, args.sample_temperature, args.batch_size,
                               args.seed, args.paste_known, args.dilation, args.limit, not args.no_steps,
                               device, strips=args.strips)
    seconds = time.perf_counter() - t0
    n = written["test_results"]
    print(f"inpainted {n} images in {seconds:.1f} s ({n / max(seconds, 1e-9):.1f} images/s) on {device}; "
          f"schedule {args.schedule}, T={args.total_iter}, S={args.sweet_spot or args.total_iter}, "
          f"temperature {args.temperature}")
    for name, count in written.items():
        print(f"  {Path(args.output_dir) / name}/  {count} files")
    return 0


# ----------------------------------------------------------------------------- benchmark

def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def benchmark_inpaint(maskgit: MaskGit | None = None, root: str | Path = EMOJI64_DIR, total_iter: int = 8,
                      batch_size: int = 32, limit: int | None = None, schedule: str = "cosine",
                      choice_temperature: float = 4.5, seed: int = 0, device: str = "cpu",
                      progress: bool = True) -> dict:
    """images/s of (a) the course-style per-image loop (batch 1, VQGAN encode + decode at every
    step) and (b) labcore's batched loop (encode once, decode once), same T, one run each, on the
    test set at ``root`` (default: bundled emoji64; the first ``limit`` images; 8 in fast mode),
    with the bundled models unless ``maskgit`` is given. Prints and returns the figures."""
    from labcore.data import InpaintingTestSet

    check_decoding_args(total_iter, None, schedule, choice_temperature)
    device = pick_device(device)
    test_set = InpaintingTestSet(root)
    count = len(test_set) if limit is None else min(limit, len(test_set))
    if fast_mode():
        count = min(count, 8)
    maskgit = (maskgit or MaskGit.bundled()).to(device).eval()
    items = [test_set[i] for i in tqdm(range(count), desc="load test set", disable=not progress)]
    images = torch.stack([it["image"] for it in items]).to(device)              # (n, 3, 64, 64)
    masks = torch.stack([it["mask"] for it in items]).to(device)                # (n, 1, 64, 64)
    settings = dict(total_iter=total_iter, schedule=schedule, choice_temperature=choice_temperature)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    generator = torch.Generator().manual_seed(seed)
    sync()
    t0 = time.perf_counter()
    for i in tqdm(range(count), desc="(a) course-style loop", disable=not progress):
        maskgit.inpaint_course_style(images[i:i + 1], masks[i:i + 1], generator=generator, **settings)
    sync()
    course_s = time.perf_counter() - t0
    rss_after_a = peak_rss_mb()

    generator = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for start in tqdm(range(0, count, batch_size), desc="(b) batched loop", disable=not progress):
        maskgit.inpaint(images[start:start + batch_size], masks[start:start + batch_size],
                        generator=generator, **settings)
    sync()
    batched_s = time.perf_counter() - t0

    figures = {
        "images": count, "total_iter": total_iter, "batch_size": batch_size, "device": str(device),
        "course_seconds": course_s, "batched_seconds": batched_s,
        "course_images_per_s": count / course_s, "batched_images_per_s": count / batched_s,
        "speedup": course_s / batched_s, "peak_rss_mb_after_course_loop": rss_after_a,
        "peak_rss_mb": peak_rss_mb(),
    }
    print(f"inpaint benchmark: {count} test images, T={total_iter}, {schedule}, device {device}, "
          f"{torch.get_num_threads()} threads")
    print(f"  (a) course-style loop (batch 1, encode+decode every step): {figures['course_images_per_s']:8.2f} images/s"
          f"  ({course_s:.1f} s)")
    print(f"  (b) labcore batched loop (batch {batch_size}, encode+decode once): "
          f"{figures['batched_images_per_s']:8.2f} images/s  ({batched_s:.1f} s)")
    print(f"  speed-up (b)/(a): {figures['speedup']:.1f}x   peak RSS: {figures['peak_rss_mb']:.0f} MiB "
          f"(after (a): {rss_after_a:.0f} MiB)")
    return figures
