"""Which piece a notebook runs after a check: the student's when its latest check passed, labcore's
otherwise. Every checker records the piece it checked and its result (``record``);
``yours_or_reference("decode_step")`` then picks, and says in one line which one the rest of the
notebook runs. Each piece falls back alone; ``REFERENCE_OF`` names labcore's piece of each
(imported only when asked for: the notebooks never put it in the student's namespace).
"""

from __future__ import annotations

import importlib
import sys

from labcore.checkers.report import CheckResult

# name of an exercise's function or class -> labcore's piece with its signature (the fallback)
REFERENCE_OF = {
    "encode_to_z": "labcore.checkers.tokens.reference_encode_to_z",
    "MultiHeadAttention": "labcore.attention.MultiHeadAttention",
    "gamma_func": "labcore.schedules.gamma",
    "mask_tokens": "labcore.checkers.masking.reference_mask_tokens",
    "masked_loss": "labcore.checkers.masking.reference_masked_loss",
    "configure_optimizers": "labcore.checkers.training.reference_configure_optimizers",
    "train_one_epoch": "labcore.checkers.training.reference_train_one_epoch",
    "decode_step": "labcore.decoding.decode_step",
    "frechet_distance": "labcore.checkers.frechet.reference_frechet_distance",
}
_CHECKED: dict[str, tuple[object, CheckResult]] = {}   # name -> (what was checked, its result)


def record(name: str, checked, result: CheckResult) -> CheckResult:
    """Remember the latest check of the exercise piece ``name`` (a key of ``REFERENCE_OF``):
    ``yours_or_reference(name)`` then picks what was checked, if it passed. Returns ``result``."""
    _CHECKED[name] = (checked, result)
    return result


def last_check(name: str) -> CheckResult | None:
    """The latest result recorded for ``name`` in this session (None when never checked)."""
    return _CHECKED.get(name, (None, None))[1]


def reference(name: str):
    """labcore's piece for the exercise piece ``name`` (imported when asked for: the notebooks never
    put it in the student's namespace)."""
    module, _, attr = REFERENCE_OF[name].rpartition(".")
    return getattr(importlib.import_module(module), attr)


def yours_or_reference(result, yours=None, reference_piece=None, what: str | None = None):
    """The student's piece when its check passed, else labcore's: a notebook goes on top to bottom
    either way, and says in one line which one the rest of it runs.

    ``yours_or_reference("decode_step")`` (the notebooks' form): the object that the latest check of
    ``decode_step`` ran on, if that check passed, else labcore's reference (``REFERENCE_OF``). Each
    piece falls back alone, and re-running cells in any order picks what the last check saw.
    ``yours_or_reference(result, yours, reference, "what")``: the same with the pieces given."""
    if isinstance(result, str):
        name = what = result
        if name not in REFERENCE_OF:
            raise ValueError(f"yours_or_reference: unknown exercise piece {name!r}; one of {', '.join(REFERENCE_OF)}")
        checked, result = _CHECKED.get(name, (None, None))
        yours, reference_piece = checked, reference(name)
        current = sys._getframe(1).f_globals.get(name)
        if result is None:
            print(f"{what}: not checked yet (run its check cell), so the rest of this notebook runs labcore's "
                  "reference.")
            return reference_piece
        if result.passed and current is not None and current is not checked:
            print(f"{what}: your cell was run again after its check: run the check cell too. Until then the rest "
                  "of this notebook runs the version that passed.")
            return yours
    if result.passed:
        print(f"{what}: yours passed its check, so the rest of this notebook runs YOUR code.")
        return yours
    why = "not done yet" if result.not_done else "its check failed (see the report above)"
    print(f"{what}: {why}, so the rest of this notebook runs labcore's reference.")
    return reference_piece
