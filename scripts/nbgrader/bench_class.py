"""The grading figures: a synthetic class graded, every score compared with what was planted.

    python scripts/nbgrader/bench_class.py                    # 20 submissions, seed 0, one worker per core
    python scripts/nbgrader/bench_class.py --n 4 --jobs 2 --out build/nbgrader-bench

Prints the wall time of the whole class, per submission (wall / N) and the slowest submission, and
every check whose points or mistake id differ from synthetic_class's expected.csv; exit 1 if any.
The class and the outputs go to a temporary folder unless --out (then OUT/class/ and OUT/).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import class_report
import classgrade
import synthetic_class


def compare(rows, expected: list[dict]) -> list[str]:
    """What differs from expected.csv, one line each."""
    got = {(r.student, r.notebook, r.grade_id): r for r in rows}
    wrong = []
    for want in expected:
        row = got.get((want["student"], want["notebook"], want["grade_id"]))
        if row is None:
            wrong.append(f"{want['student']} {want['grade_id']}: no row")
        elif row.points != float(want["points"]) or (want["mistake"] and want["mistake"] not in row.mistakes):
            wrong.append(f"{row.student} {row.grade_id}: {row.points:g} points {row.mistakes}, planted "
                         f"{want['points']} {want['mistake'] or want['special'] or '(correct)'}; notes: {row.notes}")
    return wrong


def compare_full(rows, submissions: list[Path], out: Path, args) -> list[str]:
    """The same submissions with --full (LABCORE_FAST unset): the same points and mistake ids?"""
    os.environ.pop("LABCORE_FAST", None)
    options = classgrade.Options(jobs=args.jobs, full=True, limit=1200.0, out=out / "full")
    started = time.perf_counter()
    whole, _ = classgrade.grade_class(submissions, options)
    print(f"full mode: {len(submissions)} submissions in {time.perf_counter() - started:.0f} s")
    short = {(r.student, r.notebook, r.grade_id): r for r in rows}
    return [f"{r.student} {r.grade_id}: full {r.points:g} {r.mistakes}, grading mode "
            f"{short[r.student, r.notebook, r.grade_id].points:g} {short[r.student, r.notebook, r.grade_id].mistakes}"
            for r in whole if (r.points, r.mistakes) != (short[r.student, r.notebook, r.grade_id].points,
                                                         short[r.student, r.notebook, r.grade_id].mistakes)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench_class.py", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--limit", type=float, default=50.0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--compare-full", type=int, default=0, metavar="K",
                        help="grade K submissions (after the special cases) again with every notebook run whole, "
                             "not in fast mode (minutes each), and compare the verdicts")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="labcore-bench.") as tmp:
        out = args.out or Path(tmp)
        folder = synthetic_class.write_class(out / "class", synthetic_class.random_class(args.n, args.seed))
        options = classgrade.Options(jobs=args.jobs, limit=args.limit, out=out)
        started = time.perf_counter()
        rows, seconds = classgrade.grade_class([folder], options)
        wall = time.perf_counter() - started
        class_report.write_all(rows, out, seconds, wall, args.jobs, "grading")
        wrong = compare(rows, class_report.read_csv(folder / "expected.csv"))
        if args.compare_full:
            plain = sorted(p for p in folder.iterdir() if p.is_dir())[len(synthetic_class.SPECIAL):]  # no endless loop
            wrong += compare_full(rows, plain[:args.compare_full], out, args)
    print(f"{args.n} submissions, {args.jobs} workers: {wall:.0f} s in all, {wall / args.n:.1f} s per submission "
          f"(one submission: {min(seconds):.0f}-{max(seconds):.0f} s, mean {sum(seconds) / len(seconds):.0f} s)")
    print(f"scores as planted: {len(rows) - len(wrong)} of {len(rows)} checks")
    for line in wrong:
        print("  DIFFERS", line)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
