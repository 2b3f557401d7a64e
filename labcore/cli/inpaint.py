"""``labcore inpaint``: see labcore.inpaint."""

from labcore.inpaint import add_arguments, run  # noqa: F401
