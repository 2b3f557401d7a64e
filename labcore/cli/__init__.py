"""The ``labcore`` command line: ``labcore --help`` lists the subcommands.

One small module per subcommand in this folder (``labcore/cli/<command>.py``, dashes become
underscores); each provides ``add_arguments(parser)`` and ``run(args) -> int``, and may name
its own expected failures in ``ERRORS`` (a diverged loss for the training commands). Only the
module of the command being run is imported, so ``labcore --help`` answers quickly. The work
itself is done by the library modules the command module calls.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

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


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one ``labcore <command>: error: ...`` line (exit 2), like every
    other bad input, instead of the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def int_at_least(low: int):
    """An argparse type: an integer >= ``low`` (counts such as --limit, --batch-size, --steps)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


positive_int, non_negative_int = int_at_least(1), int_at_least(0)


def command_module(name: str):
    return importlib.import_module(f"labcore.cli.{name.replace('-', '_')}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s own arguments are added (its module is imported)."""
    parser = _Parser(prog="labcore", description="labcore: a teaching lab for MaskGIT image inpainting")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = command_module(name)
            module.add_arguments(p)
            p.set_defaults(func=module.run)
    return parser


def describe_error(err: BaseException) -> str:
    """One line for an expected failure: a file system error names its file and the reason."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror.lower()}"
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. Expected failures (a missing or unreadable file, a bad value, invalid
    YAML, an existing run, a diverged loss) become one ``labcore <command>: error: ...`` line and
    exit status 2; only a bug in labcore shows a traceback."""
    import yaml

    from labcore.runtime import LOG, note  # lazy: torch loads only once a command runs

    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command)
    try:
        args, unknown = parser.parse_known_args(argv)
    except SystemExit as done:                # --help, or a bad flag (its one error line is printed)
        return done.code if isinstance(done.code, int) else 2
    if unknown:
        prog = f"labcore {args.command}" if getattr(args, "command", None) else "labcore"
        print(f"{prog}: error: unrecognized arguments: {' '.join(unknown)} (see `{prog} --help`)", file=sys.stderr)
        return 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if not argv or "-h" in argv or "--help" in argv else 2
    expected = (OSError, ValueError, yaml.YAMLError, *getattr(command_module(args.command), "ERRORS", ()))
    notes = logging.StreamHandler(sys.stderr)  # every notice: one `labcore <command>: note: ...` line
    notes.setFormatter(logging.Formatter(f"labcore {args.command}: note: %(message)s"))
    LOG.addHandler(notes)
    LOG.propagate = False
    try:
        with warnings.catch_warnings():  # a Python warning, ours or a library's: a note line, no source line
            warnings.showwarning = lambda message, *_args, **_kw: note(str(message))
            return args.func(args) or 0
    except expected as err:
        print(f"labcore {args.command}: error: {describe_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"labcore {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        LOG.removeHandler(notes)
        LOG.propagate = True
