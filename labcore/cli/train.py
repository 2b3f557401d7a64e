"""``labcore train``: see labcore.train."""

from labcore.train import add_arguments, run  # noqa: F401
