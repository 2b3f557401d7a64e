"""``labcore demo``: see labcore.demo (shim: moved here in the restructure)."""

from labcore.demo import add_arguments, run  # noqa: F401
