"""The student's side of the lab (issue #27): what the notebooks put in the student's namespace, one
locked check cell per function, hints in tiers, the student's JupyterLab, and cells re-run in any
order.

- Static (the committed notebooks read as JSON): no import before an exercise binds labcore's
  implementation of it (``labcore.checkers.ownership.REFERENCES``) or a labcore module that holds
  it (torch's own modules are the student's tools); no
  ``check_*`` or ``reference_*`` name outside the check cells; each exercise cell is followed by its
  locked check cell, which imports its own checker, binds no other name, and whose hidden test runs
  the check itself; the points (19 in all); every fallback is ``yours_or_reference("name")``; the
  stub holds the contract only, the markdown before it a hint and a folded step-by-step hint.
- ``make lab``'s Jupyter config (scripts/student-jupyter/): nbgrader's instructor panels and their
  server extensions off, Validate on; without it (``make lab-solved``) everything on.
- One kernel runs notebook 00 in fast mode, then re-runs its check and fallback cells out of order.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9]*.ipynb"))
STUDENT_CONFIG = REPO / "scripts" / "student-jupyter"
PIECES = {  # exercise cell's grade_id -> (the piece checked, exercise, checker, check cell's grade_id, points)
    "encode_to_z": ("encode_to_z", "encode", "check_encode_to_z", "check_encode_to_z", 1),
    "multi_head_attention": ("MultiHeadAttention", "attention", "check_attention", "check_multi_head_attention", 3),
    "gamma_func": ("gamma_func", "gamma", "check_gamma", "check_gamma_func", 2),
    "mask_tokens": ("mask_tokens", "masking", "check_mask_tokens", "check_mask_tokens", 2),
    "masked_loss": ("masked_loss", "masking", "check_masked_loss", "check_masked_loss", 1),
    "configure_optimizers": ("configure_optimizers", "loop", "check_configure_optimizers",
                             "check_configure_optimizers", 1),
    "train_one_epoch": ("train_one_epoch", "loop", "check_train_one_epoch", "check_train_one_epoch", 2),
    "decode_step": ("decode_step", "decode", "check_decode_step", "check_decode_step", 5),
    "frechet_distance": ("frechet_distance", "frechet", "check_frechet_distance", "check_frechet_distance", 2),
}


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def grading(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def python(cell: dict) -> ast.Module:
    """A code cell as Python (IPython's %magics and !shell lines left out)."""
    return ast.parse("\n".join(line for line in source(cell).splitlines() if not line.lstrip().startswith(("%", "!"))))


def imported(cell: dict) -> dict[str, str]:
    """What the cell's top-level imports bind: name -> dotted name (``import a.b`` binds a.b here)."""
    bound = {}
    for node in python(cell).body:
        if isinstance(node, ast.Import):
            bound.update({alias.asname or alias.name: alias.name for alias in node.names})
        elif isinstance(node, ast.ImportFrom):
            bound.update({alias.asname or alias.name: f"{node.module}.{alias.name}" for alias in node.names})
    return bound


def is_module(dotted: str) -> bool:
    try:
        importlib.import_module(dotted)
    except ImportError:
        return False
    return True


def exercises() -> list[tuple[Path, int, dict]]:
    """(notebook, index, cell) of every exercise cell."""
    return [(path, i, cell) for path in NOTEBOOKS for i, cell in enumerate(cells(path))
            if grading(cell).get("solution") and grading(cell).get("grade_id") in PIECES]


EXERCISES = exercises()


def test_every_piece_has_an_exercise_cell():
    assert sorted(grading(cell)["grade_id"] for _, _, cell in EXERCISES) == sorted(PIECES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_reference_before_its_exercise(path):
    from labcore.checkers.ownership import REFERENCES

    problems, bound = [], {}
    for i, cell in enumerate(cells(path)):
        meta = grading(cell)
        if meta.get("solution") and meta.get("grade_id") in PIECES:
            exercise = PIECES[meta["grade_id"]][1]
            for name, dotted in bound.items():
                if dotted in REFERENCES[exercise] or (dotted.startswith("labcore") and is_module(dotted) and
                                                      any(r.startswith(dotted + ".") for r in REFERENCES[exercise])):
                    problems.append(f"cell {i} ({meta['grade_id']}): {name} = {dotted} is in the namespace")
        if cell["cell_type"] == "code":
            names = imported(cell)
            if not meta.get("grade"):
                problems += [f"cell {i} imports {n}" for n in names if n.startswith(("check_", "reference_"))]
            bound.update(names)
    assert not problems, f"{path.name}: labcore's answer within the student's reach:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("path, index, cell", EXERCISES, ids=[grading(c)["grade_id"] for _, _, c in EXERCISES])
def test_each_exercise_has_its_own_locked_check(path, index, cell):
    piece, _, checker, grade_id, points = PIECES[grading(cell)["grade_id"]]
    check = next(c for c in cells(path)[index + 1:] if c["cell_type"] == "code")
    meta = grading(check)
    assert meta == {"grade": True, "grade_id": grade_id, "locked": True, "points": points, "schema_version": 3,
                    "solution": False}, f"{path.name}: the cell after {piece} is not its check cell: {meta}"
    visible, hidden = source(check).split("### BEGIN HIDDEN TESTS")
    for part in (visible, hidden):
        assert f"from labcore.checkers import {checker}\n" in part and f"{checker}({piece})" in part
    assert f"assert {checker}({piece}).passed" in hidden
    tree = python(check)
    stores = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    assert stores == set() and set(imported(check)) == {checker}, f"{grade_id} binds {stores | set(imported(check))}"


def test_points():
    meta = [grading(c) for path in NOTEBOOKS for c in cells(path)
            if grading(c).get("grade") and not grading(c).get("solution")]  # the checks (06's answers: by hand)
    ids = [m["grade_id"] for m in meta]
    assert len(ids) == len(set(ids)) == 9
    assert sum(m["points"] for m in meta) == 19


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_fallbacks_name_their_piece(path):
    pieces = {piece for piece, *_ in PIECES.values()}
    for cell in cells(path):
        for call in re.findall(r"yours_or_reference\(([^)]*)\)", source(cell)):
            assert call.strip('"') in pieces, f"{path.name}: yours_or_reference({call}): give it the piece's name only"


@pytest.mark.parametrize("path, index, cell", EXERCISES, ids=[grading(c)["grade_id"] for _, _, c in EXERCISES])
def test_stub_is_the_contract_and_the_hints_come_in_tiers(path, index, cell):
    text = source(cell)
    stub = text[:text.index("### BEGIN SOLUTION")] + text[text.index("### END SOLUTION"):]
    comments = [line.strip() for line in stub.splitlines() if line.strip().startswith("#") and "SOLUTION" not in line]
    assert not comments, f"{path.name}: comment lines in the stub of {grading(cell)['grade_id']}: {comments}"
    assert '"""' in stub and "return" in stub, "the stub's docstring says what to return"
    before = source(cells(path)[index - 1])
    hint, steps = before.find("**Hint.**"), before.find("<details><summary>Step-by-step hint</summary>")
    where = f"{path.name}, before {grading(cell)['grade_id']}"
    assert 0 <= hint < steps, f"{where}: a hint, then a folded step-by-step hint"
    if grading(cell)["grade_id"] == "encode_to_z":                 # the one method of the solution
        assert "flatten" not in before[hint:] + stub


# ----------------------------------------------------------------------------- make lab's JupyterLab

def jupyter(*args: str, student: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_CONFIG_PATH"}
    if student:
        env["JUPYTER_CONFIG_PATH"] = str(STUDENT_CONFIG)
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    return re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)


SERVER = """from jupyter_server.serverapp import ServerApp
app = ServerApp()
app.initialize(argv=[], new_httpserver=False)
print("ENABLED", sorted(n for n, e in app.extension_manager.extensions.items() if "nbgrader" in n and e.enabled))
"""
INSTRUCTOR = ["@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:course-list",
              "@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:menu"]


def disabled_labextensions(student: bool) -> list[str]:
    text = jupyter("-m", "jupyter", "labextension", "list", student=student)
    if "Disabled extensions:" not in text:
        return []
    return re.findall(r"^\s+(\S+)\s*$", text.split("Disabled extensions:")[1], re.M)


def test_make_lab_opens_the_students_copies_with_the_student_config():
    make = (REPO / "Makefile").read_text()
    lab = make[make.index("\nlab: "):].split("\n\n")[0]
    assert "scripts/student-jupyter" in lab and "jupyter lab student/" in lab
    assert "$(MAKE) --no-print-directory student" in lab
    solved = make[make.index("\nlab-solved: "):].split("\n\n")[0]
    assert "jupyter lab notebooks/" in solved and "JUPYTER_CONFIG_PATH" not in solved


@pytest.mark.slow
def test_the_students_jupyterlab_shows_validate_but_no_instructor_panel():
    pytest.importorskip("nbgrader", reason="the grading extra is not installed (make student installs it)")
    assert disabled_labextensions(student=True) == INSTRUCTOR       # validate-assignment stays on
    assert not set(disabled_labextensions(student=False)) & set(INSTRUCTOR)
    student = jupyter("-c", SERVER, student=True).split("ENABLED")[1]
    assert "validate_assignment" in student and "formgrader" not in student and "course_list" not in student
    assert "formgrader" in jupyter("-c", SERVER, student=False).split("ENABLED")[1]


# ----------------------------------------------------------------------------- re-running cells in any order

@pytest.mark.slow
def test_notebook_00_survives_cells_run_in_any_order(monkeypatch):
    """One kernel: the fallback before any check, top to bottom, then the check and the fallback
    again after later cells, a re-defined exercise, a wrong one and the right one back."""
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    monkeypatch.setenv("LABCORE_FAST", "1")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    nb = nbformat.read(REPO / "notebooks" / "00_tokens.ipynb", as_version=4)
    index = {grading(c).get("grade_id"): i for i, c in enumerate(nb.cells)}
    exercise, check = index["encode_to_z"], index["check_encode_to_z"]
    fallback = next(i for i, c in enumerate(nb.cells) if "yours_or_reference(" in c.source)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(REPO / "notebooks")}})

    def run(i: int | str, fails: bool = False) -> str:
        """Run cell i (or this code): its printed text; it raises only when ``fails``."""
        cell = nbformat.v4.new_code_cell(i) if isinstance(i, str) else nb.cells[i]
        client.execute_cell(cell, 0 if isinstance(i, str) else i)
        errors = [f"{o.ename}: {o.evalue}" for o in cell.outputs if o.get("output_type") == "error"]
        assert bool(errors) == fails, f"cell {i}: {errors or 'no error'}"
        return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")

    yours, reference = "yours passed its check", "runs labcore's reference"
    with client.setup_kernel():
        run(2)                                                        # the imports
        assert "not checked yet" in run(fallback) and reference in run(fallback)
        printed = {i: run(i) for i, c in enumerate(nb.cells) if c.cell_type == "code" and i != 2}
        assert "PASS" in printed[check] and yours in printed[fallback]
        assert yours in run(fallback)                                  # the fallback again, after every later cell
        # the check after the last cell, then the fallback
        assert "PASS" in run(check) and yours in run(fallback)
        run(exercise)                                                  # re-defined, not checked again
        assert "run the check cell too" in run(fallback)
        run(nb.cells[exercise].source.replace("indices.flatten(1)", "indices.transpose(1, 2).flatten(1)"))
        wrong = run(check, fails=True)                                 # the hidden test's assert
        assert "FAIL" in wrong and "encode.transposed" in wrong
        assert "its check failed" in run(fallback) and reference in run(fallback)
        later = next(i for i, c in enumerate(nb.cells) if "tokens = encode_used(vqgan, images)" in c.source)
        assert "all in [0, K): True" in run(later)                     # the notebook goes on with labcore's
        run(exercise)
        assert "PASS" in run(check) and yours in run(fallback)
