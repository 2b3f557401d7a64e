"""The ``labcore`` command line: ``labcore --help`` lists the subcommands.

Each subcommand lives in the module that does the work; that module provides
``add_arguments(parser)`` and ``run(args)``. Only the module of the command being run is
imported, so ``labcore --help`` answers quickly.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("labcore.demo", "the lab's main job on the bundled data and weights"),
    "data-info": ("labcore.data", "check a dataset folder (bundled emoji64 or the course layout) and print its counts"),
    "train-vqgan": ("labcore.train_vqgan", "train the stage-1 VQGAN tokenizer"),
    "eval-vqgan": ("labcore.train_vqgan", "PSNR / SSIM / codebook usage of a VQGAN on the test set"),
    "train": ("labcore.train", "train the stage-2 bidirectional transformer (MVTM)"),
    "eval-transformer": ("labcore.train", "validation loss / masked-token accuracy of a transformer"),
    "inpaint": ("labcore.inpaint", "inpaint a test set by iterative decoding"),
    "fid": ("labcore.fid", "FID between a folder of predictions and a reference"),
    "experiment": ("labcore.experiment", "schedule x iterations FID experiment"),
    "bench": ("labcore.bench", "benchmarks that print figures (train, inpaint)"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labcore", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    available = {}
    for name, (module, help_text) in COMMANDS.items():
        if importlib.util.find_spec(module) is None:  # command of a part not written yet
            continue
        available[name] = sub.add_parser(name, help=help_text, description=help_text)
    if command in available:
        mod = importlib.import_module(COMMANDS[command][0])
        add = getattr(mod, f"add_{command.replace('-', '_')}_arguments", None) or mod.add_arguments
        add(available[command])
        run = getattr(mod, f"run_{command.replace('-', '_')}", None) or mod.run
        available[command].set_defaults(func=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if not argv or "-h" in argv or "--help" in argv else 2
    try:
        return args.func(args) or 0
    except (FileNotFoundError, ValueError) as err:
        # bad input (a missing file, a wrong setting): say what and where, without a traceback
        print(f"labcore {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
