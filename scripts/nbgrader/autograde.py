"""`make autograde-check`: autograde submissions with nbgrader and print the scores.

    python scripts/nbgrader/autograde.py student/                    # your own work
    python scripts/nbgrader/autograde.py collected/alice collected/bob
    python scripts/nbgrader/autograde.py --notebook NB [--notebook NB...] SUBMISSION...

Each SUBMISSION is a folder named after the student, holding that student's notebooks (directly or
in a maskgit_lab/ folder). The script regenerates the assignment from the solved notebooks (so
the gradebook holds their hidden tests), puts the submissions into ROOT/submitted/<student>/
maskgit_lab/ (ROOT: build/nbgrader/), runs `nbgrader autograde maskgit_lab --force` and
`nbgrader generate_feedback maskgit_lab --force`, and prints per student and notebook the points
(from the gradebook), the checks that lost points and where the feedback HTML is
(ROOT/feedback/<student>/maskgit_lab/).
"""

import argparse
from pathlib import Path

import course


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="autograde.py", description=__doc__.split("\n")[0])
    parser.add_argument("submissions", nargs="+", type=Path, help="one folder per student, named after the student")
    parser.add_argument("--notebook", action="append", type=Path, dest="notebooks",
                        help="a solved notebook, once per notebook (default: notebooks/NN_*.ipynb)")
    parser.add_argument("--root", type=Path, default=course.DEFAULT_ROOT, help="nbgrader course folder (default: build/nbgrader/)")
    args = parser.parse_args(argv)
    rows = course.autograde(args.submissions, args.notebooks, args.root)
    print(course.report(rows, args.root))


if __name__ == "__main__":
    main()
