"""The adversarial suites of the checkers (``tests/test_adversarial_<exercise>.py``): code written
from the notebooks' signatures by someone trying to fool a checker, each a ``Case`` whose verdict
is asserted. A wrong case names the mistake id the checker must report; a right case (``expect``
None) must pass. ``scripts/adversarial-figures.py`` runs every suite and prints, per exercise,
how many wrong cases are named, caught only generically, or passed, and how many right ones pass.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterator

from labcore.checkers.mistakes import MISTAKES


@dataclass(frozen=True)
class Case:
    name: str                  # what the code does, in a few words (the test id)
    impl: object               # the student's function or class (or a tuple of them, as the checker takes them)
    expect: str | None = None  # the mistake id the checker must name; None: correct code, must pass

    def __post_init__(self):
        assert self.expect is None or self.expect in MISTAKES, f"{self.name}: unknown mistake id {self.expect!r}"


def suites() -> Iterator[tuple[str, ModuleType]]:
    """(exercise, module) of every adversarial suite, ``tests/test_adversarial_<exercise>.py``, in
    name order: each module holds its ``CASES`` and the ``CHECK`` they run through."""
    for path in sorted(Path(__file__).parent.glob("test_adversarial_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield path.stem.removeprefix("test_adversarial_"), module


def verdict(check: Callable, case: Case) -> str:
    """'passed right' / 'false alarm' for right code; 'named' / 'generic' / 'misnamed' / 'passed' /
    'crashed' for wrong code ('generic': failed with a generic id only)."""
    try:
        result = check(case.impl)
    except Exception as err:  # noqa: BLE001 - a checker that raises is the worst verdict, counted as such
        return f"crashed ({type(err).__name__}: {err})"
    if case.expect is None:
        return "passed right" if result.passed else "false alarm"
    if result.passed:
        return "passed"
    if case.expect in result.mistakes:
        return "named" if not MISTAKES[case.expect].generic else "generic"
    return "misnamed"


def assert_case(check: Callable, case: Case) -> None:
    """The test of one case: the checker never raises; right code passes; wrong code fails with
    ``case.expect`` among its mistakes."""
    result = check(case.impl)   # a checker that raises fails the test with its traceback
    if case.expect is None:
        assert result.passed, f"{case.name}: correct code was failed\n{result}"
    else:
        assert not result.passed, f"{case.name}: wrong code passed (expected {case.expect})\n{result}"
        assert case.expect in result.mistakes, f"{case.name}: expected {case.expect}, got {result.mistakes}\n{result}"
