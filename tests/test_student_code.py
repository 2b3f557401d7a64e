"""labcore.student_code.load_function: a student's step from a file, a module or a notebook, and
`labcore inpaint --step` / `labcore experiment --step` running it on a test set once it passes its
checker (the refusals: tests/test_cli_errors.py)."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labcore.__main__ import main
from labcore.checkers import check_decode_step
from labcore.experiment import read_results
from labcore.student_code import load_function

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_03 = REPO / "notebooks" / "03_iterative_decoding.ipynb"
STUDENT_03 = REPO / "student" / "03_iterative_decoding.ipynb"
# what README tells a student to put above a copy of their exercise cell of notebook 03
EXPORT_HEADER = "%%writefile my_step.py\nimport torch\nfrom labcore.decoding import StepResult, gumbel\n\n"
SOLUTION = re.compile(r"^( *)### BEGIN SOLUTION\n.*?^ *### END SOLUTION\n?", re.S | re.M)


def exercise_cell(notebook: Path = NOTEBOOK_03) -> str:
    """The source of notebook 03's exercise cell, the one that defines decode_step."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return next("".join(c["source"]) for c in cells if c["cell_type"] == "code"
                and "def decode_step(" in "".join(c["source"]))


def exported(folder: Path, cell: str | None = None, name: str = "my_step.py") -> Path:
    """What %%writefile writes from the export cell README describes (the magic line is its file name)."""
    path = folder / name
    path.write_text(EXPORT_HEADER.split("\n", 1)[1] + (exercise_cell() if cell is None else cell))
    return path


def student_release(folder: Path) -> Path:
    """student/03 when `make student` made it, else notebook 03 with its solution replaced by the stub."""
    if STUDENT_03.is_file():
        return Path(shutil.copy(STUDENT_03, folder / STUDENT_03.name))
    nb = json.loads(NOTEBOOK_03.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        if "### BEGIN SOLUTION" in text:
            cell["source"] = SOLUTION.sub(r"\1raise NotImplementedError()\n", text).splitlines(keepends=True)
    path = folder / NOTEBOOK_03.name
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def notebook(folder: Path, *cells: str) -> Path:
    path = folder / "mine.ipynb"
    code = [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
             "source": text.splitlines(keepends=True)} for text in cells]
    path.write_text(json.dumps({"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# mine"]}, *code],
                                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


# ----------------------------------------------------------------------------- the three forms

def test_a_file_exported_from_notebook_03_passes_its_check(tmp_path):
    step = load_function(f"{exported(tmp_path)}:decode_step")
    assert step.__name__ == "decode_step" and Path(step.__code__.co_filename) == tmp_path / "my_step.py"
    assert check_decode_step(step).passed


def test_two_files_of_one_name_stay_two_modules(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    (tmp_path / "a" / "my_step.py").write_text("def f():\n    return 'a'\n")
    (tmp_path / "b" / "my_step.py").write_text("def f():\n    return 'b'\n")
    fa, fb = (load_function(f"{tmp_path / d / 'my_step.py'}:f") for d in "ab")
    assert (fa(), fb()) == ("a", "b") and fa.__module__ != fb.__module__
    assert fa.__module__ in sys.modules                                  # registered, as an import is


def test_a_module_form_loads_an_importable_function(tmp_path, monkeypatch):
    shutil.copy(exported(tmp_path), tmp_path / "course_steps_xyz.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    step = load_function("course_steps_xyz:decode_step")
    assert check_decode_step(step).passed
    labcores = load_function("labcore.decoding:decode_step")             # labcore's own: not the student's work
    assert check_decode_step(labcores).mistakes == ["decode.uses_reference"]


def test_the_solved_notebook_03_gives_a_step_that_passes(tmp_path):
    copy = Path(shutil.copy(NOTEBOOK_03, tmp_path / "nb03.ipynb"))
    step = load_function(f"{copy}:decode_step")
    assert check_decode_step(step).passed
    assert "maskgit" not in step.__globals__ and "test_set" not in step.__globals__   # no model loaded


def test_the_student_release_of_notebook_03_is_not_done_yet(tmp_path):
    step = load_function(f"{student_release(tmp_path)}:decode_step")
    with pytest.raises(NotImplementedError):
        step(None, None, None, None, 0.5, None, 8)
    result = check_decode_step(step)
    assert not result.passed and result.not_done and "not done yet" in str(result)


def test_a_notebook_runs_its_imports_and_what_the_function_needs_only(tmp_path):
    path = notebook(tmp_path,
                    "%matplotlib inline\nimport math\n!pip install nothing\nraise RuntimeError('ran a cell')",
                    "def helper(x):\n    return math.sqrt(x) + OFFSET\n\nOFFSET = 1.0\n",
                    "class Unused(NotDefinedAnywhere):\n    pass\n",
                    "def twice(x):\n    return 2 * helper(x)\n",
                    "%%writefile other.py\ndef twice(x):\n    return 0\n",
                    "x = !ls\n",                                           # not Python: skipped
                    "%%time\nfrom fractions import Fraction\n")
    twice = load_function(f"{path}:twice")
    scope = twice.__globals__
    assert "Unused" not in scope and "Fraction" in scope and "math" in scope    # imports all, defs as needed
    with pytest.raises(NameError, match="OFFSET"):                             # an assignment never runs
        twice(4.0)
    scope["OFFSET"] = 0.5
    assert twice(4.0) == 5.0


# ----------------------------------------------------------------------------- errors name the spec

@pytest.mark.parametrize("case, spec, fragment", [
    ("missing file", "{tmp}/nope.py:decode_step", "no such file"),
    ("no function", "{tmp}/ok.py:decode_stp", "has no decode_stp"),
    ("not callable", "{tmp}/ok.py:VALUE", "VALUE is not callable (type int)"),
    ("syntax error", "{tmp}/bad_syntax.py:decode_step", "SyntaxError: "),
    ("import error", "{tmp}/bad_import.py:decode_step", "ModuleNotFoundError: No module named 'no_such_module_x'"),
    ("raises on import", "{tmp}/bad_run.py:decode_step", "ZeroDivisionError: division by zero"),
    ("no module", "no_such_module_x.sub:decode_step", "ModuleNotFoundError"),
    ("no notebook def", "{tmp}/mine.ipynb:decode_step", "has no top-level def or class decode_step"),
    ("no name", "{tmp}/ok.py", "expected FILE.py:NAME"),
    ("not a form", "{tmp}/ok.txt:f", "expected FILE.py:NAME"),
])
def test_errors_are_one_line_value_errors_that_name_the_spec(case, spec, fragment, tmp_path):
    (tmp_path / "ok.py").write_text("VALUE = 3\n\ndef decode_step():\n    pass\n")
    (tmp_path / "bad_syntax.py").write_text("def decode_step(:\n    pass\n")
    (tmp_path / "bad_import.py").write_text("import no_such_module_x\n")
    (tmp_path / "bad_run.py").write_text("1 / 0\n")
    notebook(tmp_path, "import math\n", "def other():\n    pass\n")
    spec = spec.format(tmp=tmp_path)
    with pytest.raises(ValueError) as err:
        load_function(spec)
    message = str(err.value)
    assert message.startswith(f"{spec}: ") and fragment in message and "\n" not in message, message


# ----------------------------------------------------------------------------- the commands

def png_pixels(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.array(Image.open(p)) for p in sorted(folder.iterdir())}


def test_inpaint_with_the_exported_step_writes_labcores_images(tiny_files, tmp_path, capsys):
    """The notebook's solution is labcore's step written another way that draws the same random
    numbers: the same seed gives the same PNGs, bit for bit; the run's line names the step."""
    common = ["inpaint", "--limit", "3", "--batch-size", "2", "--total-iter", "3", "--seed", "1",
              "--device", "cpu", "--no-progress", *tiny_files]
    assert main([*common, "-o", str(tmp_path / "labcore")]) == 0
    assert "step:" not in capsys.readouterr().out
    assert main([*common, "--step", f"{exported(tmp_path)}:decode_step", "-o", str(tmp_path / "mine")]) == 0
    assert "; step: my_step.py:decode_step" in capsys.readouterr().out
    for folder in ("test_results", "imga", "mask_scheduling"):
        mine, labcores = png_pixels(tmp_path / "mine" / folder), png_pixels(tmp_path / "labcore" / folder)
        assert mine.keys() == labcores.keys() and len(mine) == 3
        assert all(np.array_equal(mine[k], labcores[k]) for k in mine), folder


def test_inpaint_refuses_remask_with_a_step_before_any_work(tiny_files, tmp_path, capsys):
    """ReMDM re-masks by the log p that labcore's step returns and a course-style step does not: refused
    with one line before the step is judged or a model loads, nothing written."""
    out = tmp_path / "out"
    assert main(["inpaint", "--step", f"{exported(tmp_path)}:decode_step", "--remask", "0.5", "--no-progress",
                 "--device", "cpu", *tiny_files, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("labcore inpaint: error: --remask 0.5 re-masks by the confidences") and err.count("\n") == 1
    assert "--step " in err and not out.exists()


def test_experiment_with_a_step_records_it_and_never_mixes_steps(tiny_files, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LABCORE_FAST", "1")
    out = tmp_path / "out"
    common = ["experiment", "--limit", "4", "--schedules", "cosine", "--iterations", "2", "--sample-temperatures",
              "0", "--seeds", "1", "--device", "cpu", "--no-progress", "-o", str(out), *tiny_files]
    assert main([*common, "--step", f"{exported(tmp_path)}:decode_step"]) == 0
    rows = read_results(out / "experiments.csv")
    decoding = [r for r in rows if r.is_decoding]
    assert decoding and {r.step for r in decoding} == {"my_step.py:decode_step"}
    assert not any(r.is_variant for r in decoding) and len({r.sweet_spot for r in decoding}) == 2  # the plan ran
    assert "Decoded with the step my_step.py:decode_step (--step)" in (out / "experiments.md").read_text()
    capsys.readouterr()
    before = (out / "experiments.csv").read_text()
    assert main(common) == 2                                             # labcore's step into that folder
    err = capsys.readouterr().err
    assert "holds rows decoded with step my_step.py:decode_step, this run decodes with decode_step" in err
    assert (out / "experiments.csv").read_text() == before
