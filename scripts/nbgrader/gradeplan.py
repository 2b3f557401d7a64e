"""What a grading run needs to know about the lab, read from the released notebooks' nbgrader
metadata (never hard-coded): which cells are graded, their points, which exercise each check cell
checks, and what a submission did to them (a missing or unreadable notebook, a deleted or edited
locked cell; after execution: a syntax error, a cell stopped by the time limit, the mistake ids
its check printed).

No labcore import: the course tooling stands beside the package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

MISTAKE_ID = re.compile(r"\[([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\]")  # "[decode.shared_gumbel]" in a report
TIMEOUT_ERROR = "CellTimeoutError"  # nbgrader's Execute.error_on_timeout names a stopped cell so
ANSWER_STUB = "YOUR ANSWER HERE"    # nbgrader's ClearSolutions.text_stub: a written answer as released
TO_GRADE = "to grade by hand"       # the note of a written answer nbgrader leaves to a TA (no points yet)


def meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


@dataclass
class Check:
    notebook: str            # file name, e.g. "03_iterative_decoding.ipynb"
    grade_id: str            # the graded (check) cell
    points: float
    exercises: list[str] = field(default_factory=list)  # grade ids of the exercise cells it checks
    manual: bool = False     # a written answer (nbgrader: grade and solution), graded by hand: no check runs


@dataclass
class NotebookPlan:
    name: str
    checks: list[Check]
    locked: dict[str, str]   # grade_id -> source as released, of every locked cell
    order: list[str]         # every grade_id, in cell order

    @property
    def points(self) -> float:
        return sum(c.points for c in self.checks)

    def check_of(self, grade_id: str) -> Check | None:
        """The check cell a cell belongs to: itself, the check of an exercise, or (for any other
        cell) the first check after it; None past the last check."""
        for check in self.checks:
            if grade_id == check.grade_id or grade_id in check.exercises:
                return check
        return None


def read_plan(path: Path) -> NotebookPlan:
    """The graded cells of one released (or solved) notebook, in order. An exercise is checked by
    the graded cell named ``check_<exercise>`` when there is one, else by the first graded cell after it."""
    cells = [c for c in nbformat.read(path, as_version=4).cells if meta(c).get("grade_id")]
    ids = [meta(c)["grade_id"] for c in cells]
    checks = [Check(path.name, meta(c)["grade_id"], float(meta(c).get("points", 0)),
                    manual=bool(meta(c).get("solution"))) for c in cells if meta(c).get("grade")]
    by_id = {c.grade_id: c for c in checks}
    for i, cell in enumerate(cells):
        if meta(cell).get("solution") and not meta(cell).get("grade"):
            exercise = ids[i]
            later = [by_id[g] for g in ids[i + 1:] if g in by_id]
            check = by_id.get(f"check_{exercise}") or (later[0] if later else None)
            if check is not None:
                check.exercises.append(exercise)
    locked = {meta(c)["grade_id"]: c.source for c in cells if meta(c).get("locked")}
    return NotebookPlan(path.name, checks, locked, ids)


def graded_plans(notebooks: list[Path]) -> list[NotebookPlan]:
    """The plans of the notebooks that carry points (a notebook without points is not executed)."""
    return [p for p in map(read_plan, notebooks) if p.points > 0]


# ----------------------------------------------------------------------------- before execution

HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[^\n]*\n?", re.S | re.M)


def _same(submitted: str, released: str) -> bool:
    """The same code, up to blank lines at the ends and the hidden tests (a solved copy has them)."""
    return HIDDEN.sub("", submitted).strip().splitlines() == HIDDEN.sub("", released).strip().splitlines()


def open_submitted(path: Path, plan: NotebookPlan, truncate: bool) -> tuple[object | None, dict[str, list[str]]]:
    """The submitted notebook as nbgrader will grade it (None: nothing to grade) and the notes on
    it, per check grade id ("" = the whole notebook). ``truncate``: drop every cell after the last
    code cell that nbgrader knows (grading mode: later cells only demonstrate, they cannot change a
    grade) but the markdown cells it knows (written answers and their questions: nothing runs)."""
    notes: dict[str, list[str]] = {}
    if not path.is_file():
        return None, {"": ["notebook missing: 0 points for it"]}
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # noqa: BLE001 - not JSON, not a notebook: this notebook only costs its points
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:120]
        return None, {"": [f"not a readable notebook ({type(err).__name__}: {first}): 0 points for it"]}
    present = {meta(c).get("grade_id"): c for c in nb.cells if meta(c).get("grade_id")}
    for grade_id in plan.order:
        check = plan.check_of(grade_id)
        where = check.grade_id if check else ""
        if grade_id not in present:
            what = "check cell" if check and check.grade_id == grade_id else "cell"
            notes.setdefault(where, []).append(f"{what} {grade_id} deleted")
        elif grade_id in plan.locked and not _same(present[grade_id].source, plan.locked[grade_id]):
            notes.setdefault(where, []).append(f"locked cell {grade_id} edited: graded as released")
    if truncate:
        known = [i for i, c in enumerate(nb.cells) if meta(c).get("grade_id") in plan.order]
        runs = [i for i in known if nb.cells[i].cell_type == "code"]
        cut = runs[-1] + 1 if runs else 0
        nb.cells = nb.cells[:cut] + [nb.cells[i] for i in known if i >= cut]
    return nb, notes


# ----------------------------------------------------------------------------- after execution

def _text(cell) -> str:
    """What a cell printed: its streams, results and errors, as plain text."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
        elif "data" in out:
            parts.append(str(out.data.get("text/plain", "")))
    return "\n".join(parts)


def read_autograded(path: Path, plan: NotebookPlan, limit: float) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """From an executed notebook: the mistake ids each check cell printed, and the notes on what
    broke (syntax errors, cells stopped by the time limit), each under the check it costs."""
    ids: dict[str, list[str]] = {}
    notes: dict[str, list[str]] = {}
    pending: list[str] = []          # notes of unmarked cells: they go to the next check
    for cell in nbformat.read(path, as_version=4).cells:
        grade_id = meta(cell).get("grade_id")
        found = []
        for out in cell.get("outputs", []):
            if out.output_type != "error":
                continue
            if out.ename == TIMEOUT_ERROR:
                found.append(f"time limit ({limit:g} s) reached in {grade_id or 'an unmarked cell'}: stopped")
            elif out.ename in ("SyntaxError", "IndentationError", "TabError"):
                found.append(f"{out.ename} in {grade_id or 'an unmarked cell'}")
        check = plan.check_of(grade_id) if grade_id else None
        if check is None:
            pending += found
            continue
        notes.setdefault(check.grade_id, []).extend(pending + found)
        pending = []
        if grade_id == check.grade_id:
            if "not done yet" in _text(cell) or (check.manual and cell.source.strip() == ANSWER_STUB):
                notes[check.grade_id].append("not done yet (the stub)")
            ids[grade_id] = list(dict.fromkeys(MISTAKE_ID.findall(_text(cell))))
    if pending:
        notes.setdefault("", []).extend(pending)
    return ids, {k: v for k, v in notes.items() if v}
