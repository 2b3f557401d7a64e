"""``labcore data-info``: see labcore.data."""

from labcore.data import add_arguments, run  # noqa: F401
