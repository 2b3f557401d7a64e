"""What a grading run writes: grades.csv (one row per student and graded cell), and the class
report (class-report.md + class-report.png): per exercise the pass rate and the mistakes with how
many students made each, so a TA sees what to teach again. Written answers (notebook 06) have no
points until a TA grades them: their points cell is empty, noted "to grade by hand", and they are
counted apart from the checks' points."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from gradeplan import TO_GRADE

FIELDS = ["student", "notebook", "grade_id", "points", "max_points", "mistakes", "notes"]


def write_csv(rows, path: Path) -> Path:
    """grades.csv: mistakes space-separated, notes joined by '; '; points empty for a written answer
    still to grade by hand."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(FIELDS)
        for r in rows:
            points = "" if to_grade(r) else f"{r.points:g}"       # a written answer: the TA's to fill in
            out.writerow([r.student, r.notebook, r.grade_id, points, f"{r.max_points:g}", " ".join(r.mistakes),
                          "; ".join(r.notes)])
    return path


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def to_grade(row) -> bool:
    """A written answer that a TA still has to grade (nbgrader gave it no points)."""
    return row.manual and TO_GRADE in row.notes


def exercises(rows) -> dict[str, list]:
    """grade id of each check -> its rows, in the notebooks' order."""
    by_check: dict[str, list] = {}
    for r in rows:
        by_check.setdefault(r.grade_id, []).append(r)
    return by_check


def summary(rows) -> list[dict]:
    """Per check: name, points, students, passed, pass rate, mistakes [(id, students)], notes [(note, students)]."""
    out = []
    for grade_id, mine in exercises([r for r in rows if not r.manual]).items():
        passed = sum(r.points >= r.max_points for r in mine)
        mistakes = Counter(i for r in mine for i in set(r.mistakes))
        notes = Counter(n for r in mine for n in set(r.notes))
        out.append({"check": grade_id, "notebook": mine[0].notebook, "points": mine[0].max_points,
                    "students": len(mine), "passed": passed, "rate": passed / len(mine),
                    "mistakes": mistakes.most_common(), "notes": notes.most_common()})
    return out


def totals(rows) -> dict[str, tuple[float, float]]:
    """student -> (points, max points) of the checks (written answers: ``by_hand``)."""
    out: dict[str, tuple[float, float]] = {}
    for r in rows:
        if r.manual:
            continue
        got, most = out.get(r.student, (0.0, 0.0))
        out[r.student] = (got + r.points, most + r.max_points)
    return out


def by_hand(rows) -> dict[str, float]:
    """student -> the points of their written answers still to grade by hand (0: none, or all left empty)."""
    out: dict[str, float] = {}
    for r in rows:
        if r.manual:
            out[r.student] = out.get(r.student, 0.0) + r.max_points * to_grade(r)
    return out


def hand_section(rows) -> list[str]:
    """The written answers: where a TA reads them, and how many are left empty."""
    answers = [r for r in rows if r.manual]
    if not answers:
        return []
    notebooks = ", ".join(sorted({r.notebook for r in answers}))
    empty = sum(not to_grade(r) for r in answers)
    ids = ", ".join(dict.fromkeys(r.grade_id for r in answers))
    return ["", "## To grade by hand", "",
            f"{len(answers) - empty} written answers of the class ({notebooks}: {ids}) have no points until a TA "
            "grades them: read each in `autograded/<student>/maskgit_lab/` (or the feedback HTML) beside the model "
            "answers and what a good answer covers (the solved notebooks/), and fill in their empty `points` "
            f"in grades.csv. {empty} answers were left empty: 0 points, nothing to grade."]


def markdown(rows, seconds: list[float], wall: float, jobs: int, mode: str) -> str:
    table = summary(rows)
    scores, hand = totals(rows), by_hand(rows)
    most = max((m for _, m in scores.values()), default=0)
    mean = sum(g for g, _ in scores.values()) / max(1, len(scores))
    aside = " (the checks; the written answers: below)" if any(hand.values()) else ""
    lines = [f"# Class report: {len(scores)} submissions",
             "",
             f"Mean score {mean:.1f} / {most:g}{aside}; graded in {wall:.0f} s with {jobs} workers in {mode} mode "
             f"({wall / max(1, len(scores)):.0f} s per submission; one submission took {min(seconds, default=0):.0f}-"
             f"{max(seconds, default=0):.0f} s).",
             "",
             "![pass rate and mistakes per exercise](class-report.png)",
             "",
             "## Per exercise (teach again what few passed)",
             "",
             "| check | notebook | points | passed | pass rate | mistakes (students) |",
             "|---|---|---|---|---|---|"]
    for e in sorted(table, key=lambda e: e["rate"]):
        named = ", ".join(f"`{i}` ({n})" for i, n in e["mistakes"]) or "-"
        lines.append(f"| {e['check']} | {e['notebook']} | {e['points']:g} | {e['passed']} of {e['students']} | "
                     f"{e['rate']:.0%} | {named} |")
    said = {(r.student, r.notebook, n) for r in rows for n in r.notes if n != TO_GRADE}  # once per student, notebook
    notes = Counter((notebook, note) for _, notebook, note in said)
    if notes:
        lines += ["", "## Notes (what broke; each costs only the checks it names)", "",
                  "| notebook | note | students |", "|---|---|---|"]
        lines += [f"| {nb} | {note} | {n} |" for (nb, note), n in sorted(notes.items())]
    lines += hand_section(rows)
    lines += ["", "## Scores", "", "| student | points |", "|---|---|"]
    for s, (g, m) in scores.items():
        lines.append(f"| {s} | {g:g} / {m:g}" + (f" + {hand[s]:g} to grade by hand" if hand.get(s) else "") + " |")
    return "\n".join(lines) + "\n"


def figure(rows, path: Path, top: int = 12) -> Path:
    """Left: pass rate per check; right: the most frequent mistake ids (students who made each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summary(rows)
    counts = Counter({i: n for e in table for i, n in e["mistakes"]}).most_common(top)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * max(len(table), len(counts), 4) + 1.2))
    names = [e["check"].removeprefix("check_") for e in table][::-1]
    rates = [100 * e["rate"] for e in table][::-1]
    left.barh(names, rates, color="tab:green")
    left.set_xlim(0, 100)
    left.set_xlabel("students who passed (%)")
    left.set_title("pass rate per exercise")
    for y, v in enumerate(rates):
        left.text(min(v + 1, 88), y, f"{v:.0f}%", va="center")
    if counts:
        right.barh([i for i, _ in counts][::-1], [n for _, n in counts][::-1], color="tab:red")
    right.set_xlabel("students")
    right.set_title("most frequent mistakes")
    right.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_all(rows, out: Path, seconds: list[float], wall: float, jobs: int, mode: str) -> list[Path]:
    out = Path(out)
    written = [write_csv(rows, out / "grades.csv"), figure(rows, out / "class-report.png")]
    (out / "class-report.md").write_text(markdown(rows, seconds, wall, jobs, mode))
    return written + [out / "class-report.md"]
