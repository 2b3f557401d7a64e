"""The lab as an nbgrader assignment: release the student notebooks, autograde submissions.

The committed notebooks are the SOLVED versions, marked for nbgrader: solution regions between
``### BEGIN SOLUTION`` / ``### END SOLUTION`` in exercise cells, and locked check cells whose
visible part prints the checker's report and whose ``### BEGIN HIDDEN TESTS`` part asserts it.
Everything here is nbgrader's own machinery, run on a throw-away course directory (default
``build/nbgrader/``, ignored by git) that is rebuilt from those notebooks on every call:

    release(notebooks)          nbgrader generate_assignment  -> ROOT/release/maskgit_lab/
    grade(submission dirs)      nbgrader autograde + generate_feedback, scores from the gradebook
    autograde(...)              release, then grade (what a TA runs)

``release.py`` and ``autograde.py`` beside this file are the command lines (``make student``,
``make autograde-check``). No labcore import: the course tooling stands beside the package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ASSIGNMENT = "maskgit_lab"
DEFAULT_ROOT = REPO / "build" / "nbgrader"


def default_notebooks() -> list[Path]:
    """The lab's notebooks, in order: notebooks/NN_*.ipynb."""
    return sorted((REPO / "notebooks").glob("[0-9]*.ipynb"))


# Written into the course root on every call (nbgrader reads nbgrader_config.py from its cwd).
CONFIG = '''\
# Written by scripts/nbgrader/course.py on every run: edit that file, not this one.
c = get_config()
c.CourseDirectory.course_id = "labcore"
c.CourseDirectory.root = {root!r}
# The release keeps no trace of the solved run: outputs, execution counts, per-cell timings
# ("execution") and the notebook-level widget state all go (only kernelspec/language_info stay).
c.ClearOutput.remove_metadata_fields = {{"collapsed", "scrolled", "execution"}}
c.ClearMetadataPreprocessor.enabled = True
c.ClearMetadataPreprocessor.clear_cell_metadata = False
c.ClearMetadataPreprocessor.preserve_nb_metadata_mask = {{"kernelspec", "language_info"}}
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.converters import GenerateAssignment
from nbgrader.preprocessors import ClearOutput
_steps = GenerateAssignment.class_traits()["preprocessors"].make_dynamic_default()  # nbgrader's own list
_steps.insert(_steps.index(ClearOutput) + 1, ClearMetadataPreprocessor)
c.GenerateAssignment.preprocessors = _steps
# Autograde runs each notebook top to bottom; training cells of notebook 02 need minutes, not 30 s.
c.Execute.timeout = 1200
'''


def nbgrader(root: Path, *args: str) -> None:
    """Run one nbgrader command on the course at ``root`` (this Python's nbgrader and kernel)."""
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={root}"]
    # nbgrader runs `alembic` (its database migrations) by name: this environment's bin/ goes first
    # on PATH, so a venv works without being activated. Its gradebook's SQLAlchemy warnings are noise.
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "PYTHONWARNINGS": "ignore:::nbgrader.api"}
    print("$ nbgrader " + " ".join(args), flush=True)
    done = subprocess.run(cmd, cwd=root, env=env)
    if done.returncode:
        raise SystemExit(f"nbgrader {args[0]} failed (exit {done.returncode}); its log is above")


def release(notebooks: list[Path] | None = None, root: Path = DEFAULT_ROOT) -> Path:
    """nbgrader generate_assignment on ``notebooks``: the student version, solutions and hidden
    tests taken out, outputs cleared. Also (re)fills the gradebook that autograde grades against."""
    notebooks = [Path(n) for n in (notebooks or default_notebooks())]
    missing = [str(n) for n in notebooks if not n.is_file()]
    if missing or not notebooks:
        raise SystemExit(f"no such notebook: {', '.join(missing) or '(none given)'}")
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(CONFIG.format(root=str(root)))
    source = root / "source" / ASSIGNMENT
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    for nb in notebooks:
        shutil.copy2(nb, source / nb.name)
    nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    return root / "release" / ASSIGNMENT


def copy_missing(release_dir: Path, out: Path) -> list[Path]:
    """Copy the release into ``out`` without touching a notebook already there (a student's work)."""
    out.mkdir(parents=True, exist_ok=True)
    copied, kept = [], []
    for nb in sorted(release_dir.glob("*.ipynb")):
        target = out / nb.name
        (kept if target.exists() else copied).append(target)
        if not target.exists():
            shutil.copyfile(nb, target)  # copyfile: nbgrader's read-only mode bits stay behind
    for target in kept:
        print(f"kept {target} (your copy; delete it to get a fresh one)")
    return copied


def _notebooks_of(submission: Path) -> list[Path]:
    """A submission folder holds the notebooks, directly or in a maskgit_lab/ folder."""
    inner = submission / ASSIGNMENT
    return sorted((inner if inner.is_dir() else submission).glob("*.ipynb"))


def collect(submissions: list[Path], root: Path) -> list[str]:
    """Put each folder's notebooks into ROOT/submitted/<folder name>/maskgit_lab/ (nbgrader's
    layout); the folder's name is the student's id. The staging area holds only these students."""
    staging = root / "submitted"
    shutil.rmtree(staging, ignore_errors=True)
    students = []
    for folder in map(Path, submissions):
        student, notebooks = folder.resolve().name, _notebooks_of(folder)
        if not folder.is_dir():
            raise SystemExit(f"{folder}: no such folder (the student's own work: `make student` makes student/)")
        if not notebooks:
            raise SystemExit(f"{folder}: no notebooks there (nor in {folder / ASSIGNMENT})")
        if student in students:
            raise SystemExit(f"{folder}: two submissions named {student!r} (the folder name is the student id)")
        target = staging / student / ASSIGNMENT
        target.mkdir(parents=True)
        for nb in notebooks:
            shutil.copyfile(nb, target / nb.name)
        students.append(student)
    return students


@dataclass
class NotebookScore:
    student: str
    notebook: str
    score: float
    max_score: float
    lost: list[str] = field(default_factory=list)  # "grade_id (-N)" of each check that lost points
    needs_manual_grade: bool = False


def scores(root: Path, students: list[str]) -> list[NotebookScore]:
    """Per student, per notebook: points from nbgrader's gradebook, and the checks that lost some."""
    from nbgrader.api import Gradebook  # lazy: only this step needs the database layer

    rows = []
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "labcore") as gb:
        for student in students:
            submission = gb.find_submission(ASSIGNMENT, student)
            for nb in sorted(submission.notebooks, key=lambda n: n.name):
                lost = [f"{g.name} (-{g.max_score - g.score:g})" for g in nb.grades if g.score < g.max_score]
                rows.append(NotebookScore(student, nb.name, nb.score, nb.max_score, lost, nb.needs_manual_grade))
    return rows


def grade(submissions: list[Path], root: Path = DEFAULT_ROOT) -> list[NotebookScore]:
    """Collect, autograde, write the feedback, read the scores (the assignment must be released
    into ``root`` first: its gradebook holds the hidden tests that autograde puts back)."""
    root = Path(root).resolve()
    students = collect(submissions, root)
    # nbgrader warns "Attribute 'checksum' for cell ... has changed" for every check cell with hidden
    # tests of a released copy: a known false alarm (jupyter/nbgrader#1961); it grades correctly.
    nbgrader(root, "autograde", ASSIGNMENT, "--force")
    nbgrader(root, "generate_feedback", ASSIGNMENT, "--force")
    return scores(root, students)


def autograde(submissions: list[Path], notebooks: list[Path] | None = None,
              root: Path = DEFAULT_ROOT) -> list[NotebookScore]:
    """Release from the solved notebooks (so the gradebook matches them), then grade."""
    release(notebooks, root)
    return grade(submissions, root)


def feedback_dir(root: Path, student: str) -> Path:
    return Path(root).resolve() / "feedback" / student / ASSIGNMENT


def report(rows: list[NotebookScore], root: Path) -> str:
    """One line per notebook, a total per student, where the feedback is."""
    lines = []
    who, width = max((len(r.student) for r in rows), default=0), max((len(r.notebook) for r in rows), default=0) + 6
    for student in dict.fromkeys(r.student for r in rows):
        mine = [r for r in rows if r.student == student]
        for r in mine:
            flags = ("  lost: " + ", ".join(r.lost) if r.lost else "") + ("  NEEDS MANUAL GRADE" if r.needs_manual_grade else "")
            lines.append(f"{student:<{who}}  {r.notebook + '.ipynb':<{width}} {r.score:g} / {r.max_score:g}{flags}")
        total, most = sum(r.score for r in mine), sum(r.max_score for r in mine)
        lines.append(f"{student:<{who}}  {'total':<{width}} {total:g} / {most:g}   feedback: {_shown(feedback_dir(root, student))}/")
    return "\n".join(lines)


def _shown(path: Path) -> str:
    """A path relative to the repository when it is inside it."""
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)
