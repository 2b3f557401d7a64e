"""``python -m labcore`` and the ``labcore`` command: see ``labcore.cli``."""

import sys

from labcore.cli import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
