"""A class graded in parallel: each submission in its own throw-away nbgrader course.

    grade_class(submissions, options) -> list[Row]   (what `make autograde` runs)

1. One release (nbgrader generate_assignment) of the notebooks that carry points, into a template
   course in a temporary folder: its gradebook holds the hidden tests autograde puts back.
2. Per submission, in a worker thread: a copy of that template; the submitted notebooks staged
   (grading mode: each cut after its last graded cell; a missing or unreadable notebook, a deleted
   or edited locked cell noted); ``grade_one.py`` (nbgrader autograde + generate_feedback) in a
   subprocess whose kernel sees a private copy of the labcore package, so everything the lab writes
   under the repository (runs/, results/) lands in the temporary folder instead, as do its
   temporary files. Grading mode also sets LABCORE_FAST=1 and a per-cell time limit.
3. The scores from the gradebook, the mistake ids and the notes from the executed notebooks; the
   feedback HTML and the executed notebooks copied to OUT/feedback/ and OUT/autograded/.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

import course
import gradeplan

HERE = Path(__file__).resolve().parent
ASSIGNMENT = course.ASSIGNMENT
KEEP_OUT = {".git", ".venv", "labcore", "runs", "results", "build", "student"}  # not linked into a kernel's repository

GRADING_CONFIG = '''
# grading (scripts/nbgrader/classgrade.py): a cell that runs past the limit is interrupted, fails
# alone (nbgrader's CellTimeoutError), and the notebook goes on with its next cell.
c.Execute.timeout = {limit}
c.Execute.interrupt_on_timeout = True
c.Execute.allow_errors = True
'''


@dataclass
class Options:
    jobs: int = max(1, os.cpu_count() or 1)
    limit: float = 50.0                 # seconds per cell (full mode: 1200)
    full: bool = False                  # every notebook whole, as a student runs it; not in fast mode
    out: Path = course.DEFAULT_ROOT     # grades.csv, feedback/, autograded/, class-report.*
    submission_limit: float = 1800.0    # a submission still running then is stopped (kernel and all)
    keep: bool = False                  # keep each submission's course folder (debugging)
    progress: bool = True


@dataclass
class Row:
    student: str
    notebook: str
    grade_id: str
    points: float
    max_points: float
    mistakes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    manual: bool = False     # a written answer: nbgrader gives it no points, a TA does (note gradeplan.TO_GRADE)


def submissions_of(paths: list[Path]) -> list[Path]:
    """Each path is one submission (it holds notebooks, directly or in maskgit_lab/) or a class
    (a folder of submissions, one folder per student, named after the student)."""
    found = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise SystemExit(f"{path}: no such folder")
        holds = any(path.glob("*.ipynb")) or (path / ASSIGNMENT).is_dir()
        found += [path] if holds else sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = [p.resolve().name for p in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SystemExit(f"two submissions named {', '.join(twice)} (the folder name is the student id)")
    if not found:
        raise SystemExit(f"no submissions in {', '.join(map(str, paths))} (one folder per student)")
    return found


def make_template(notebooks: list[Path], work: Path, options: Options) -> tuple[Path, list[gradeplan.NotebookPlan]]:
    """Release the notebooks to grade into work/template; their plans read from the release."""
    chosen = notebooks if options.full else [nb for nb in notebooks if gradeplan.read_plan(nb).points > 0]
    template = work / "template"
    release_dir = course.release(chosen, template, log=work / "release.log")
    return template, [gradeplan.read_plan(release_dir / nb.name) for nb in chosen]


def kernel_repository(scratch: Path) -> Path:
    """A repository for the kernel: its own copy of labcore (so labcore.paths.REPO_ROOT is here),
    links to the rest (data, docs, ...), its own empty runs/ and results/."""
    root = scratch / "repo"
    root.mkdir()
    shutil.copytree(course.REPO / "labcore", root / "labcore")   # with __pycache__: no recompiling
    for entry in course.REPO.iterdir():
        if entry.name not in KEEP_OUT:
            (root / entry.name).symlink_to(entry)
    return root


def worker_env(scratch: Path, options: Options) -> dict:
    env = course.nbgrader_env()
    threads = str(max(1, (os.cpu_count() or 1) // options.jobs))   # the cores shared among the workers
    for name in ("runtime", "ipython", "tmp"):
        (scratch / name).mkdir()
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(scratch / "repo"), env.get("PYTHONPATH")])),
               OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, JUPYTER_RUNTIME_DIR=str(scratch / "runtime"),
               IPYTHONDIR=str(scratch / "ipython"), TMPDIR=str(scratch / "tmp"))
    if not options.full:
        env["LABCORE_FAST"] = "1"   # fewer training steps and samples before the last check: verdicts are the same
    return env


def stage(submission: Path, scratch: Path, template: Path, plans, options: Options) -> tuple[Path, dict]:
    """scratch/course: the template course with this submission in submitted/<student>/; the notes."""
    root = scratch / "course"
    shutil.copytree(template, root, ignore=shutil.ignore_patterns("release", "submitted", "autograded", "feedback"))
    config = course.CONFIG.format(root=str(root)) + GRADING_CONFIG.format(limit=int(options.limit))
    (root / "nbgrader_config.py").write_text(config)
    student = submission.resolve().name
    target = root / "submitted" / student / ASSIGNMENT
    target.mkdir(parents=True)
    inner = submission / ASSIGNMENT
    folder = inner if inner.is_dir() else submission
    notes = {}
    for plan in plans:
        nb, notes[plan.name] = gradeplan.open_submitted(folder / plan.name, plan, truncate=not options.full)
        if nb is not None:
            nbformat.write(nb, target / plan.name)
    return root, notes


def run_worker(root: Path, student: str, env: dict, options: Options) -> str:
    """grade_one.py in its own process group; '' or what went wrong."""
    with open(root / "grading.log", "w") as log:
        proc = subprocess.Popen([sys.executable, str(HERE / "grade_one.py"), str(root), student], cwd=root, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=options.submission_limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)      # the worker and its kernels
            proc.wait()
            return f"grading stopped after {options.submission_limit:g} s: grade by hand"
    return "" if proc.returncode == 0 else f"grading failed (exit {proc.returncode}): see {root / 'grading.log'}"


def grade_one(submission: Path, template: Path, plans, options: Options, work: Path) -> tuple[list[Row], float]:
    """Grade one submission in its own scratch folder; its rows and its seconds."""
    started, student = time.perf_counter(), submission.resolve().name
    scratch = Path(tempfile.mkdtemp(prefix=f"{student}.", dir=work))
    kernel_repository(scratch)
    root, notes = stage(submission, scratch, template, plans, options)
    staged = any((root / "submitted" / student / ASSIGNMENT).glob("*.ipynb"))
    failure = run_worker(root, student, worker_env(scratch, options), options) if staged else ""  # else: 0 points
    result = json.loads((root / "scores.json").read_text()) if (root / "scores.json").is_file() else {}
    if result.get("log") and not failure:
        failure = "nbgrader: " + result["log"].strip().splitlines()[0][:200]
    rows = []
    for plan in plans:
        done = root / "autograded" / student / ASSIGNMENT / plan.name
        ids, after = gradeplan.read_autograded(done, plan, options.limit) if done.is_file() else ({}, {})
        before, scores = notes[plan.name], result.get("scores", {}).get(plan.name, {})
        for check in plan.checks:
            score, _, manual = scores.get(check.grade_id, [0.0, check.points, False])
            said = (before.get("", []) + before.get(check.grade_id, [])
                    + after.get("", []) + after.get(check.grade_id, []))
            said += [gradeplan.TO_GRADE if check.manual else "needs manual grade"] * bool(manual)
            said += [failure] * bool(failure)
            rows.append(Row(student, plan.name, check.grade_id, float(score or 0), check.points,
                            ids.get(check.grade_id, []), list(dict.fromkeys(said)), check.manual))
    keep_outputs(root, student, options.out)
    if not options.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    return rows, time.perf_counter() - started


def failed_rows(student: str, plans, why: str) -> list[Row]:
    return [Row(student, p.name, c.grade_id, 0.0, c.points, [], [why], c.manual) for p in plans for c in p.checks]


def keep_outputs(root: Path, student: str, out: Path) -> None:
    """The feedback HTML and the executed notebooks, to OUT/feedback/ and OUT/autograded/."""
    for kind in ("feedback", "autograded"):
        source, target = root / kind / student / ASSIGNMENT, Path(out) / kind / student / ASSIGNMENT
        shutil.rmtree(target, ignore_errors=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.py", "timestamp.txt"))


def grade_class(paths: list[Path], options: Options,
                notebooks: list[Path] | None = None) -> tuple[list[Row], list[float]]:
    """Every submission graded, ``options.jobs`` at a time; the rows and each submission's seconds."""
    from tqdm import tqdm

    submissions = submissions_of(paths)
    Path(options.out).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="labcore-grading."))
    try:
        template, plans = make_template(notebooks or course.default_notebooks(), work, options)
        rows, seconds = [], []
        bar = tqdm(total=len(submissions), unit="submission", desc="grading", disable=not options.progress)
        with ThreadPoolExecutor(max_workers=options.jobs) as pool:
            futures = {pool.submit(grade_one, s, template, plans, options, work): s for s in submissions}
            for future in as_completed(futures):
                try:
                    mine, took = future.result()
                except Exception as err:  # noqa: BLE001 - one submission's failure is that submission's note
                    mine, took = failed_rows(futures[future].resolve().name, plans, f"grading failed: {err!r}"), 0.0
                rows += mine
                seconds.append(took)
                bar.update()
        bar.close()
    finally:
        if options.keep:
            print(f"kept the courses: {work}/<student>.*/course/")
        else:
            shutil.rmtree(work, ignore_errors=True)
    order = {s.resolve().name: i for i, s in enumerate(submissions)}
    rows.sort(key=lambda r: order[r.student])     # submissions in the order given, cells in notebook order
    return rows, seconds
