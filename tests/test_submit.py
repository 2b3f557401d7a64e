"""`make submit` (scripts/submit.py): the archive holds every notebook of the lab as saved and the
report as one HTML file, in the folder layout a TA's `make autograde` reads; each refusal (a bad
name, a missing or unreadable notebook, one not saved after a run, a report not run whole) is one
`make submit: error:` line, exit status 2, and nothing written; a failure while writing leaves no
archive, half or whole, and an older archive as it was."""

from __future__ import annotations

import importlib
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbconvert", reason="nbconvert is not installed (it comes with jupyterlab)")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "scripts" / "nbgrader"))
submit = importlib.import_module("submit")
course = importlib.import_module("course")
NAMES = [p.name for p in course.default_notebooks()]


def notebook(run: bool, cells: int = 2, marker: str = "") -> nbformat.NotebookNode:
    """A notebook of ``cells`` code cells, each run (an execution count and an output) when ``run``."""
    nb = nbformat.v4.new_notebook()
    for i in range(cells):
        cell = nbformat.v4.new_code_cell(f"print({i})")
        if run:
            cell.execution_count = i + 1
            cell.outputs = [nbformat.v4.new_output("stream", text=f"output {i} {marker}\n")]
        nb.cells.append(cell)
    nb.cells.append(nbformat.v4.new_code_cell(""))          # an empty cell never runs: not counted
    return nb


@pytest.fixture
def student(tmp_path) -> Path:
    """A student's folder: every notebook of the lab, saved after a run."""
    folder = tmp_path / "student"
    folder.mkdir()
    for name in NAMES:
        nbformat.write(notebook(True, marker=f"from {name}"), folder / name)
    return folder


def run(student: Path, out: Path, name: str = "ada_lovelace", capsys=None) -> tuple[int, str]:
    code = submit.main(["--name", name, "--student", str(student), "--out", str(out)])
    return code, capsys.readouterr().err if capsys else ""


def test_the_archive_holds_the_notebooks_as_saved_and_the_report_as_html(student, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run(student, out, capsys=capsys)
    assert code == 0 and err == ""
    with zipfile.ZipFile(out / "ada_lovelace.zip") as archive:
        names = set(archive.namelist())
        assert names == {f"ada_lovelace/maskgit_lab/{n}" for n in NAMES} | {"ada_lovelace/06_report.html"}
        for name in NAMES:
            assert archive.read(f"ada_lovelace/maskgit_lab/{name}") == (student / name).read_bytes()
        html = archive.read("ada_lovelace/06_report.html").decode()
    assert html.lstrip().lower().startswith("<!doctype html") and "output 1 from 06_report.ipynb" in html
    assert list(out.iterdir()) == [out / "ada_lovelace.zip"]                       # no temporary file left


def test_unzipped_it_is_one_submission_of_a_class(student, tmp_path):
    classgrade = importlib.import_module("classgrade")
    run(student, tmp_path / "out")
    with zipfile.ZipFile(tmp_path / "out" / "ada_lovelace.zip") as archive:
        archive.extractall(tmp_path / "collected")
    assert classgrade.submissions_of([tmp_path / "collected"]) == [tmp_path / "collected" / "ada_lovelace"]


def refuse(student: Path, tmp_path: Path, capsys, name: str = "ada_lovelace") -> str:
    """Run it; assert the one-line refusal and that nothing was written; return the line."""
    out = tmp_path / "out"
    code, err = run(student, out, name, capsys)
    assert code == 2 and err.startswith("make submit: error: ") and err.count("\n") == 1, err
    assert not out.exists()
    return err


def test_a_missing_notebook_is_refused(student, tmp_path, capsys):
    (student / NAMES[3]).unlink()
    (student / "06_report.ipynb").unlink()
    err = refuse(student, tmp_path, capsys)
    assert f"missing from {student.resolve()}/: {NAMES[3]}, 06_report.ipynb" in err


def test_no_student_folder_is_refused(tmp_path, capsys):
    assert f"no folder {(tmp_path / 'none').resolve()}/" in refuse(tmp_path / "none", tmp_path, capsys)


def test_a_notebook_that_is_not_json_is_refused(student, tmp_path, capsys):
    (student / NAMES[1]).write_text("{not json")
    assert f"not a readable notebook in {student.resolve()}/: {NAMES[1]} (" in refuse(student, tmp_path, capsys)


def test_a_notebook_never_saved_after_a_run_is_refused(student, tmp_path, capsys):
    """The release as handed out: no cell of the saved file has run."""
    nbformat.write(notebook(False), student / NAMES[0])
    assert f"{NAMES[0]}: no cell has run in the saved file" in refuse(student, tmp_path, capsys)


def test_a_report_not_run_whole_is_refused(student, tmp_path, capsys):
    nb = notebook(True, cells=3)
    nb.cells[1].execution_count = None
    nbformat.write(nb, student / "06_report.ipynb")
    assert "06_report.ipynb: 1 of its 3 code cells have not run" in refuse(student, tmp_path, capsys)


@pytest.mark.parametrize("name", ["", "ada lovelace", "../ada", ".hidden"])
def test_a_name_that_cannot_be_a_folder_is_refused(student, tmp_path, capsys, name):
    assert "give your name: make submit NAME=your_name" in refuse(student, tmp_path, capsys, name)


def test_a_failure_while_writing_leaves_the_older_archive(student, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run(student, out)
    before = (out / "ada_lovelace.zip").read_bytes()
    real = zipfile.ZipFile.writestr

    def fails_on_the_report(self, name, data, *args, **kwargs):
        if name.endswith(".html"):
            raise OSError("disk full")
        return real(self, name, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", fails_on_the_report)
    with pytest.raises(OSError, match="disk full"):
        run(student, out)
    assert list(out.iterdir()) == [out / "ada_lovelace.zip"] and (out / "ada_lovelace.zip").read_bytes() == before


def test_the_command_line_and_make_submit(tmp_path):
    """The script's exit status and one stderr line; the Makefile's target passes NAME."""
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "submit.py"), "--student", str(tmp_path),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("make submit: error: give your name") and done.stderr.count("\n") == 1
    make = (REPO / "Makefile").read_text()
    target = make[make.index("\nsubmit: "):].split("\n\n")[0]
    assert 'scripts/submit.py --name "$(NAME)"' in target
