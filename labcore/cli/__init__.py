"""The ``labcore`` command line: ``labcore --help`` lists the subcommands.

One small module per subcommand in this folder (``labcore/cli/<command>.py``, dashes become
underscores); each provides ``add_arguments(parser)`` and ``run(args) -> int``. Only the module
of the command being run is imported, so ``labcore --help`` answers quickly. The work itself is
done by the library modules the command module calls.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> one-line help; the module is labcore.cli.<name with underscores>
COMMANDS: dict[str, str] = {
    "demo": "the lab's main job on the bundled data and weights",
    "data-info": "check a dataset folder (bundled emoji64 or the course layout) and print its counts",
    "train-vqgan": "train the stage-1 VQGAN tokenizer",
    "eval-vqgan": "PSNR / SSIM / codebook usage of a VQGAN on the test set",
    "train": "train the stage-2 bidirectional transformer (MVTM)",
    "eval-transformer": "validation loss / masked-token accuracy of a transformer",
    "inpaint": "inpaint a test set by iterative decoding",
    "fid": "FID between a folder of predictions and a reference",
    "experiment": "schedule x iterations FID experiment",
    "bench": "benchmarks that print figures (train, inpaint, fid)",
}


def command_module(name: str):
    return importlib.import_module(f"labcore.cli.{name.replace('-', '_')}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s own arguments are added (its module is imported)."""
    parser = argparse.ArgumentParser(prog="labcore", description="labcore: a teaching lab for MaskGIT image inpainting")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = command_module(name)
            module.add_arguments(p)
            p.set_defaults(func=module.run)
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
