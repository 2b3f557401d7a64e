"""``labcore bench``: benchmarks that print figures (never timed tests).

- ``labcore bench train``: training-step throughput (tokens/s) and peak memory of the stage-2
  transformer on the default preset, side by side: (a) fp32 + explicit attention, (b) fp32 +
  fused attention (SDPA), (c) bf16 autocast + fused; and (c)'s loss after the last step vs (a)'s
  from the same seed (same batches, same masks). Each variant runs in its own process, so its
  peak RSS is its own.
- ``labcore bench inpaint``: iterative-decoding throughput, images/s of the course-style loop
  (``inpaint_course_style``: batch 1, VQGAN encode + decode at every step) vs labcore's batched
  ``MaskGit.inpaint`` (encode once, decode once), with the same ``DecodingSettings``.
- ``labcore bench fid``: FID Inception throughput (images/s) on the emoji64 ground truth:
  (a) pytorch-fid's module as is (labcore before issue #13), (b) + ``inference_mode`` and
  channels-last, (c) + batch norms folded into the convolutions, which is what
  ``labcore.fid.activations`` runs; (c) again at other batch sizes and thread counts; and each
  variant's largest feature difference from (a).

The command line (flags, parsing) is ``labcore.cli.bench``; this module does the work.
"""

from __future__ import annotations

import copy
import multiprocessing as mp
import queue as queue_module
import resource
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .data import InpaintingTestSet, collate_test, normalization_for
from .decoding import DecodingSettings, decode_step
from .maskgit import latent_mask
from .model_files import load_bundled_maskgit
from .paths import DEFAULT_TOKENS, EMOJI64_DIR
from .runtime import fast_mode, note, peak_rss_mb, pick_device, seed_everything, set_threads
from .schedules import gamma
from .training import PRESETS, TrainConfig, cpu_has_fast_bf16, load_tokens, tokenizer_codebook_size
from .training.stage2 import forward_backward, optimizer_step
from .training.steps import seed_step, warmup_cosine
from .transformer import BidirectionalTransformer, TransformerConfig
from .validate import integer, integers, one_of

TRAIN_VARIANTS = {
    "a": ("fp32 + explicit attention", False, False),   # (label, fused, bf16)
    "b": ("fp32 + fused attention", True, False),
    "c": ("bf16 autocast + fused", True, True),
}


# ----------------------------------------------------------------------------- train benchmark

def _bench_tokens(path, count: int, K: int, seed: int) -> tuple[torch.Tensor, str]:
    """Real tokens (the first ``count`` of the tokens file) when there is one; otherwise smooth
    synthetic token maps (neighbouring tokens agree, as in real images) so the loss can fall."""
    if path is not None and Path(path).is_file():
        tokens = load_tokens(path)["train"]
        return tokens[:count], f"real tokens from {path}"
    g = torch.Generator().manual_seed(seed)
    zipf = 1.0 / torch.arange(1, K + 1)                                           # (K,) a few codes dominate
    coarse = torch.multinomial(zipf, count * 16, replacement=True, generator=g)   # (n*16,)
    grid = coarse.view(count, 1, 4, 4).float()                                    # (n, 1, 4, 4)
    grid = torch.nn.functional.interpolate(grid, scale_factor=4, mode="nearest")  # (n, 1, 16, 16) 4x4 patches
    return grid.long().flatten(1), "synthetic tokens (Zipf codes in 4x4 patches; no tokens file found)"


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process: on a shared machine, CPU seconds per step
    show the cost of a step that wall-clock time (which includes waiting for a core) hides."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _train_variant(variant: str, settings: dict, queue) -> None:
    """One variant in a fresh process: time ``steps`` steps of stage 2's own training step
    (``stage2.forward_backward`` + ``stage2.optimizer_step``, the seeds of ``training.steps.seed_step``);
    report tokens/s, CPU s/step, peak RSS and the losses."""
    try:
        label, fused, bf16 = TRAIN_VARIANTS[variant]
        set_threads(settings["threads"])
        cfg, tokens, steps = settings["train"], settings["tokens"], settings["steps"]  # TrainConfig, (n, 256)
        seed_everything(cfg.seed)
        model_cfg = TransformerConfig(**{**settings["model"], "fused_attention": fused})
        model = BidirectionalTransformer(model_cfg).train()
        opt = torch.optim.AdamW(model.param_groups(cfg.weight_decay), lr=cfg.lr, betas=cfg.betas)
        schedule = warmup_cosine(opt, max(1, steps // 5), steps)                      # the training schedule, in small
        gamma_fn = gamma(cfg.schedule)
        losses, t0 = [], None
        for step in range(steps):
            if step == settings["untimed"]:
                t0, cpu0 = time.perf_counter(), _cpu_seconds()
            gen = seed_step(cfg.seed, step)                                            # same dropout and masks per step
            batch = tokens[(step * cfg.batch_size) % len(tokens):][:cfg.batch_size]   # (bs, 256)
            stats = forward_backward(model, batch, model_cfg.mask_token_id, gamma_fn, cfg, gen, bf16)  # (3,)
            optimizer_step(model, opt, schedule, cfg.grad_clip)
            losses.append(stats[0].item())
        seconds, cpu_seconds = time.perf_counter() - t0, _cpu_seconds() - cpu0
        timed = steps - settings["untimed"]
        queue.put({"variant": variant, "label": label, "steps_per_s": timed / seconds,
                   "tokens_per_s": timed * cfg.batch_size * tokens.shape[1] / seconds, "losses": losses,
                   "cpu_s_per_step": cpu_seconds / timed,
                   "peak_rss_mb": peak_rss_mb()})
    except BaseException as err:  # report instead of hanging the parent
        queue.put({"variant": variant, "error": f"{type(err).__name__}: {err}"})


def _variant_in_process(ctx, variant: str, settings: dict) -> dict:
    """``_train_variant`` in a fresh process (its peak RSS is its own); its result, or a RuntimeError."""
    queue = ctx.Queue()
    proc = ctx.Process(target=_train_variant, args=(variant, settings, queue))
    proc.start()
    while True:  # a child killed outright (e.g. out of memory) never answers: notice it
        try:
            result = queue.get(timeout=10)
            break
        except queue_module.Empty:
            if not proc.is_alive():
                result = {"variant": variant, "error": f"the process died (exit code {proc.exitcode})"}
                break
    proc.join()
    if "error" in result:
        raise RuntimeError(f"bench train variant ({variant}) failed: {result['error']}")
    return result


def benchmark_train(preset: str = "emoji64", steps: int = 50, batch_size: int | None = None,
                    variants: str = "abc", threads: int | None = None, tokens_path=None, seed: int = 0,
                    untimed: int = 3) -> dict:
    """Run the variants one after another, each in its own process; print and return the table.
    Each runs the preset's model and training settings (``batch_size``: the preset's when None)."""
    steps, preset = integer("steps", steps, 1), one_of("preset", preset, PRESETS)
    if not variants or set(variants) - set(TRAIN_VARIANTS):
        raise ValueError(f"variants must be letters of {', '.join(TRAIN_VARIANTS)}, got {variants!r}")
    threads = None if threads is None else integer("threads", threads, 1)
    model = dict(PRESETS[preset]["model"])
    given = {"batch_size": batch_size} if batch_size is not None else {}
    train = TrainConfig(**{**PRESETS[preset]["train"], "seed": seed, **given})  # validates batch_size
    batch_size = train.batch_size
    tokens_path = tokens_path or DEFAULT_TOKENS
    K = load_tokens(tokens_path).get("num_codebook_vectors") if Path(tokens_path).is_file() else None
    K = int(K or tokenizer_codebook_size() or 1024)
    model["num_codebook_vectors"] = K
    untimed = min(untimed, max(steps - 1, 0))
    tokens, source = _bench_tokens(tokens_path, steps * batch_size, K, seed)
    settings = dict(model=model, train=train, tokens=tokens, steps=steps, threads=threads, untimed=untimed)
    ctx = mp.get_context("spawn")
    results = {}
    print(f"bench train: preset {preset} ({model['dim']}x{model['n_layers']}, hidden {model['hidden_dim']}, "
          f"{model['num_heads']} heads, K={K}), batch {batch_size} x 256 tokens, {steps} steps "
          f"({untimed} untimed), {threads or torch.get_num_threads()} threads, {source}", flush=True)
    for v in variants:
        results[v] = result = _variant_in_process(ctx, v, settings)
        print(f"  ({v}) {result['label']:28s} done: {result['tokens_per_s']:9.0f} tokens/s", flush=True)

    print()
    print(f"{'variant':32s} {'steps/s':>8s} {'tokens/s':>10s} {'vs (a)':>7s} {'CPU s/step':>10s} {'peak RSS':>10s} "
          f"{'loss@last':>10s}")
    base = results.get("a")
    for v, r in results.items():
        speed = f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x" if base else "-"
        print(f"({v}) {r['label']:28s} {r['steps_per_s']:8.3f} {r['tokens_per_s']:10.0f} {speed:>7s} "
              f"{r['cpu_s_per_step']:10.2f} {r['peak_rss_mb']:6.0f} MiB {r['losses'][-1]:10.4f}")
    summary = {"results": results, "batch_size": batch_size, "steps": steps, "K": K, "tokens": source}
    if "a" in results and "c" in results:
        la, lc = results["a"]["losses"][-1], results["c"]["losses"][-1]
        rel = abs(lc - la) / abs(la)
        summary["loss_rel_diff_c_vs_a"] = rel
        print(f"loss after {steps} steps: (c) {lc:.4f} vs (a) {la:.4f} (first step {results['a']['losses'][0]:.4f}): "
              f"{rel:.2%} apart ({'within' if rel <= 0.02 else 'NOT within'} 2%)")
        speed = results["c"]["tokens_per_s"] / results["a"]["tokens_per_s"]
        summary["speedup_c_vs_a"] = speed
        if not cpu_has_fast_bf16():
            note(f"this CPU has no native bf16 (no avx512_bf16/amx in /proc/cpuinfo), so bf16 matmuls are "
                 f"emulated: (c) runs at {speed:.2f}x (a). `labcore train --precision auto` uses fp32 here.")
    return summary


# ----------------------------------------------------------------------------- inpaint benchmark

@torch.no_grad()
def inpaint_course_style(maskgit, images: torch.Tensor, masks: torch.Tensor, settings: DecodingSettings | None = None,
                         *, generator: torch.Generator | None = None, **changes) -> torch.Tensor:
    """SLOW REFERENCE, for the benchmark only: the loop as the course template writes it.
    One image at a time (batch 1), VQGAN encode of the current image and decode of the
    prediction at EVERY step, so the known tokens are re-encoded each step (and can drift).
    Uses the settings' schedule, T, S and temperatures (no dilation, no paste-known: the template
    has neither); ``settings``, ``changes`` and ``generator`` as in ``MaskGit.inpaint``, which is
    the one to use for real work. Returns (B, 3, H, W) normalised images."""
    settings = DecodingSettings.resolve(settings, **changes)                   # validated before any work
    generator = settings.generator() if generator is None else generator
    masks = maskgit._check_inputs(images, masks)                                # (B, 1, H, W) MaskGit.inpaint's checks
    maskgit.transformer.eval()
    outputs = []
    for i in range(len(images)):
        image = images[i:i + 1]                                                 # (1, 3, H, W)
        masked = latent_mask(masks[i:i + 1], patch=maskgit.patch).flatten(1).to(images.device)  # (1, 256)
        m0 = masked.sum(dim=1)                                                  # (1,)
        for t in range(1, settings.steps + 1):
            tokens = maskgit.encode_to_z(image)                                 # (1, 256) re-encoded every step
            step = decode_step(maskgit.transformer, tokens, masked, m0, t / settings.total_iter, settings,
                               maskgit.mask_token_id, generator)
            masked = step.masked                                                # (1, 256)
            image = maskgit.decode_z(step.filled)                               # (1, 3, H, W) decoded every step
        outputs.append(image)
    return torch.cat(outputs)                                                   # (B, 3, H, W)


def _timed(work, device: torch.device) -> float:
    """Wall seconds of ``work()``, waiting for the GPU's queue to drain on CUDA."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    work()
    sync()
    return time.perf_counter() - t0


def benchmark_inpaint(maskgit=None, root: str | Path = EMOJI64_DIR, settings: DecodingSettings | None = None,
                      batch_size: int = 32, limit: int | None = None, device: str = "cpu", progress: bool = True,
                      **changes) -> dict:
    """images/s of (a) the course-style per-image loop (``inpaint_course_style``) and (b) labcore's
    batched loop (``MaskGit.inpaint``: encode once, decode once), same settings (``settings`` with
    keyword ``changes``, e.g. ``total_iter=4``), one run each from the settings' seed, on the test
    set at ``root`` (default: bundled emoji64; the first ``limit`` images; 8 in fast mode), with the
    bundled models unless ``maskgit`` is given. Prints and returns the figures."""
    settings = DecodingSettings.resolve(settings, **changes)                   # validated before any work
    batch_size, limit = integer("batch_size", batch_size, 1), None if limit is None else integer("limit", limit, 1)
    device = pick_device(device)
    maskgit = (maskgit or load_bundled_maskgit()).to(device).eval()
    test_set = InpaintingTestSet(root, normalization_for(maskgit.normalization, root))
    count = min(len(test_set), limit or len(test_set), 8 if fast_mode() else len(test_set))
    batch = collate_test([test_set[i] for i in tqdm(range(count), desc="load test set", disable=not progress)])
    images, masks = batch["image"].to(device), batch["mask"].to(device)        # (n, 3, 64, 64), (n, 1, 64, 64)

    def course_loop():
        generator = settings.generator()
        for i in tqdm(range(count), desc="(a) course-style loop", disable=not progress):
            inpaint_course_style(maskgit, images[i:i + 1], masks[i:i + 1], settings, generator=generator)

    def batched_loop():
        generator = settings.generator()
        for lo in tqdm(range(0, count, batch_size), desc="(b) batched loop", disable=not progress):
            maskgit.inpaint(images[lo:lo + batch_size], masks[lo:lo + batch_size], settings, generator=generator)

    course_s = _timed(course_loop, device)
    rss_after_a = peak_rss_mb()
    batched_s = _timed(batched_loop, device)
    figures = {
        "images": count, "total_iter": settings.total_iter, "batch_size": batch_size, "device": str(device),
        "course_seconds": course_s, "batched_seconds": batched_s,
        "course_images_per_s": count / course_s, "batched_images_per_s": count / batched_s,
        "speedup": course_s / batched_s, "peak_rss_mb_after_course_loop": rss_after_a, "peak_rss_mb": peak_rss_mb(),
    }
    _print_inpaint_figures(figures, settings)
    return figures


def _print_inpaint_figures(figures: dict, settings: DecodingSettings) -> None:
    print(f"inpaint benchmark: {figures['images']} test images, T={settings.total_iter}, {settings.schedule}, "
          f"device {figures['device']}, {torch.get_num_threads()} threads")
    print(f"  (a) course-style loop (batch 1, encode+decode every step): {figures['course_images_per_s']:8.2f} "
          f"images/s  ({figures['course_seconds']:.1f} s)")
    print(f"  (b) labcore batched loop (batch {figures['batch_size']}, encode+decode once): "
          f"{figures['batched_images_per_s']:8.2f} images/s  ({figures['batched_seconds']:.1f} s)")
    print(f"  speed-up (b)/(a): {figures['speedup']:.1f}x   peak RSS: {figures['peak_rss_mb']:.0f} MiB "
          f"(after (a): {figures['peak_rss_mb_after_course_loop']:.0f} MiB)")


# ----------------------------------------------------------------------------- FID benchmark

def _time_inception(model, images: torch.Tensor, batch_size: int, channels_last: bool, inference: bool) -> dict:
    """images/s and CPU s/image of ``model`` over ``images`` (floats in [0, 1]); one batch first,
    untimed (oneDNN builds its kernels on the first call of each shape)."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    outputs = []
    with torch.inference_mode() if inference else torch.no_grad():
        model(images[:batch_size].contiguous(memory_format=layout))              # warm-up, untimed
        t0, cpu0 = time.perf_counter(), _cpu_seconds()
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].contiguous(memory_format=layout)  # (B, 3, 64, 64)
            outputs.append(model(batch)[0].flatten(1))                         # (B, 2048)
        seconds, cpu_seconds = time.perf_counter() - t0, _cpu_seconds() - cpu0
    return {"images_per_s": len(images) / seconds, "cpu_s_per_image": cpu_seconds / len(images),
            "features": torch.cat(outputs)}                                    # (N, 2048)


def benchmark_fid(limit: int = 100, batch_sizes: tuple[int, ...] = (50, 25, 100), threads: tuple[int, ...] = (),
                  device: str = "cpu", progress: bool = True) -> dict:
    """Print and return images/s of the variants (see the module docstring); batch_sizes[0] is
    the batch size of (a)-(c), the others and ``threads`` are tried with (c)."""
    from . import fid_files, inception  # lazy: pytorch-fid's Inception loads only for this benchmark

    limit, batch_sizes = integer("limit", limit, 1), integers("batch_sizes", batch_sizes, 1)
    threads = [integer("threads", t, 1) for t in threads]

    images = fid_files.read_images(EMOJI64_DIR / "emoji" / "ground_truth", limit).float() / 255  # (N, 3, 64, 64)
    plain, fast = inception.get_inception(device), inception.fast_inception(device)
    default_threads, bs = torch.get_num_threads(), batch_sizes[0]
    runs = [("a", "pytorch-fid InceptionV3, no_grad", plain, bs, default_threads, False, False),
            ("b", "(a) + inference_mode, channels-last", copy.deepcopy(plain).to(memory_format=torch.channels_last),
             bs, default_threads, True, True),
            ("c", "(b) + folded batch norms", fast, bs, default_threads, True, True)]
    runs += [("c", f"(c) batch {b}", fast, b, default_threads, True, True) for b in batch_sizes[1:]]
    runs += [("c", f"(c) {t} thread(s)", fast, bs, t, True, True) for t in threads if t != default_threads]
    print(f"bench fid: {len(images)} emoji64 ground-truth images (64x64, resized to 299x299 inside), device "
          f"{device}, {default_threads} threads; labcore.fid.activations runs (c) at batch 50", flush=True)
    results, base = [], None
    try:
        for key, label, model, batch, n_threads, cl, inference in tqdm(runs, desc="bench fid", unit="variant",
                                                                        disable=not progress):
            torch.set_num_threads(n_threads)
            r = _time_inception(model, images.to(device), batch, cl, inference)
            base = r["features"] if base is None else base
            r.update(variant=key, label=label, batch_size=batch, threads=n_threads,
                     max_abs_diff=float((r.pop("features") - base).abs().max()))
            results.append(r)
    finally:
        torch.set_num_threads(default_threads)
    print(f"{'variant':40s} {'images/s':>9s} {'vs (a)':>7s} {'CPU s/image':>11s} {'max |diff| vs (a)':>18s}")
    for r in results:
        print(f"({r['variant']}) {r['label']:36s} {r['images_per_s']:9.2f} "
              f"{r['images_per_s'] / results[0]['images_per_s']:6.2f}x {r['cpu_s_per_image']:11.3f} "
              f"{r['max_abs_diff']:18.1e}")
    return {"images": len(images), "results": results}
