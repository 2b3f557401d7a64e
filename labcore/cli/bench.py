"""``labcore bench``: see labcore.bench."""

from labcore.bench import add_arguments, run  # noqa: F401
