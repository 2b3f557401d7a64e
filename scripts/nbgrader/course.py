"""The lab as an nbgrader assignment: the release (what a student gets) and the course config.

The committed notebooks are the SOLVED versions, marked for nbgrader: solution regions between
``### BEGIN SOLUTION`` / ``### END SOLUTION`` in exercise cells, and locked check cells whose
visible part prints the checker's report and whose ``### BEGIN HIDDEN TESTS`` part asserts it.
Everything here is nbgrader's own machinery, run on a throw-away course directory (default
``build/nbgrader/``, ignored by git) that is rebuilt from those notebooks on every call:

    release(notebooks)          nbgrader generate_assignment  -> ROOT/release/maskgit_lab/
    copy_missing(release, out)  the release into the student's folder, never over their work

Grading (``make autograde``) is classgrade.py: one temporary course per submission, in parallel.
``release.py`` and ``autograde.py`` beside this file are the command lines (``make student``,
``make autograde``). No labcore import: the course tooling stands beside the package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


def nbgrader_env() -> dict:
    """nbgrader runs `alembic` (its database migrations) by name: this environment's bin/ goes first
    on PATH, so a venv works without being activated. Its gradebook's SQLAlchemy warnings are noise."""
    return {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            "PYTHONWARNINGS": "ignore:::nbgrader.api"}


def nbgrader(root: Path, *args: str, log: Path | None = None) -> None:
    """Run one nbgrader command on the course at ``root`` (this Python's nbgrader and kernel);
    ``log``: its output goes to that file instead of the terminal."""
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={root}"]
    if log is None:
        print("$ nbgrader " + " ".join(args), flush=True)
        done = subprocess.run(cmd, cwd=root, env=nbgrader_env())
    else:
        with open(log, "a") as out:
            done = subprocess.run(cmd, cwd=root, env=nbgrader_env(), stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        where = "above" if log is None else log
        raise SystemExit(f"nbgrader {args[0]} failed (exit {done.returncode}); its log is {where}")


def release(notebooks: list[Path] | None = None, root: Path = DEFAULT_ROOT, log: Path | None = None) -> Path:
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
    nbgrader(root, "generate_assignment", ASSIGNMENT, "--force", log=log)
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


def _shown(path: Path) -> str:
    """A path relative to the repository when it is inside it."""
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)
