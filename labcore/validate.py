"""One validation convention for every setting labcore takes (configs, decoding settings,
training settings, library arguments): a function per kind of value that returns the value,
normalised, or raises one ``ValueError`` naming the parameter, what it must be and what it got.

Library errors name the *parameter* (``total_iter (T)``, ``batch_size``); the command line adds
nothing: argparse only parses text, and the library call validates.
"""

from __future__ import annotations

import math
import numbers


def _is_real(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Real)


def integer(name: str, value, low: int | None = None, high: int | None = None, allowed: str | None = None) -> int:
    """``value`` as an int in [low, high] (None = unbounded); a float such as 8.0 counts."""
    ok = _is_real(value) and math.isfinite(value) and float(value).is_integer()
    ok = ok and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        raise ValueError(f"{name} must be {allowed or _range('an integer', low, high)}, got {value!r}")
    return int(value)


def integers(name: str, value, low: int | None = None, high: int | None = None,
             allowed: str | None = None) -> list[int]:
    """``value``, a non-empty list (or tuple), as a list of ints each in [low, high] (as ``integer``)."""
    if isinstance(value, (list, tuple)) and value:
        try:
            return [integer(name, v, low, high) for v in value]
        except ValueError:
            pass
    kind = allowed or f"a non-empty list of {_range('integers', low, high)}"
    raise ValueError(f"{name} must be {kind}, got {value!r}")


def number(name: str, value, low: float | None = None, high: float | None = None, allowed: str | None = None,
           low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float in [low, high] (``low_open``/``high_open``: the bound excluded,
    e.g. a dropout rate in [0, 1)); nan and inf fail."""
    ok = _is_real(value) and math.isfinite(value)
    ok = ok and (low is None or (value > low if low_open else value >= low))
    ok = ok and (high is None or (value < high if high_open else value <= high))
    if not ok:
        kind = allowed or _range('a finite number', low, high, low_open, high_open)
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return float(value)


def one_of(name: str, value, choices) -> str:
    """``value`` (a string, compared stripped and lower-case) as one of ``choices``."""
    key = value.strip().lower() if isinstance(value, str) else value
    if key not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
    return key


def _range(kind: str, low, high, low_open: bool = False, high_open: bool = False) -> str:
    if low is not None and high is not None:
        return f"{kind} in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{kind} {'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{kind} {'<' if high_open else '<='} {high}"
    return kind
