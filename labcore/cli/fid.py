"""``labcore fid``: see labcore.fid."""

from labcore.fid import add_arguments, run  # noqa: F401
