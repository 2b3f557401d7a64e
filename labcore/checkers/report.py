"""What every checker returns (``CheckResult``: ``passed``, ``mistakes``, a printable report) and
the small tools the checkers share (calling student code, an isolated random stream).

A checker is a list of probes run in order. Each probe returns ``Finding``s: ok, or not ok with the
id of the mistake it points to (``labcore.checkers.mistakes``) and the smallest case it saw. The
first probe checks shapes and types; when it fails, nothing numerical is reported after it.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import random
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from labcore.checkers.mistakes import MISTAKES
from labcore.checkers.ownership import reaches


@dataclass
class Finding:
    check: str                  # what was checked, in words
    ok: bool
    mistake: str | None = None  # an id of MISTAKES when not ok
    detail: str = ""            # the smallest case: expected vs got

    def __post_init__(self):
        if self.mistake is not None and self.mistake not in MISTAKES:
            raise KeyError(f"unknown mistake id {self.mistake!r} (add it to labcore/checkers/mistakes.py)")


def ok(check: str, detail: str = "") -> Finding:
    return Finding(check, True, None, detail)


def fail(check: str, mistake: str, detail: str = "") -> Finding:
    return Finding(check, False, mistake, detail)


@dataclass
class CheckResult:
    """``passed`` (also the truth value), ``mistakes`` (ids), ``findings``; ``str()`` is the report."""
    checker: str
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.findings) and all(f.ok for f in self.findings)

    @property
    def mistakes(self) -> list[str]:
        """The id of every failed probe, in the order the probes ran (each once)."""
        return list(dict.fromkeys(f.mistake for f in self.findings if not f.ok and f.mistake))

    def __bool__(self) -> bool:
        return self.passed

    @property
    def not_done(self) -> bool:
        """The exercise is still the stub: the student's code raised NotImplementedError."""
        return any(not f.ok and f.detail.startswith("NotImplementedError") for f in self.findings)

    def __str__(self) -> str:
        if self.not_done:
            return f"{self.checker}: not done yet (your code still raises NotImplementedError): fill it in and run its cell again."
        failed = [f for f in self.findings if not f.ok]
        head = "PASS" if self.passed else f"FAIL ({len(self.mistakes)} mistake{'s' * (len(self.mistakes) != 1)})"
        lines = [f"{self.checker}: {head}  [{len(self.findings)} checks, {self.seconds:.2f} s]"]
        for f in self.findings:
            lines.append(f"  {'ok  ' if f.ok else 'FAIL'}  {f.check}")
            if f.detail:
                lines += [f"        {line}" for line in f.detail.splitlines()]
        if failed:
            lines.append("what is wrong, and the fix:")
            for i in self.mistakes:
                m = MISTAKES[i]
                lines += [f"  [{i}] {m.message}", f"      fix: {m.fix}"]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    __repr__ = __str__


_PACKAGE = str(Path(__file__).resolve().parents[1])  # labcore/: the checkers' own frames are not the student's


class StudentError(Exception):
    """The student's code raised: carries the exception and the last frame of its traceback."""

    def __init__(self, err: BaseException):
        frames = traceback.extract_tb(err.__traceback__)
        # the student's line, not the library frame the error surfaced in (torch's __getattr__, ...)
        own = [f for f in frames if "site-packages" not in f.filename and not f.filename.startswith(_PACKAGE)]
        where = f" (line {own[-1].lineno} of {own[-1].name})" if own else ""
        super().__init__(f"{type(err).__name__}: {err}{where}")


def call(fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)``; an exception it raises becomes a ``StudentError``."""
    try:
        return fn(*args, **kwargs)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - anything the student's code raises is a finding
        raise StudentError(err) from err


def snapshot(*values) -> list:
    """Copies of the tensors and arrays among ``values`` (None for anything else), to tell later
    whether the student's code changed an input it was given (``changed``)."""
    return [v.detach().clone() if torch.is_tensor(v) else v.copy() if isinstance(v, np.ndarray) else None
            for v in values]


def changed(before: list, *values) -> list[int]:
    """The positions of the inputs that differ from their ``snapshot`` (value, shape or dtype)."""
    out = []
    for i, (old, new) in enumerate(zip(before, values)):
        if old is None:
            continue
        same = (torch.equal(old, new.detach()) and old.dtype == new.dtype) if torch.is_tensor(new) else \
            (isinstance(new, np.ndarray) and new.shape == old.shape and bool(np.array_equal(old, new, equal_nan=True)))
        if not same:
            out.append(i)
    return out


def unchanged(check: str, mistake: str, before: list, values: tuple, names: tuple[str, ...]) -> "Finding":
    """A finding: the inputs ``names`` (given as ``values``, copied in ``before``) were left as they were."""
    moved = changed(before, *values)
    if not moved:
        return ok(check)
    return fail(check, mistake, "your function changed its input " + ", ".join(names[i] for i in moved)
                + " (an in-place operation: x += ..., x[...] = ..., x.masked_fill_(...), x.mul_(...))")


@contextlib.contextmanager
def isolated_rng(seed: int):
    """Seed torch, numpy and random with ``seed`` inside, restore the caller's streams after:
    a checker neither depends on nor disturbs the notebook's random state. One torch thread
    inside: the checkers' tensors are tiny, and on a busy machine threads that wait for each
    other make them 10x slower."""
    np_state, py_state, threads = np.random.get_state(), random.getstate(), torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            np.random.set_state(np_state)
            random.setstate(py_state)


Probe = Callable[[], "Finding | Iterable[Finding | str]"]


def run_probes(checker: str, probes: list[tuple[str, Probe]], error_id: str, seed: int = 0,
               setup: Callable[[], None] | None = None, own=None) -> CheckResult:
    """Run ``setup`` (the checker's fixed cases), then ``probes`` (name, function) in order, into a
    ``CheckResult``, all inside ``isolated_rng(seed)``. A probe returns findings (and strings:
    notes for the report). The first probe checks shapes and types: when it fails the others are
    skipped. Any exception in a probe (the student's code raised, or returned something the probe
    could not use) is a finding with ``error_id``: a checker never shows a traceback of its own.
    ``own``: the student's function or class; when it reaches labcore's implementation of the
    exercise (``ownership.reaches``) the result is ``<exercise>.uses_reference`` and nothing runs."""
    result, t0 = CheckResult(checker), time.perf_counter()
    exercise = error_id.split(".")[0]
    used = [] if own is None else reaches(own, exercise)
    if used:
        result.findings.append(fail("your own code, not labcore's solution", f"{exercise}.uses_reference",
                                    "your code reaches " + ", ".join(used)))
        result.seconds = time.perf_counter() - t0
        return result
    with isolated_rng(seed):
        try:
            if setup is not None:
                setup()
        except Exception as err:  # noqa: BLE001 - a setup that runs the student's code (their constructor)
            result.findings.append(fail("sets up the check's cases", error_id, str(StudentError(err))))
            probes = []
        for i, (name, probe) in enumerate(probes):
            try:
                found = probe()
            except StudentError as err:
                found = fail(name, error_id, str(err))
            except Exception as err:  # noqa: BLE001 - what the student's code returned broke the check itself
                found = fail(name, error_id, str(StudentError(err)) + "\n(the check could not go on with what your "
                             "code returned: look at its type, shape and dtype)")
            found = [found] if isinstance(found, Finding) else list(found)
            result.findings += [f for f in found if isinstance(f, Finding)]
            result.notes += [f for f in found if isinstance(f, str)]
            if i == 0 and not all(f.ok for f in found if isinstance(f, Finding)):
                result.notes.append("the other checks were skipped: fix the shapes and types first")
                break
    result.seconds = time.perf_counter() - t0
    return result


def short(t, n: int = 16) -> str:
    """A tensor's first values, on one line."""
    values = torch.as_tensor(t).flatten().tolist()
    text = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in values[:n])
    return f"[{text}{', ...' if len(values) > n else ''}]"


def describe(x) -> str:
    """What a returned value is, in words: 'tensor (2, 256) int64', 'tuple of 3', 'float'."""
    if torch.is_tensor(x):
        return f"tensor {tuple(x.shape)} {str(x.dtype).replace('torch.', '')}"
    if isinstance(x, np.ndarray):
        return f"numpy array {x.shape} {x.dtype}"
    if isinstance(x, (tuple, list)):
        return f"{type(x).__name__} of {len(x)}"
    return type(x).__name__


def merge(checker: str, parts: list[CheckResult], notes: list[str] = ()) -> CheckResult:
    """One result of several checks run one after the other (an exercise with two functions)."""
    return CheckResult(checker, [f for p in parts for f in p.findings], [*notes, *(n for p in parts for n in p.notes)],
                       sum(p.seconds for p in parts))


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
            print(f"{what}: not checked yet (run its check cell), so the rest of this notebook runs labcore's reference.")
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


def accepts(fn, *args, **kwargs) -> bool:
    """Whether ``fn(*args, **kwargs)`` binds to fn's signature (True when it has none to read)."""
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError:
        return False
    except ValueError:
        return True
    return True


def check_pair(checker: str, first: tuple[str, Callable | None, Callable], second: tuple[str, Callable | None, Callable],
               seed: int) -> CheckResult:
    """An exercise of two functions, either or both given: ``first`` / ``second`` are (name, the
    student's function or None, its check(fn, seed)); one merged result, a note per function left out."""
    given = [(name, fn, check) for name, fn, check in (first, second) if fn is not None]
    if not given:
        raise ValueError(f"{checker}: give {first[0]}, {second[0]} or both")
    skipped = [f"{name} was not given: not checked" for name, fn, _ in (first, second) if fn is None]
    return merge(checker, [check(fn, seed) for _, fn, check in given], skipped)
