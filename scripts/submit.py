"""`make submit NAME=your_name`: your notebooks and your report in one archive, to hand in.

    python scripts/submit.py --name ada_lovelace                    # -> build/submit/ada_lovelace.zip
    python scripts/submit.py --name ada --student DIR --out DIR     # other folders

The archive unpacks into one folder named after you, the layout a TA's `make autograde` reads
(`unzip -d collected ada.zip` -> collected/ada/, one submission of the class collected/):

    ada/maskgit_lab/NN_*.ipynb   every notebook of the lab, from student/, byte for byte as saved
    ada/06_report.html           the report, notebook 06, exported by nbconvert (what
                                 `jupyter nbconvert --to html` writes) from the saved file with the
                                 outputs saved in it: one file that opens in any browser

The lab's notebooks are the release's (notebooks/NN_*.ipynb). A notebook counts as *saved* when the
saved file holds a run: a notebook none of whose code cells has run in the file is the release as
handed out, or work never saved after running it; the report must have run whole (every code cell
that holds code), or its export would lack those outputs. Work still open in JupyterLab and not
saved cannot be seen from here: save before you submit. When a notebook is missing from student/,
is not a readable notebook or is not saved, one line `make submit: error: ...` says which (exit
status 2) and nothing is written; the archive is written under a temporary name and renamed once
complete, so it is never half there.
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent / "nbgrader"))  # the course tooling: the release's names
import course  # noqa: E402

REPORT = "06_report.ipynb"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")   # a folder name on every system: the TA's student id


class Refused(Exception):
    """Why nothing is handed in, in one line."""


def _shown(path: Path) -> str:
    return course._shown(Path(path).resolve())


def read_notebooks(student: Path, names: list[str]) -> dict[str, bytes]:
    """The raw bytes of each of the lab's notebooks in ``student``; Refused when any is missing or not
    a readable notebook (every one of them named)."""
    if not student.is_dir():
        raise Refused(f"no folder {_shown(student)}/ (`make student` makes it, with the lab's notebooks)")
    missing = [name for name in names if not (student / name).is_file()]
    if missing:
        raise Refused(f"missing from {_shown(student)}/: {', '.join(missing)} (`make student` puts a fresh copy "
                      "of a deleted notebook there)")
    raw, unreadable = {}, []
    for name in names:
        raw[name] = (student / name).read_bytes()
        try:
            nbformat.reads(raw[name].decode("utf-8"), as_version=4)
        except Exception as err:  # noqa: BLE001 - not UTF-8, not JSON, not a notebook: refused, with the reason
            first = (str(err).strip().splitlines() or [""])[0][:100]
            unreadable.append(f"{name} ({type(err).__name__}{': ' + first if first else ''})")
    if unreadable:
        raise Refused(f"not a readable notebook in {_shown(student)}/: {'; '.join(unreadable)}")
    return raw


def unrun_cells(nb) -> tuple[int, int]:
    """(code cells holding code, how many of them have not run in the saved file)."""
    cells = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    return len(cells), sum(c.get("execution_count") is None for c in cells)


def check_saved(raw: dict[str, bytes], student: Path) -> None:
    """Refused when a notebook's saved file holds no run (the report: not a whole run)."""
    problems = []
    for name, data in raw.items():
        total, unrun = unrun_cells(nbformat.reads(data.decode("utf-8"), as_version=4))
        if name == REPORT and unrun:
            problems.append(f"{name}: {unrun} of its {total} code cells have not run in the saved file (run it "
                            "top to bottom, Run > Run All Cells, then save it)")
        elif total and unrun == total:
            problems.append(f"{name}: no cell has run in the saved file (open it, run it, save it)")
    if problems:
        raise Refused(f"not saved after a run, in {_shown(student)}/: " + "; ".join(problems))


def export_html(data: bytes, title: str) -> str:
    """The report as one HTML page, its figures inside it (nbconvert's HTML exporter, as
    `jupyter nbconvert --to html` runs it): nothing is executed, the saved outputs are shown."""
    from nbconvert import HTMLExporter  # lazy: nbconvert loads its templates; only a submission needs them

    nb = nbformat.reads(data.decode("utf-8"), as_version=4)
    body, _ = HTMLExporter().from_notebook_node(nb, resources={"metadata": {"name": title}})
    return body


def submit(name: str, student: Path, out: Path) -> Path:
    """Check everything, export the report, then write OUT/NAME.zip atomically; Refused before any write."""
    from labcore.runtime import atomic_write  # lazy: the checks above need no torch

    if not NAME.fullmatch(name or ""):
        raise Refused(f"give your name: make submit NAME=your_name (letters, digits, '.', '_' or '-'), got {name!r}")
    names = [nb.name for nb in course.default_notebooks()]
    raw = read_notebooks(Path(student), names)
    check_saved(raw, Path(student))
    html = export_html(raw[REPORT], f"{name}: {Path(REPORT).stem}")

    def write(f) -> None:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for notebook, data in raw.items():
                archive.writestr(f"{name}/{course.ASSIGNMENT}/{notebook}", data)
            archive.writestr(f"{name}/{Path(REPORT).stem}.html", html)

    return atomic_write(Path(out) / f"{name}.zip", write)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="submit.py", description=__doc__.split("\n")[0])
    parser.add_argument("--name", default="", help="your name: the archive's and its folder's (letters, digits, . _ -)")
    parser.add_argument("--student", type=Path, default=course.REPO / "student",
                        help="your notebooks (default: student/)")
    parser.add_argument("--out", type=Path, default=course.REPO / "build" / "submit",
                        help="where the archive goes (default: build/submit/)")
    args = parser.parse_args(argv)
    try:
        archive = submit(args.name, args.student, args.out)
    except Refused as why:
        print(f"make submit: error: {why}", file=sys.stderr)
        return 2
    with zipfile.ZipFile(archive) as packed:
        count = sum(n.endswith(".ipynb") for n in packed.namelist())
    print(f"wrote {_shown(archive)}: {count} notebooks and {Path(REPORT).stem}.html "
          f"({archive.stat().st_size / 1024:.0f} KiB). Hand in that file.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
