"""`make student`: the student version of the lab, made by nbgrader's generate_assignment.

    python scripts/nbgrader/release.py                   # notebooks/NN_*.ipynb -> student/
    python scripts/nbgrader/release.py --out DIR NB...   # other notebooks, another folder

The clean release (for a TA to hand out) is ROOT/release/maskgit_lab/ (ROOT: build/nbgrader/);
it is also copied into --out, where a notebook that is already there is never overwritten: that is
the student's work (delete it to get a fresh copy). `make lab` opens those copies (and runs this
first when one is missing); `make lab-solved` opens the solved notebooks/. The notebooks run with
the repository's .venv kernel: they `import labcore`, which finds the bundled data by itself.
The release is refused if a solution line or a hidden test is left in it.
"""

import argparse
import json
from pathlib import Path

import course

LEAKS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


def leaks(notebook: Path) -> list[str]:
    """The cells of a released notebook that still hold a solution region or a hidden test."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return [f"{notebook.name}: cell {i} holds {mark!r}" for i, cell in enumerate(cells)
            for mark in LEAKS if mark in "".join(cell["source"])]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="release.py", description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="solved notebooks (default: notebooks/NN_*.ipynb)")
    parser.add_argument("--out", type=Path, default=course.REPO / "student",
                        help="the student's folder (default: student/)")
    parser.add_argument("--root", type=Path, default=course.DEFAULT_ROOT,
                        help="nbgrader course folder (default: build/nbgrader/)")
    args = parser.parse_args(argv)
    released = course.release(args.notebooks, args.root)
    found = [line for nb in sorted(released.glob("*.ipynb")) for line in leaks(nb)]
    if found:
        raise SystemExit("release.py: the release still holds solutions or hidden tests:\n  " + "\n  ".join(found))
    copied = course.copy_missing(released, args.out)
    for nb in copied:
        print(f"new  {course._shown(nb.resolve())}")
    print(f"release (to hand out): {course._shown(released.resolve())}/")
    print(f"work in it:            make lab   (JupyterLab on {course._shown(args.out.resolve())}/; "
          "the solved copies: make lab-solved)")
    print("check your work:       make autograde-check")


if __name__ == "__main__":
    main()
