"""What every checker returns (``CheckResult``: ``passed``, ``mistakes``, a printable report) and
the small tools the checkers share (calling student code, an isolated random stream).

A checker is a list of probes run in order. Each probe returns ``Finding``s: ok, or not ok with the
id of the mistake it points to (``labcore.checkers.mistakes``) and the smallest case it saw. The
first probe checks shapes and types; when it fails, nothing numerical is reported after it.
"""

from __future__ import annotations

import contextlib
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
        """The diagnosed ids, specific ones only when any probe named a cause."""
        ids = list(dict.fromkeys(f.mistake for f in self.findings if not f.ok and f.mistake))
        specific = [i for i in ids if not MISTAKES[i].generic]
        return specific or ids

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
    except Exception as err:  # noqa: BLE001 - anything the student's code raises is a finding
        raise StudentError(err) from err


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
               setup: Callable[[], None] | None = None) -> CheckResult:
    """Run ``setup`` (the checker's fixed cases), then ``probes`` (name, function) in order, into a
    ``CheckResult``, all inside ``isolated_rng(seed)``. A probe returns findings (and strings:
    notes for the report). The first probe checks shapes and types: when it fails the others are
    skipped. A ``StudentError`` in a probe is a finding with ``error_id``."""
    result, t0 = CheckResult(checker), time.perf_counter()
    with isolated_rng(seed):
        if setup is not None:
            setup()
        for i, (name, probe) in enumerate(probes):
            try:
                found = probe()
            except StudentError as err:
                found = fail(name, error_id, str(err))
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


def yours_or_reference(result: CheckResult, yours, reference, what: str):
    """The student's piece when its checker passed, else labcore's reference: a notebook goes on
    top to bottom either way, and says in one line which one the rest of it runs."""
    if result.passed:
        print(f"{what}: yours passed its check, so the rest of this notebook runs YOUR code.")
        return yours
    why = "not done yet" if result.not_done else "its check failed (see the report above)"
    print(f"{what}: {why}, so the rest of this notebook runs labcore's reference.")
    return reference


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
