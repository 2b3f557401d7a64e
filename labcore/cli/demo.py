"""``labcore demo`` (``make demo``): the lab's main job on the bundled data and weights (the work:
``labcore.demo.run_demo``)."""

from __future__ import annotations

import argparse

from labcore.cli import positive_int
from labcore.paths import RESULTS_DIR


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=str(RESULTS_DIR), help="output folder (default: results/)")
    parser.add_argument("--limit", type=positive_int, help="inpaint only the first N test images")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from labcore.demo import run_demo  # lazy: torch, the models and Inception load only to run (not for --help)

    run_demo(args.out, args.limit, args.device, progress=not args.no_progress)
    return 0
