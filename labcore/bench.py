"""``labcore bench``: benchmarks that print figures (never timed tests).

- ``labcore bench train``: training-step throughput (tokens/s) and peak memory of the stage-2
  transformer on the default preset, side by side: (a) fp32 + explicit attention, (b) fp32 +
  fused attention (SDPA), (c) bf16 autocast + fused; and (c)'s loss after the last step vs (a)'s
  from the same seed (same batches, same masks). Each variant runs in its own process, so its
  peak RSS is its own.
- ``labcore bench inpaint``: iterative-decoding throughput (``labcore.inpaint.benchmark_inpaint``).
- ``labcore bench fid``: FID Inception throughput (images/s) on the emoji64 ground truth:
  (a) pytorch-fid's module as is (labcore before issue #13), (b) + ``inference_mode`` and
  channels-last, (c) + batch norms folded into the convolutions, which is what
  ``labcore.fid.activations`` runs; (c) again at other batch sizes and thread counts; and each
  variant's largest feature difference from (a).
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing as mp
import queue as queue_module
import resource
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .runtime import fast_mode

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
        from .train import load_tokens
        tokens = load_tokens(path)["train"]
        return tokens[:count], f"real tokens from {path}"
    g = torch.Generator().manual_seed(seed)
    zipf = 1.0 / torch.arange(1, K + 1)                                           # a few codes dominate, as in real maps
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
    """One variant in a fresh process: time ``steps`` training steps, report tokens/s, peak RSS,
    and the losses."""
    from .maskgit import gamma, mvtm_loss
    from .runtime import autocast, seed_everything, warmup_cosine
    from .transformer import BidirectionalTransformer, TransformerConfig

    try:
        label, fused, bf16 = TRAIN_VARIANTS[variant]
        if settings["threads"]:
            torch.set_num_threads(settings["threads"])
        device = torch.device("cpu")
        tokens = settings["tokens"]                                                    # (n, 256)
        bs, steps = settings["batch_size"], settings["steps"]
        seed_everything(settings["seed"])
        cfg = TransformerConfig(**{**settings["model"], "fused_attention": fused})
        model = BidirectionalTransformer(cfg).train()
        opt = torch.optim.AdamW(model.param_groups(settings["weight_decay"]), lr=settings["lr"], betas=(0.9, 0.95))
        schedule = warmup_cosine(opt, max(1, steps // 5), steps)                      # the training schedule, in small
        gamma_fn = gamma("cosine")
        losses, t0 = [], None
        for step in range(steps):
            if step == settings["untimed"]:
                t0, cpu0 = time.perf_counter(), _cpu_seconds()
            torch.manual_seed(step)                                                    # same dropout per step
            gen = torch.Generator().manual_seed(step)                                  # same masks per step
            batch = tokens[(step * bs) % len(tokens):][:bs]                            # (bs, 256)
            with autocast(device, bf16):
                out = mvtm_loss(model, batch, cfg.mask_token_id, gamma_fn, 0.1, False, gen)
            out["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            schedule.step()
            losses.append(out["loss"].item())
        seconds, cpu_seconds = time.perf_counter() - t0, _cpu_seconds() - cpu0
        timed = steps - settings["untimed"]
        queue.put({"variant": variant, "label": label, "steps_per_s": timed / seconds,
                   "tokens_per_s": timed * bs * tokens.shape[1] / seconds, "losses": losses,
                   "cpu_s_per_step": cpu_seconds / timed,
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    except BaseException as err:  # report instead of hanging the parent
        queue.put({"variant": variant, "error": f"{type(err).__name__}: {err}"})


def benchmark_train(preset: str = "emoji64", steps: int = 50, batch_size: int | None = None,
                    variants: str = "abc", threads: int | None = None, tokens_path=None, seed: int = 0,
                    untimed: int = 3) -> dict:
    """Run the variants one after another, each in its own process; print and return the table."""
    from .train import DEFAULT_TOKENS, PRESETS, cpu_has_fast_bf16, load_tokens, tokenizer_codebook_size

    model = dict(PRESETS[preset]["model"])
    train = PRESETS[preset]["train"]
    batch_size = batch_size or train["batch_size"]
    tokens_path = tokens_path or DEFAULT_TOKENS
    K = load_tokens(tokens_path).get("num_codebook_vectors") if Path(tokens_path).is_file() else None
    K = int(K or tokenizer_codebook_size() or 1024)
    model["num_codebook_vectors"] = K
    untimed = min(untimed, max(steps - 1, 0))
    tokens, source = _bench_tokens(tokens_path, steps * batch_size, K, seed)
    settings = dict(model=model, tokens=tokens, batch_size=batch_size, steps=steps, seed=seed, threads=threads,
                    lr=train["lr"], weight_decay=train["weight_decay"], untimed=untimed)
    ctx = mp.get_context("spawn")
    results = {}
    print(f"bench train: preset {preset} ({model['dim']}x{model['n_layers']}, hidden {model['hidden_dim']}, "
          f"{model['num_heads']} heads, K={K}), batch {batch_size} x 256 tokens, {steps} steps "
          f"({untimed} untimed), {threads or torch.get_num_threads()} threads, {source}", flush=True)
    for v in variants:
        queue = ctx.Queue()
        proc = ctx.Process(target=_train_variant, args=(v, settings, queue))
        proc.start()
        while True:  # a child killed outright (e.g. out of memory) never answers: notice it
            try:
                result = queue.get(timeout=10)
                break
            except queue_module.Empty:
                if not proc.is_alive():
                    result = {"variant": v, "error": f"the process died (exit code {proc.exitcode})"}
                    break
        proc.join()
        if "error" in result:
            raise RuntimeError(f"bench train variant ({v}) failed: {result['error']}")
        results[v] = result
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
            print(f"note: this CPU has no native bf16 (no avx512_bf16/amx in /proc/cpuinfo), so bf16 matmuls are "
                  f"emulated: (c) runs at {speed:.2f}x (a). `labcore train --precision auto` uses fp32 here.")
    return summary


def _add_train_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="emoji64", help="model preset (default: emoji64)")
    p.add_argument("--steps", type=int, default=None, help="training steps per variant (default: 50; 8 in fast mode)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default: the preset's)")
    p.add_argument("--variants", default="abc", help="which of a, b, c to run (default: abc)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per variant")
    p.add_argument("--tokens", default=None, help="tokens file (default: runs/tokens_emoji64.pt when present)")


def _run_train_bench(args) -> int:
    steps = args.steps or (8 if fast_mode() else 50)
    bad = set(args.variants) - set(TRAIN_VARIANTS)
    if bad:
        raise ValueError(f"--variants: unknown {sorted(bad)}; choose from a, b, c")
    benchmark_train(args.preset, steps, args.batch_size, args.variants, args.threads, args.tokens)
    return 0


# ----------------------------------------------------------------------------- inpaint benchmark
# Owned by the inpainting engineer: the work is ``labcore.inpaint.benchmark_inpaint``; this
# section only wires it to ``labcore bench inpaint``.

def _add_inpaint_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=None, help="only the first N test images")
    p.add_argument("--total-iter", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")


def _run_inpaint_bench(args) -> int:
    from .inpaint import benchmark_inpaint

    benchmark_inpaint(total_iter=args.total_iter, batch_size=args.batch_size, limit=args.limit, device=args.device)
    return 0


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
                  device: str = "cpu") -> dict:
    """Print and return images/s of the variants (see the module docstring); batch_sizes[0] is
    the batch size of (a)-(c), the others and ``threads`` are tried with (c)."""
    from . import fid
    from .paths import EMOJI64_DIR

    images = fid.read_images(EMOJI64_DIR / "emoji" / "ground_truth")[:limit].float() / 255  # (N, 3, 64, 64)
    plain, fast = fid.get_inception(device), fid.fast_inception(device)
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
        for key, label, model, batch, n_threads, cl, inference in tqdm(runs, desc="bench fid", unit="variant"):
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


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def _add_fid_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=None, help="images per variant (default: 100; 8 in fast mode)")
    p.add_argument("--batch-sizes", type=_int_list, default=(50, 25, 100),
                   help="comma-separated; the first is used by (a)-(c), the others are tried with (c) "
                        "(default: 50,25,100)")
    p.add_argument("--threads", type=_int_list, default=(),
                   help="comma-separated torch thread counts to try with (c) (default: only the current one)")
    p.add_argument("--device", default="cpu")


def _run_fid_bench(args) -> int:
    limit = args.limit if args.limit is not None else (8 if fast_mode() else 100)
    if limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    benchmark_fid(limit, args.batch_sizes, args.threads, args.device)
    return 0


# ----------------------------------------------------------------------------- CLI

BENCHMARKS = {
    "train": (_add_train_bench_arguments, _run_train_bench, "stage-2 training step: tokens/s, peak RSS, bf16 loss"),
    "inpaint": (_add_inpaint_bench_arguments, _run_inpaint_bench, "iterative decoding: images/s"),
    "fid": (_add_fid_bench_arguments, _run_fid_bench, "FID Inception: images/s of the variants tried"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, (add, run_fn, help_text) in BENCHMARKS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add(p)
        p.set_defaults(bench_func=run_fn)


def run(args) -> int:
    return args.bench_func(args)
