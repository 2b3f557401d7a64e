"""The lab as an nbgrader assignment (scripts/nbgrader/): the student release of notebooks/ hides
the solutions and the hidden tests and runs top to bottom as released; autograde gives the solved
notebooks full marks, and a planted mistake costs exactly its exercise's points, with feedback
that names it. The slow tests execute notebooks (fast mode): each released notebook once, each
solved one once, and each notebook that carries a planted mistake once."""

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbgrader", reason="nbgrader is not installed (the grading extra: pip install -e '.[grading]')")
import nbformat  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# The solved notebooks, as committed (nbgrader-marked).
GRADED = sorted((REPO / "notebooks").glob("[0-9]*.ipynb"))

# One planted mistake per row: (notebook, grade_id of the exercise cell, text of its solution, the wrong
# text, the mistake id the feedback must show). Scores are per notebook, so one submission carries at
# most one mistake per notebook (mistakes-K holds the K-th row of each notebook), and only the
# notebooks that carry one are submitted (each execution costs CI time).
MISTAKES = [
    ("00_tokens.ipynb", "encode_to_z", "return indices.flatten(1)", "return indices.transpose(1, 2).flatten(1)",
     "encode.transposed"),
    ("01_multi_head_attention.ipynb", "multi_head_attention", " / math.sqrt(self.head_dim)", "",
     "attention.no_scaling"),
    ("03_iterative_decoding.ipynb", "decode_step", "g = gumbel(masked.shape, generator, masked.device)",
     "g = gumbel((), generator, masked.device)", "decode.shared_gumbel"),  # one sample for all tokens
]


def _load_course():
    spec = importlib.util.spec_from_file_location("nbgrader_course", REPO / "scripts" / "nbgrader" / "course.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


course = _load_course()
MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


def _nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def _cells(path: Path) -> dict:
    """grade_id -> cell, for the cells nbgrader knows."""
    return {_nbgrader(c)["grade_id"]: c for c in nbformat.read(path, as_version=4).cells if _nbgrader(c).get("grade_id")}


def _between(source: str, begin: str, end: str) -> list[str]:
    """The non-blank lines of every BEGIN ... END region (stripped)."""
    lines, inside = [], False
    for line in source.splitlines():
        if line.strip().startswith(begin):
            inside = True
        elif line.strip().startswith(end):
            inside = False
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


def _points(notebook: str, check_of: str) -> tuple[str, float]:
    """The graded cell that checks exercise ``check_of``: the first graded cell after it."""
    cells = nbformat.read(next(p for p in GRADED if p.name == notebook), as_version=4).cells
    start = next(i for i, c in enumerate(cells) if _nbgrader(c).get("grade_id") == check_of)
    check = next(c for c in cells[start + 1:] if _nbgrader(c).get("grade"))
    return _nbgrader(check)["grade_id"], float(_nbgrader(check)["points"])


def _planted_in(grade_id: str) -> str:
    """The submission that carries the mistake of exercise ``grade_id``: mistakes-K for its notebook's K-th row."""
    notebook = next(m[0] for m in MISTAKES if m[1] == grade_id)
    rows = [m[1] for m in MISTAKES if m[0] == notebook]
    return f"mistakes-{rows.index(grade_id)}"


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """nbgrader generate_assignment on GRADED, in a throw-away course; (course root, release folder)."""
    root = tmp_path_factory.mktemp("course")
    return root, course.release(GRADED, root)


@pytest.fixture(scope="module")
def graded(released, tmp_path_factory):
    """One autograde run over: the solved notebooks and the planted mistakes (mistakes-K: only the
    notebooks that carry one). {(student, notebook): NotebookScore}, and the course root. (The
    untouched release is executed by test_release_runs_top_to_bottom_untouched, whose check cells
    must print "not done yet": executing it a second time here would only cost CI minutes.)"""
    root, _ = released
    subs = tmp_path_factory.mktemp("submissions")
    (subs / "solved").mkdir()
    for nb in GRADED:
        shutil.copyfile(nb, subs / "solved" / nb.name)
    for notebook, grade_id, right, wrong, _ in MISTAKES:
        student = _planted_in(grade_id)
        path = subs / student / notebook  # only the notebook that carries the mistake: each execution costs
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            shutil.copyfile(subs / "solved" / notebook, path)
        nb = nbformat.read(path, as_version=4)
        cell = next(c for c in nb.cells if _nbgrader(c).get("grade_id") == grade_id)
        assert right in cell.source, f"{notebook}: {right!r} is not in exercise {grade_id} any more (update MISTAKES)"
        cell.source = cell.source.replace(right, wrong)
        nbformat.write(nb, path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABCORE_FAST", "1")
        rows = course.grade(sorted(subs.iterdir()), root)
    return {(r.student, r.notebook + ".ipynb"): r for r in rows}, root


@pytest.mark.slow
def test_release_hides_solutions_and_hidden_tests(released):
    _, release_dir = released
    assert sorted(p.name for p in release_dir.glob("*.ipynb")) == sorted(p.name for p in GRADED)
    exercises = 0
    for solved in GRADED:
        shipped = release_dir / solved.name
        text = shipped.read_text()
        for marker in MARKERS + ("HIDDEN TESTS",):
            assert marker not in text, f"{shipped.name}: {marker!r} is in the release"
        mine = _cells(shipped)
        for grade_id, cell in _cells(solved).items():
            secret = _between(cell.source, *MARKERS[:2]) + _between(cell.source, *MARKERS[2:])
            leaked = [line for line in secret if line in mine[grade_id].source]
            assert not leaked, f"{shipped.name}, cell {grade_id}: solution or hidden-test code released: {leaked}"
            if _nbgrader(cell).get("solution"):
                exercises += 1
                assert "raise NotImplementedError()" in mine[grade_id].source
        nb = nbformat.read(shipped, as_version=4)
        assert set(nb.metadata) <= {"kernelspec", "language_info"}, f"{shipped.name}: {sorted(nb.metadata)}"  # no widget state
        for cell in nb.cells:
            assert "execution" not in cell.metadata
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None
    assert exercises >= len(MISTAKES) > 0


@pytest.mark.slow
@pytest.mark.parametrize("notebook", [p.name for p in GRADED])
def test_release_runs_top_to_bottom_untouched(released, notebook, tmp_path, monkeypatch):
    """With every stub as released, each notebook runs without an error, and each check cell
    prints its checker's report instead of raising."""
    from nbclient import NotebookClient

    shutil.copyfile(released[1] / notebook, tmp_path / notebook)
    nb = nbformat.read(tmp_path / notebook, as_version=4)
    monkeypatch.setenv("LABCORE_FAST", "1")
    NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    for cell in nb.cells:
        if _nbgrader(cell).get("grade"):
            printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
            assert "not done yet" in printed, f"check cell {_nbgrader(cell)['grade_id']} printed {printed!r}"
        elif "yours_or_reference(" in cell.source:  # the notebook says it goes on with labcore's piece
            printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
            assert "runs labcore's reference" in printed, printed


@pytest.mark.slow
def test_solved_notebooks_get_full_marks(graded):
    rows, _ = graded
    for nb in GRADED:
        row = rows["solved", nb.name]
        assert (row.score, row.lost, row.needs_manual_grade) == (row.max_score, [], False), row


@pytest.mark.slow
@pytest.mark.parametrize("notebook, grade_id, right, wrong, named", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_a_planted_mistake_costs_exactly_its_exercise(graded, notebook, grade_id, right, wrong, named):
    """The notebook with the mistake loses that exercise's points and nothing else; its feedback
    HTML shows the checker's report (the hidden test's AssertionError) naming the mistake."""
    rows, root = graded
    student = _planted_in(grade_id)
    check, points = _points(notebook, grade_id)
    row = rows[student, notebook]
    assert row.score == row.max_score - points and row.lost == [f"{check} (-{points:g})"], row
    feedback = (course.feedback_dir(root, student) / notebook).with_suffix(".html").read_text()
    import html

    assert named in html.unescape(feedback), f"the feedback of {notebook} does not say {named!r}"
    assert "AssertionError" in feedback


def test_release_copy_keeps_the_students_work(tmp_path):
    """`make student` again never overwrites a notebook the student already has."""
    release_dir, out = tmp_path / "release", tmp_path / "student"
    release_dir.mkdir()
    out.mkdir()
    (release_dir / "00_a.ipynb").write_text("new a")
    (release_dir / "01_b.ipynb").write_text("new b")
    (out / "00_a.ipynb").write_text("my work")
    assert course.copy_missing(release_dir, out) == [out / "01_b.ipynb"]
    assert (out / "00_a.ipynb").read_text() == "my work" and (out / "01_b.ipynb").read_text() == "new b"


def test_collect_names_students_by_folder(tmp_path):
    """Each submission folder is one student (its name), notebooks directly in it or in maskgit_lab/."""
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "00_a.ipynb").write_text("{}")
    (tmp_path / "bob" / course.ASSIGNMENT).mkdir(parents=True)
    (tmp_path / "bob" / course.ASSIGNMENT / "00_a.ipynb").write_text("{}")
    root = tmp_path / "course"
    assert course.collect([tmp_path / "alice", tmp_path / "bob"], root) == ["alice", "bob"]
    assert (root / "submitted" / "bob" / course.ASSIGNMENT / "00_a.ipynb").is_file()
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no notebooks"):
        course.collect([tmp_path / "empty"], root)
