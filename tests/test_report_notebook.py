"""Notebook 06, the report (issue #28): read as JSON, nothing executed but its own functions.

- one settings cell at the top (DATA, CHECKPOINTS: None = the bundled data and models);
- the written part: five nbgrader answer cells graded by hand (markdown, 2 points each), each under
  a locked question; the solved copy holds a model answer and what a good answer covers, which
  nbgrader's release replaces by YOUR ANSWER HERE;
- the whose-code table lists every exercise piece of notebooks 00-04, with its notebook and checker;
  ``judge`` runs a piece that passes, labcore's otherwise (with the mistake ids), and one it cannot load;
- ``in_span`` hands the Fréchet distance the statistics of a subspace: the same FID.
The report's first cells (settings, imports, the whose-code table) are executed beside the solved
notebooks with a mistake planted in 03; the whole report runs once, in nbval, with every piece yours,
and its committed outputs hold the course's figures, the FID table and the best setting.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "notebooks" / "06_report.ipynb"
CELLS = json.loads(REPORT.read_text(encoding="utf-8"))["cells"]
ANSWER_META = {"grade": True, "locked": False, "points": 2, "schema_version": 3, "solution": True}


def source(cell: dict) -> str:
    return "".join(cell["source"])


def grading(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def code_cells() -> list[str]:
    return [source(c) for c in CELLS if c["cell_type"] == "code"]


def definitions(cell_source: str, names: set[str]) -> dict:
    """The top-level assignments and defs of a cell that bind ``names``, run in a namespace with the
    report's imports (its import cell)."""
    namespace: dict = {}
    imports = next(s for s in code_cells() if "import" in s).replace("%matplotlib inline", "")
    exec(compile("\n".join(line for line in imports.splitlines() if line.startswith(("import", "from"))),
                 "imports", "exec"), namespace)
    tree = ast.parse(cell_source)
    body = [node for node in tree.body if isinstance(node, (ast.Assign, ast.FunctionDef))
            and ({getattr(t, "id", "") for t in getattr(node, "targets", [])} | {getattr(node, "name", "")}) & names]
    exec(compile(ast.Module(body=body, type_ignores=[]), "report", "exec"), namespace)
    return namespace


def test_the_settings_cell_is_the_first_code_cell():
    """DATA and CHECKPOINTS, both None by default (the bundled emoji64 and models), nothing else."""
    tree = ast.parse(code_cells()[0])
    bound = {t.id: node.value.value for node in tree.body for t in node.targets}
    assert bound == {"DATA": None, "CHECKPOINTS": None}
    assert "lab5_dataset" in code_cells()[0] and "transformer_weights" in code_cells()[0]


def test_the_written_part_is_five_answers_graded_by_hand():
    answers = [(i, c) for i, c in enumerate(CELLS) if grading(c).get("solution")]
    assert len(answers) == 5 and sum(grading(c)["points"] for _, c in answers) == 10
    for i, cell in answers:
        meta = {k: v for k, v in grading(cell).items() if k != "grade_id"}
        assert cell["cell_type"] == "markdown" and meta == ANSWER_META, grading(cell)
        question = CELLS[i - 1]
        assert question["cell_type"] == "markdown" and grading(question)["locked"], "a locked question above it"
        assert not grading(question)["grade"] and "?" in source(question)
        assert "What a good answer covers (2 points)" in source(cell), "the TA's rubric in the model answer"
    ids = [grading(c)["grade_id"] for c in CELLS if grading(c)]
    assert len(ids) == len(set(ids))


def test_the_release_shows_the_questions_but_neither_model_answer_nor_rubric():
    """nbgrader's ClearSolutions (what generate_assignment runs) on the report."""
    pytest.importorskip("nbgrader", reason="nbgrader is not installed (the grading extra)")
    import nbformat
    from nbgrader.preprocessors import ClearSolutions

    nb = nbformat.read(REPORT, as_version=4)
    released, _ = ClearSolutions().preprocess(nb, {})
    text = json.dumps(released)
    assert "Model answer" not in text and "What a good answer covers" not in text
    answers = [c for c in released.cells if grading(c).get("solution")]
    assert [c.source for c in answers] == ["YOUR ANSWER HERE"] * 5
    assert sum("**5 · What you would submit" in c.source for c in released.cells) == 1


def exercise_pieces() -> set[tuple[str, str]]:
    """(notebook, name defined) of every exercise cell of the lab's other notebooks."""
    found = set()
    for path in sorted((REPO / "notebooks").glob("0[0-5]_*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "code" and grading(cell).get("solution"):
                tree = ast.parse(source(cell))
                found |= {(path.name, node.name) for node in tree.body
                          if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    return found


def whose_cell() -> str:
    return next(s for s in code_cells() if "PIECES = {" in s)


def test_every_exercise_is_in_the_whose_code_table():
    from labcore.checkers.fallback import REFERENCE_OF

    pieces = definitions(whose_cell(), {"PIECES"})["PIECES"]
    assert {(notebook, piece) for piece, (notebook, _) in pieces.items()} == exercise_pieces()
    assert set(pieces) == set(REFERENCE_OF)
    assert all(check.__name__.startswith("check_") for _, check in pieces.values())


@pytest.fixture
def judge(tmp_path, monkeypatch):
    """The report's ``judge``, run in a folder holding the solved 02 and a 03 with a planted mistake."""
    shutil.copy(REPO / "notebooks" / "02_train_stage2.ipynb", tmp_path)
    nb = json.loads((REPO / "notebooks" / "03_iterative_decoding.ipynb").read_text(encoding="utf-8"))
    right, wrong = "g = gumbel(masked.shape, generator, masked.device)", "g = gumbel((), generator, masked.device)"
    cell = next(c for c in nb["cells"] if grading(c).get("grade_id") == "decode_step")
    assert right in source(cell)
    cell["source"] = source(cell).replace(right, wrong)
    (tmp_path / "03_iterative_decoding.ipynb").write_text(json.dumps(nb))
    monkeypatch.chdir(tmp_path)
    return definitions(whose_cell(), {"PIECES", "USES", "judge"})["judge"]


def test_judge_runs_yours_when_it_passes_and_says_why_not(judge):
    from labcore.checkers.fallback import reference

    used = {}
    for piece in ("mask_tokens", "masked_loss", "train_one_epoch"):    # train_one_epoch calls 02's *_used
        used[piece], row = judge(piece, used)
        assert used[piece] is not reference(piece) and "**yours** | passed its check" in row, row
    step, row = judge("decode_step", used)
    assert step is reference("decode_step") and "labcore's" in row and "`decode.shared_gumbel`" in row, row
    distance, row = judge("frechet_distance", used)
    assert distance is reference("frechet_distance") and "not loaded" in row and "04_fid.ipynb" in row, row


def test_in_span_gives_the_same_frechet_distance():
    """FID of a few images' statistics, projected on their span, by a student's sqrtm formula, equals
    labcore's on the full features."""
    from labcore import fid
    from labcore.checkers import reference_frechet_distance

    in_span = definitions(next(s for s in code_cells() if "def in_span" in s), {"in_span"})["in_span"]
    rng = np.random.default_rng(0)
    a = fid.stats_of_activations(rng.normal(size=(12, 300)))
    b = fid.stats_of_activations(rng.normal(0.3, 1.5, size=(12, 300)))
    (mu1, sigma1), (mu2, sigma2) = in_span(a, b)
    assert mu1.shape == (25,) and sigma1.shape == (25, 25)
    assert reference_frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(
        fid.frechet_distance(a, b, note_few=False), rel=1e-6)


@pytest.mark.slow
def test_the_whose_code_table_names_a_planted_mistake(tmp_path, monkeypatch):
    """The report's cells up to its whose-code table, executed beside the solved notebooks with 03's
    decode_step planted with a mistake: labcore's step runs (with the mistake id), yours for the rest."""
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    for path in (REPO / "notebooks").glob("0[0-4]_*.ipynb"):
        shutil.copy(path, tmp_path)
    planted = tmp_path / "03_iterative_decoding.ipynb"
    planted.write_text(planted.read_text().replace("rank = confidence.argsort(dim=1, stable=True)",
                                                   "rank = (-confidence).argsort(dim=1, stable=True)"))
    monkeypatch.setenv("LABCORE_FAST", "1")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    nb = nbformat.read(REPORT, as_version=4)
    last = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "| piece |" in c.source)
    nb.cells = nb.cells[:last + 1]                                  # settings, imports, the table
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    table = "\n".join(str(o.get("data", {}).get("text/markdown", "")) for o in nb.cells[last].outputs)
    assert "| decode_step | 03_iterative_decoding.ipynb | labcore's |" in table
    assert "decode.keeps_least_confident" in table
    assert table.count("**yours**") == 8, table


def test_the_committed_report_shows_the_courses_figures_and_table():
    """What the full-mode run left in the committed report (nbval re-executes it whole): the
    whose-code table, the three schedules' figures and FID against T, the FID table with its three
    schedules, the best setting."""
    outputs = [o for c in CELLS if c["cell_type"] == "code" for o in c.get("outputs", [])]
    texts = "\n".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/markdown", ""))
                      for o in outputs)
    assert texts.count("**yours**") == len(exercise_pieces()), "every piece of the solved notebooks is yours"
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 4   # three schedules, FID against T
    assert all(s in texts for s in ("| linear |", "| cosine |", "| square |", "best setting:"))


# ----------------------------------------------------------------------------- grading: answers by hand

def grading_modules():
    import importlib
    import sys

    sys.path.insert(0, str(REPO / "scripts" / "nbgrader"))  # the course tooling stands beside the package
    return [importlib.import_module(m) for m in ("gradeplan", "classgrade", "class_report", "autograde")]


def test_the_plan_knows_the_answers_are_graded_by_hand():
    """Five manual checks of 2 points, no exercise; grading mode stages the marked markdown cells only."""
    gradeplan, *_ = grading_modules()
    plan = gradeplan.read_plan(REPORT)
    assert [(c.points, c.manual, c.exercises) for c in plan.checks] == [(2.0, True, [])] * 5
    assert REPORT.name in [p.name for p in gradeplan.graded_plans([REPORT])]
    staged, notes = gradeplan.open_submitted(REPORT, plan, truncate=True)
    assert notes == {} and [gradeplan.meta(c).get("grade_id") for c in staged.cells] == plan.order
    assert {c.cell_type for c in staged.cells} == {"markdown"}
    whole, _ = gradeplan.open_submitted(REPORT, plan, truncate=False)
    assert len(whole.cells) == len(CELLS)


def test_an_answer_left_as_released_is_the_stub(tmp_path):
    import nbformat

    gradeplan, *_ = grading_modules()
    plan = gradeplan.read_plan(REPORT)
    nb = nbformat.read(REPORT, as_version=4)
    answers = [c for c in nb.cells if gradeplan.meta(c).get("solution")]
    answers[0].source = gradeplan.ANSWER_STUB
    nbformat.write(nb, tmp_path / REPORT.name)
    _, notes = gradeplan.read_autograded(tmp_path / REPORT.name, plan, 50)
    assert notes == {plan.checks[0].grade_id: ["not done yet (the stub)"]}


def test_autograde_reports_answers_to_grade_by_hand_not_zero(tmp_path):
    gradeplan, classgrade, class_report, autograde = grading_modules()
    Row = classgrade.Row
    rows = [Row("ada", "03_iterative_decoding.ipynb", "check_decode_step", 5, 5),
            Row("ada", REPORT.name, "answer_implementation", 0, 2, notes=[gradeplan.TO_GRADE], manual=True),
            Row("ada", REPORT.name, "answer_schedules", 0, 2, notes=["not done yet (the stub)"], manual=True),
            Row("bob", "03_iterative_decoding.ipynb", "check_decode_step", 0, 5, ["decode.shared_gumbel"]),
            Row("bob", REPORT.name, "answer_implementation", 0, 2, notes=[gradeplan.TO_GRADE], manual=True),
            Row("bob", REPORT.name, "answer_schedules", 0, 2, notes=[gradeplan.TO_GRADE], manual=True)]
    printed = autograde.summary(rows)
    assert "ada  06_report.ipynb                  2 points to grade by hand (written answers: 1 to grade, 1 left " \
           "empty: 0 points)" in printed
    assert "ada  total                            5 / 5 + 2 to grade by hand" in printed
    assert "bob  total                            0 / 5 + 4 to grade by hand" in printed
    written = class_report.read_csv(class_report.write_csv(rows, tmp_path / "grades.csv"))
    assert [r["points"] for r in written] == ["5", "", "0", "0", "", ""]
    report = class_report.markdown(rows, [1.0], 1.0, 1, "grading")
    assert "## To grade by hand" in report and "| bob | 0 / 5 + 4 to grade by hand |" in report
    assert "answer_" not in report.split("## Per exercise")[1].split("## Notes")[0]   # no pass rate for them
