"""``labcore bench train|inpaint|fid``: benchmarks that print figures (the work: ``labcore.bench``)."""

from __future__ import annotations

import argparse

from labcore.bench import TRAIN_VARIANTS, benchmark_fid, benchmark_inpaint, benchmark_train
from labcore.cli import positive_int
from labcore.decoding import DecodingSettings
from labcore.runtime import fast_mode


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="emoji64", help="model preset (default: emoji64)")
    p.add_argument("--steps", type=positive_int, default=None, help="training steps per variant (default: 50; 8 in fast mode)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="batch size (default: the preset's)")
    p.add_argument("--variants", default="abc", help="which of a, b, c to run (default: abc)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads per variant")
    p.add_argument("--tokens", default=None, help="tokens file (default: runs/tokens_emoji64.pt when present)")


def _run_train(args) -> int:
    steps = args.steps or (8 if fast_mode() else 50)
    bad = set(args.variants) - set(TRAIN_VARIANTS)
    if bad:
        raise ValueError(f"--variants: unknown {sorted(bad)}; choose from a, b, c")
    benchmark_train(args.preset, steps, args.batch_size, args.variants, args.threads, args.tokens)
    return 0


def _add_inpaint_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N test images")
    p.add_argument("--total-iter", type=int, default=8, help="decoding steps T (default: 8)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--device", default="cpu")


def _run_inpaint(args) -> int:
    settings = DecodingSettings(total_iter=args.total_iter)  # a bad T fails before any model is loaded
    benchmark_inpaint(settings=settings, batch_size=args.batch_size, limit=args.limit, device=args.device)
    return 0


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def _add_fid_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=positive_int, default=None, help="images per variant (default: 100; 8 in fast mode)")
    p.add_argument("--batch-sizes", type=_int_list, default=(50, 25, 100),
                   help="comma-separated; the first is used by (a)-(c), the others are tried with (c) "
                        "(default: 50,25,100)")
    p.add_argument("--threads", type=_int_list, default=(),
                   help="comma-separated torch thread counts to try with (c) (default: only the current one)")
    p.add_argument("--device", default="cpu")


def _run_fid(args) -> int:
    limit = args.limit if args.limit is not None else (8 if fast_mode() else 100)
    if limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    benchmark_fid(limit, args.batch_sizes, args.threads, args.device)
    return 0


BENCHMARKS = {
    "train": (_add_train_arguments, _run_train, "stage-2 training step: tokens/s, peak RSS, bf16 loss"),
    "inpaint": (_add_inpaint_arguments, _run_inpaint, "iterative decoding: images/s"),
    "fid": (_add_fid_arguments, _run_fid, "FID Inception: images/s of the variants tried"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, (add, run_fn, help_text) in BENCHMARKS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add(p)
        p.set_defaults(bench_func=run_fn)


def run(args: argparse.Namespace) -> int:
    return args.bench_func(args)
