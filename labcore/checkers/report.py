"""What every checker returns (``CheckResult``: ``passed``, ``mistakes``, a printable report) and
the small tools the checkers share (calling student code, an isolated random stream).

A checker is a list of probes run in order, each given by its label (what it checks, in words)
and a function. The function returns ``Finding``s, ``ok()`` or ``fail(mistake id, detail)`` (the
id of the mistake it points to, ``labcore.checkers.mistakes``, and the smallest case it saw);
``run_probes`` labels them with the probe's label, so that each label is written once. The
first probe checks shapes and types; when it fails, nothing numerical is reported after it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import random
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from labcore.checkers.mistakes import MISTAKES
from labcore.checkers.ownership import reaches

OWN_CODE = "your own code, not labcore's solution"   # the label of every <exercise>.uses_reference finding


@dataclass
class Finding:
    ok: bool
    mistake: str | None = None  # an id of MISTAKES when not ok
    detail: str = ""            # the smallest case: expected vs got
    label: str = ""             # what was checked, in words: the probe's label unless given (``run_probes``)

    def __post_init__(self):
        if self.mistake is not None and self.mistake not in MISTAKES:
            raise KeyError(f"unknown mistake id {self.mistake!r} (add it to labcore/checkers/mistakes.py)")


def ok(detail: str = "", *, label: str = "") -> Finding:
    """A passed check; ``label``: only when it is not the label of the probe that returns it."""
    return Finding(True, None, detail, label)


def fail(mistake: str, detail: str = "", *, label: str = "") -> Finding:
    """A failed check naming ``mistake``; ``label``: only when it is not the probe's own."""
    return Finding(False, mistake, detail, label)


def uses_reference(exercise: str, detail: str) -> Finding:
    """The finding of code that reaches labcore's own implementation of ``exercise``."""
    return fail(f"{exercise}.uses_reference", detail, label=OWN_CODE)


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
            return (f"{self.checker}: not done yet (your code still raises NotImplementedError): fill it in and run "
                    "its cell again.")
        failed = [f for f in self.findings if not f.ok]
        head = "PASS" if self.passed else f"FAIL ({len(self.mistakes)} mistake{'s' * (len(self.mistakes) != 1)})"
        lines = [f"{self.checker}: {head}  [{len(self.findings)} checks, {self.seconds:.2f} s]"]
        for f in self.findings:
            lines.append(f"  {'ok  ' if f.ok else 'FAIL'}  {f.label}")
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


def unchanged(mistake: str, before: list, values: tuple, names: tuple[str, ...]) -> "Finding":
    """A finding: the inputs ``names`` (given as ``values``, copied in ``before``) were left as they were."""
    moved = changed(before, *values)
    if not moved:
        return ok()
    return fail(mistake, "your function changed its input " + ", ".join(names[i] for i in moved)
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
    """Run ``setup`` (the checker's fixed cases), then ``probes`` (label, function) in order, into a
    ``CheckResult``, all inside ``isolated_rng(seed)``. A probe returns findings (and strings:
    notes for the report); a finding without a label gets the probe's. The first probe checks
    shapes and types: when it fails the others are skipped. Any exception in a probe (the
    student's code raised, or returned something the probe could not use) is a finding with
    ``error_id``: a checker never shows a traceback of its own.
    ``own``: the student's function or class; when it reaches labcore's implementation of the
    exercise (``ownership.reaches``) the result is ``<exercise>.uses_reference`` and nothing runs."""
    result, t0 = CheckResult(checker), time.perf_counter()
    exercise = error_id.split(".")[0]
    reached = [] if own is None else reaches(own, exercise)
    if reached:
        result.findings.append(uses_reference(exercise, "your code reaches " + ", ".join(reached)))
        result.seconds = time.perf_counter() - t0
        return result
    with isolated_rng(seed):
        try:
            if setup is not None:
                setup()
        except Exception as err:  # noqa: BLE001 - a setup that runs the student's code (their constructor)
            result.findings.append(fail(error_id, str(StudentError(err)), label="sets up the check's cases"))
            probes = []
        for i, (label, probe) in enumerate(probes):
            found = _labelled(_run_probe(probe, error_id), label)
            result.findings += [f for f in found if isinstance(f, Finding)]
            result.notes += [f for f in found if isinstance(f, str)]
            if i == 0 and not all(f.ok for f in found if isinstance(f, Finding)):
                result.notes.append("the other checks were skipped: fix the shapes and types first")
                break
    result.seconds = time.perf_counter() - t0
    return result


def _run_probe(probe: Probe, error_id: str):
    """What ``probe()`` returns, or the ``error_id`` finding of what it raised."""
    try:
        return probe()
    except StudentError as err:
        return fail(error_id, str(err))
    except Exception as err:  # noqa: BLE001 - what the student's code returned broke the check itself
        return fail(error_id, str(StudentError(err)) + "\n(the check could not go on with what your "
                    "code returned: look at its type, shape and dtype)")


def _labelled(found, label: str) -> list:
    """A probe's findings (one or several) and notes as a list, each finding labelled ``label``
    unless it has a label of its own."""
    found = [found] if isinstance(found, Finding) else list(found)
    return [dataclasses.replace(f, label=f.label or label) if isinstance(f, Finding) else f for f in found]


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


def accepts(fn, *args, **kwargs) -> bool:
    """Whether ``fn(*args, **kwargs)`` binds to fn's signature (True when it has none to read)."""
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError:
        return False
    except ValueError:
        return True
    return True


def check_pair(checker: str, first: tuple[str, Callable | None, Callable],
               second: tuple[str, Callable | None, Callable], seed: int) -> CheckResult:
    """An exercise of two functions, either or both given: ``first`` / ``second`` are (name, the
    student's function or None, its check(fn, seed)); one merged result, a note per function left out."""
    given = [(name, fn, check) for name, fn, check in (first, second) if fn is not None]
    if not given:
        raise ValueError(f"{checker}: give {first[0]}, {second[0]} or both")
    skipped = [f"{name} was not given: not checked" for name, fn, _ in (first, second) if fn is None]
    return merge(checker, [check(fn, seed) for _, fn, check in given], skipped)
