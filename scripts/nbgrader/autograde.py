"""`make autograde` / `make autograde-check`: grade submissions with nbgrader, in parallel.

    python scripts/nbgrader/autograde.py collected/               # a class: one folder per student
    python scripts/nbgrader/autograde.py student/                 # one submission (your own work)
    python scripts/nbgrader/autograde.py --jobs 2 --limit 50 collected/alice collected/bob

Each SUBMISSION is a folder named after the student, holding that student's notebooks (directly or
in a maskgit_lab/ folder); a folder that holds neither is a class, one such folder per student.
The assignment is released from the solved notebooks into a temporary course (its gradebook holds
their hidden tests); each submission is then graded in its own temporary course, JOBS at a time
(classgrade.py), in grading mode unless --full: only notebooks with points, each executed up to
its last graded cell, LABCORE_FAST=1, every cell limited to --limit seconds. Written to OUT
(build/nbgrader/): grades.csv, class-report.md + class-report.png, feedback/<student>/maskgit_lab/
*.html, autograded/<student>/maskgit_lab/*.ipynb. Prints the points per student and notebook.
"""

import argparse
import os
import time
from pathlib import Path

import class_report
import classgrade
import course
import gradeplan


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="autograde.py", description=__doc__.split("\n")[0])
    parser.add_argument("submissions", nargs="+", type=Path, help="a class folder, or one folder per student")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="submissions graded at once (default: one per core)")
    parser.add_argument("--limit", type=float, default=None, help="seconds per cell (default 50; --full: 1200)")
    parser.add_argument("--full", action="store_true",
                        help="every notebook whole, not in fast mode (as a student runs it)")
    parser.add_argument("--notebook", action="append", type=Path, dest="notebooks",
                        help="a solved notebook, once per notebook (default: notebooks/NN_*.ipynb)")
    parser.add_argument("--out", type=Path, default=course.DEFAULT_ROOT,
                        help="where the outputs go (default: build/nbgrader/)")
    parser.add_argument("--keep", action="store_true", help="keep each submission's temporary course (to debug)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    options = classgrade.Options(jobs=args.jobs, full=args.full, out=args.out, keep=args.keep,
                                 limit=args.limit or (1200.0 if args.full else 50.0))
    started = time.perf_counter()
    rows, seconds = classgrade.grade_class(args.submissions, options, args.notebooks)
    wall = time.perf_counter() - started
    written = class_report.write_all(rows, args.out, seconds, wall, args.jobs, "full" if args.full else "grading")
    print(summary(rows))
    print(f"{len(seconds)} submissions in {wall:.0f} s ({wall / max(1, len(seconds)):.0f} s each, {args.jobs} workers)")
    for path in written:
        print(f"wrote {course._shown(path.resolve())}")
    print(f"feedback: {course._shown((args.out / 'feedback').resolve())}/<student>/{course.ASSIGNMENT}/<notebook>.html")


def summary(rows) -> str:
    """Per student and notebook: points, the checks that lost points (with their mistake ids), notes;
    written answers (notebook 06) as the points still to grade by hand, apart from the checks'."""
    lines, width = [], max((len(r.student) for r in rows), default=0)
    per = {}
    for r in rows:
        per.setdefault((r.student, r.notebook), []).append(r)
    for (student, notebook), mine in per.items():
        checks = [r for r in mine if not r.manual]
        got, most = sum(r.points for r in checks), sum(r.max_points for r in checks)
        lost = [f"{r.grade_id} (-{r.max_points - r.points:g}{': ' + ' '.join(r.mistakes) if r.mistakes else ''})"
                for r in checks if r.points < r.max_points]
        notes = sorted({n for r in mine for n in r.notes} - {gradeplan.TO_GRADE})
        score = " ".join(filter(None, [f"{got:g} / {most:g}" if checks else "",
                                       hand_text([r for r in mine if r.manual])]))
        lines.append(f"{student:<{width}}  {notebook:<32} {score}"
                     + ("  lost: " + ", ".join(lost) if lost else "")
                     + ("  notes: " + "; ".join(notes) if notes else ""))
    hand = class_report.by_hand(rows)
    for student, (got, most) in class_report.totals(rows).items():
        lines.append(f"{student:<{width}}  {'total':<32} {got:g} / {most:g}"
                     + (f" + {hand[student]:g} to grade by hand" if hand.get(student) else ""))
    return "\n".join(lines)


def hand_text(answers) -> str:
    """The written answers of one notebook: the points left to grade by hand (one left empty scores 0)."""
    if not answers:
        return ""
    pending = [r for r in answers if class_report.to_grade(r)]
    empty = len(answers) - len(pending)
    if not pending:
        return f"0 / {sum(r.max_points for r in answers):g} (written answers: all {empty} left empty)"
    return (f"{sum(r.max_points for r in pending):g} points to grade by hand (written answers: {len(pending)} to "
            "grade" + (f", {empty} left empty: 0 points)" if empty else ")"))


if __name__ == "__main__":
    main()
