"""``labcore experiment``: see labcore.experiment."""

from labcore.experiment import add_arguments, run  # noqa: F401
