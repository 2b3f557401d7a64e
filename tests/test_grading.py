"""The lab as an nbgrader assignment (scripts/nbgrader/): the release hides the solutions and the
hidden tests; a class graded in parallel (classgrade.py) gets every score exactly as planted,
each special case (endless loop, syntax error, deleted or edited locked cell, missing or unreadable
notebook) costs only what it touches and says so, and grading mode gives the verdicts of a full run.

The slow tests share two grading runs (fast mode): the small synthetic class in grading mode, and
two submissions (its planted mistakes, the untouched release) executed in full. Each notebook runs
only as often as a check needs it: the release is graded once, whole (its grading-mode verdicts are
those of the planted student's comparison, the same cut); notebooks without points run in neither
full run, since the release ships them as they are solved, without outputs (tested below), and
nbval executes the solved copies."""

import html
import importlib
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbgrader", reason="nbgrader is not installed (the grading extra: pip install -e '.[grading]')")
import nbformat  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts" / "nbgrader"))  # the course tooling stands beside the package
course = importlib.import_module("course")
classgrade = importlib.import_module("classgrade")
class_report = importlib.import_module("class_report")
gradeplan = importlib.import_module("gradeplan")
synthetic = importlib.import_module("synthetic_class")

GRADED = sorted((REPO / "notebooks").glob("[0-9]*.ipynb"))  # the solved notebooks, as committed
# the notebooks whose points come from check cells (06's written answers are graded by hand: a full
# run has nothing of theirs to compare, and nbval executes 06)
WITH_POINTS = [p for p in GRADED if p.name in {plan.name for plan in gradeplan.graded_plans(GRADED)
                                               if any(not check.manual for check in plan.checks)}]
CHECK_CELLS = sum(not check.manual for plan in gradeplan.graded_plans(GRADED) for check in plan.checks)
MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


def _cells(path: Path) -> dict:
    """grade_id -> cell, for the cells nbgrader knows."""
    return {gradeplan.meta(c)["grade_id"]: c for c in nbformat.read(path, as_version=4).cells
            if gradeplan.meta(c).get("grade_id")}


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


def _outside(source: str) -> list[str]:
    """The lines outside every BEGIN ... END region (what the release shows as written)."""
    lines, inside = [], False
    for line in source.splitlines():
        if line.strip().startswith(("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS")):
            inside = True
        elif line.strip().startswith(("### END SOLUTION", "### END HIDDEN TESTS")):
            inside = False
        elif not inside:
            lines.append(line)
    return lines


def _printed(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream")


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """nbgrader generate_assignment on GRADED: (course root, release folder). `make student` (which
    CI runs first) made it in build/nbgrader/ from notebooks/: that release is read when its source
    copies are GRADED byte for byte and each released notebook is newer than its source; otherwise
    it is made again in a throw-away course."""
    source = course.DEFAULT_ROOT / "source" / course.ASSIGNMENT
    release = course.DEFAULT_ROOT / "release" / course.ASSIGNMENT
    made = sorted(p.name for p in source.glob("*.ipynb")) == [p.name for p in GRADED] and all(
        (source / p.name).read_bytes() == p.read_bytes() and (release / p.name).is_file()
        and (release / p.name).stat().st_mtime >= (source / p.name).stat().st_mtime for p in GRADED)
    if made:
        return course.DEFAULT_ROOT, release
    root = tmp_path_factory.mktemp("course")
    return root, course.release(GRADED, root, log=root / "release.log")


@pytest.fixture(scope="module")
def small_class(released, tmp_path_factory):
    """synthetic_class --small, plus the untouched release as a student ("release")."""
    folder = synthetic.write_class(tmp_path_factory.mktemp("class"), synthetic.small_class(), GRADED)
    shutil.copytree(released[1], folder / "release", ignore=shutil.ignore_patterns("*.py"))
    return folder


def _grade(paths, out: Path, full: bool, notebooks=GRADED):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABCORE_FAST", "1")  # CI's fast mode: fewer training steps and samples, also in the full run
        options = classgrade.Options(jobs=2, full=full, out=out, progress=False, limit=1200 if full else 50)
        rows, _ = classgrade.grade_class(paths, options, notebooks)
    class_report.write_all(rows, out, [1.0], 1.0, 2, "full" if full else "grading")
    return {(r.student, r.notebook, r.grade_id): r for r in rows}


@pytest.fixture(scope="module")
def graded(small_class, tmp_path_factory):
    """The small class but the release, graded in grading mode: {(student, notebook, grade id): Row},
    the output folder."""
    out = tmp_path_factory.mktemp("out")
    students = sorted(p for p in small_class.iterdir() if p.is_dir() and p.name != "release")
    return _grade(students, out, full=False), out


@pytest.fixture(scope="module")
def full(small_class, tmp_path_factory):
    """The planted mistakes and the untouched release, every notebook with points executed whole."""
    out = tmp_path_factory.mktemp("full")
    return _grade([small_class / "planted", small_class / "release"], out, full=True, notebooks=WITH_POINTS), out


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
            shown = {line.strip() for line in _outside(cell.source)}  # a hidden test may repeat a visible line
            leaked = [line for line in secret if line in mine[grade_id].source and line not in shown]
            assert not leaked, f"{shipped.name}, cell {grade_id}: solution or hidden-test code released: {leaked}"
            if gradeplan.meta(cell).get("solution") and cell.cell_type == "markdown":  # a written answer (06)
                assert mine[grade_id].source == gradeplan.ANSWER_STUB, f"{shipped.name}, {grade_id}: answer released"
            elif gradeplan.meta(cell).get("solution"):
                exercises += 1
                assert "raise NotImplementedError()" in mine[grade_id].source
        nb = nbformat.read(shipped, as_version=4)
        # no widget state
        assert set(nb.metadata) <= {"kernelspec", "language_info"}, f"{shipped.name}: {sorted(nb.metadata)}"
        for cell in nb.cells:
            assert "execution" not in cell.metadata
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None
    assert exercises >= len({m[1] for m in synthetic.PLANTED})


@pytest.mark.slow
def test_a_notebook_without_check_cells_is_released_as_solved(released):
    """The full grading runs leave out the notebooks without check cells (05; 06, whose points are
    written answers graded by hand): nbval's run of the solved copy is theirs too, since the release
    holds the same code cells (without outputs)."""
    without = [p for p in GRADED if p not in WITH_POINTS]
    assert without, "every notebook has check cells: nothing is left out of the full runs"
    for solved in without:
        shipped = nbformat.read(released[1] / solved.name, as_version=4).cells
        mine = nbformat.read(solved, as_version=4).cells
        assert [c.source for c in shipped if c.cell_type == "code"] == \
            [c.source for c in mine if c.cell_type == "code"], solved.name


@pytest.mark.slow
def test_every_score_is_as_planted(graded, full, small_class):
    """Every check cell of every planted submission gets exactly its expected points, and a planted
    mistake's id is in what its check printed (and in grades.csv)."""
    rows, out = graded
    expected = class_report.read_csv(small_class / "expected.csv")
    assert expected
    for want in expected:
        row = rows[want["student"], want["notebook"], want["grade_id"]]
        assert (row.points, row.max_points) == (float(want["points"]), float(want["max_points"])), (want, row)
        if want["mistake"]:
            assert want["mistake"] in row.mistakes, (want, row)
    written = {(r["student"], r["grade_id"]): r for r in class_report.read_csv(out / "grades.csv")}
    assert "decode.shared_gumbel" in written["planted", "check_decode_step"]["mistakes"].split()
    released = [row for row in full[0].values() if row.student == "release"]
    assert len(released) == CHECK_CELLS
    for row in released:
        assert row.points == 0 and "not done yet (the stub)" in row.notes, row


@pytest.mark.slow
def test_special_cases_cost_only_what_they_touch_and_say_so(graded):
    rows, _ = graded

    def notes(student, grade_id):
        return " ".join(next(r.notes for (s, _, g), r in rows.items() if (s, g) == (student, grade_id)))

    # the loop is in the exercise; its check cell, which calls it, is the one stopped
    assert "time limit (50 s) reached in check_multi_head_attention" in notes("special", "check_multi_head_attention")
    assert "SyntaxError in frechet_distance" in notes("special", "check_frechet_distance")
    assert "check cell check_decode_step deleted" in notes("special", "check_decode_step")
    assert "locked cell check_encode_to_z edited" in notes("special", "check_encode_to_z")
    assert "notebook missing" in notes("special", "check_gamma_func")
    assert "not a readable notebook" in notes("notjson", "check_frechet_distance")
    assert rows["special", "00_tokens.ipynb", "check_encode_to_z"].points == 1  # the released check cell ran


@pytest.mark.slow
def test_grading_mode_gives_the_verdicts_of_a_full_run(graded, full):
    """Cut after the last graded cell, notebooks without points left out, a 50 s cell limit: the same
    points and mistake ids as every notebook executed whole."""
    short, _ = graded
    whole, _ = full
    compared = [key for key in whole if key[0] == "planted"]
    assert len(compared) == CHECK_CELLS
    for key in compared:
        assert (short[key].points, short[key].mistakes) == (whole[key].points, whole[key].mistakes), key


@pytest.mark.slow
def test_release_runs_top_to_bottom_untouched(full):
    """Executed whole with every stub as released, each notebook runs without an error outside the
    check cells (whose hidden tests fail), each check prints "not done yet" and the notebook goes on
    with labcore's reference."""
    _, out = full
    executed = sorted((out / "autograded" / "release" / course.ASSIGNMENT).glob("*.ipynb"))
    assert [p.name for p in executed] == [p.name for p in WITH_POINTS]
    for path in executed:
        for cell in nbformat.read(path, as_version=4).cells:
            meta = gradeplan.meta(cell)
            if meta.get("grade") and cell.cell_type == "code":      # a check (a written answer prints nothing)
                assert "not done yet" in _printed(cell), f"{path.name}: {meta['grade_id']} printed {_printed(cell)!r}"
                continue
            errors = [f"{o.ename}: {o.evalue}" for o in cell.get("outputs", []) if o.output_type == "error"]
            assert not errors, f"{path.name}: {cell.source[:80]!r} raised {errors}"
            if "yours_or_reference(" in cell.source:
                assert "runs labcore's reference" in _printed(cell), _printed(cell)


@pytest.mark.slow
def test_outputs_feedback_and_class_report(graded):
    rows, out = graded
    page = out / "feedback" / "planted" / course.ASSIGNMENT / "03_iterative_decoding.html"
    feedback = html.unescape(page.read_text())
    assert "decode.shared_gumbel" in feedback and "AssertionError" in feedback
    report = (out / "class-report.md").read_text()
    assert "| check_decode_step | 03_iterative_decoding.ipynb | 5 |" in report
    assert "`decode.shared_gumbel` (1)" in report
    assert (out / "class-report.png").stat().st_size > 10_000


def test_a_grading_kernel_writes_into_its_own_repository(tmp_path):
    """The kernel imports its own copy of labcore: REPO_ROOT, hence runs/ (notebook 02's token cache)
    and results/, are in the submission's temporary folder; data/ is the repository's."""
    import subprocess

    classgrade.kernel_repository(tmp_path)
    env = classgrade.worker_env(tmp_path, classgrade.Options(jobs=1))
    code = "import labcore.paths as p; print(p.REPO_ROOT); print(p.RUNS_DIR); print(p.DATA_DIR.resolve())"
    printed = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                             check=True)
    root, runs, data = printed.stdout.split()
    assert Path(root) == tmp_path / "repo" and Path(runs).parent == tmp_path / "repo"
    assert Path(data) == (REPO / "data").resolve() and env["LABCORE_FAST"] == "1"


def test_open_submitted_notes_what_a_submission_did(tmp_path):
    """Deleted and edited locked cells are noted under the check they cost; an unreadable file or a
    missing one is the whole notebook's note; grading mode cuts after the last cell nbgrader knows."""
    solved = max(GRADED, key=lambda p: len(gradeplan.read_plan(p).checks))  # 02: several checks
    plan = gradeplan.read_plan(solved)
    nb = nbformat.read(solved, as_version=4)
    check = plan.checks[-1].grade_id
    nb.cells = [c for c in nb.cells if gradeplan.meta(c).get("grade_id") != check]
    first = next(c for c in nb.cells if gradeplan.meta(c).get("grade_id") == plan.checks[0].grade_id)
    first.source += "\nprint('mine')"
    nbformat.write(nb, tmp_path / solved.name)
    cut, notes = gradeplan.open_submitted(tmp_path / solved.name, plan, truncate=True)
    assert f"check cell {check} deleted" in notes[check]
    assert any("edited" in n for n in notes[plan.checks[0].grade_id])
    assert gradeplan.meta(cut.cells[-1]).get("grade_id") in plan.order
    (tmp_path / "x.ipynb").write_text("{not json")
    assert "not a readable notebook" in gradeplan.open_submitted(tmp_path / "x.ipynb", plan, True)[1][""][0]
    assert "notebook missing" in gradeplan.open_submitted(tmp_path / "none.ipynb", plan, True)[1][""][0]


def test_plans_come_from_the_metadata():
    """Every exercise of the graded notebooks is checked by one graded cell; 05 carries no points."""
    plans = gradeplan.graded_plans(GRADED)
    assert all(p.points > 0 for p in plans) and len(plans) < len(GRADED)
    exercises = [e for p in plans for c in p.checks for e in c.exercises]
    assert {m[1] for m in synthetic.PLANTED} <= set(exercises) and len(exercises) == len(set(exercises))


def test_no_checker_reads_fast_mode():
    """Grading mode runs in fast mode: no checker may read it (its verdicts must not change)."""
    for path in (REPO / "labcore" / "checkers").glob("*.py"):
        text = path.read_text()
        assert "fast_mode" not in text and "LABCORE_FAST" not in text, path.name


def test_submissions_of_a_class_or_of_students(tmp_path):
    """A folder with notebooks (or maskgit_lab/) is one submission; any other is a class of them."""
    (tmp_path / "class" / "alice").mkdir(parents=True)
    (tmp_path / "class" / "alice" / "00_a.ipynb").write_text("{}")
    (tmp_path / "class" / "bob" / course.ASSIGNMENT).mkdir(parents=True)
    (tmp_path / "class" / "empty").mkdir()
    found = classgrade.submissions_of([tmp_path / "class"])
    assert [p.name for p in found] == ["alice", "bob", "empty"]
    assert classgrade.submissions_of([tmp_path / "class" / "alice"]) == [tmp_path / "class" / "alice"]
    with pytest.raises(SystemExit, match="two submissions"):
        classgrade.submissions_of([tmp_path / "class", tmp_path / "class" / "alice"])


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


def test_synthetic_class_plants_every_row(tmp_path):
    """A class of 20: every PLANTED row and every special case appears; expected.csv has a row per
    student and check cell, and the solved notebooks hold every planted row's text."""
    specs = synthetic.random_class(20, seed=0)
    rows = {m for s in specs for m in s.planted}
    assert rows == set(synthetic.PLANTED) and {c for s in specs for c in s.special} == set(synthetic.SPECIAL)
    assert all(len(s.planted) <= 3 and len({m[1] for m in s.planted}) == len(s.planted) for s in specs)
    folder = synthetic.write_class(tmp_path, specs[:7], GRADED)
    expected = class_report.read_csv(folder / "expected.csv")
    checks = sum(len(p.checks) for p in gradeplan.graded_plans(GRADED))
    assert len(expected) == 7 * checks
