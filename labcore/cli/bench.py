"""``labcore bench train|inpaint|fid``: benchmarks that print figures (the work: ``labcore.bench``).

argparse only parses the text; ``labcore.bench`` validates the values (errors name the parameter)."""

from __future__ import annotations

import argparse

from labcore.bench import benchmark_fid, benchmark_inpaint, benchmark_train
from labcore.runtime import fast_mode


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="emoji64", help="model preset (default: emoji64)")
    p.add_argument("--steps", type=int, default=None, help="training steps per variant (default: 50; 8 in fast mode)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default: the preset's)")
    p.add_argument("--variants", default="abc", help="which of a, b, c to run (default: abc)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per variant")
    p.add_argument("--tokens", default=None, help="tokens file (default: runs/tokens_emoji64.pt when present)")


def _run_train(args) -> int:
    steps = args.steps if args.steps is not None else (8 if fast_mode() else 50)
    benchmark_train(args.preset, steps, args.batch_size, args.variants, args.threads, args.tokens)
    return 0


def _add_inpaint_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=None, help="only the first N test images")
    p.add_argument("--total-iter", type=int, default=8, help="decoding steps T (default: 8)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _run_inpaint(args) -> int:
    benchmark_inpaint(total_iter=args.total_iter, batch_size=args.batch_size, limit=args.limit, device=args.device,
                      progress=not args.no_progress)   # a bad T fails before any model is loaded
    return 0


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _add_fid_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=None, help="images per variant (default: 100; 8 in fast mode)")
    p.add_argument("--batch-sizes", type=_int_list, default=(50, 25, 100),
                   help="comma-separated; the first is used by (a)-(c), the others are tried with (c) "
                        "(default: 50,25,100)")
    p.add_argument("--threads", type=_int_list, default=(),
                   help="comma-separated torch thread counts to try with (c) (default: only the current one)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _run_fid(args) -> int:
    limit = args.limit if args.limit is not None else (8 if fast_mode() else 100)
    benchmark_fid(limit, args.batch_sizes, args.threads, args.device, progress=not args.no_progress)
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
