"""A synthetic class: submissions made from the solved notebooks with planted mistakes and
special cases, and the scores they must get (expected.csv beside them).

    python scripts/nbgrader/synthetic_class.py OUT 20 --seed 0   # OUT/student-01/ ... + OUT/expected.csv
    python scripts/nbgrader/synthetic_class.py OUT --small        # the few submissions CI grades

Each submission carries 0-3 rows of PLANTED (wrong code put in place of a line of a solution
region, as a student would write it, with the mistake id its check must name), each in another
exercise; the first ones carry a special case each (SPECIAL: an endless loop, a syntax error, a
deleted check cell, an edited locked cell, a missing notebook, a file that is not JSON) and their
other mistakes stay out of that notebook.
A mistake costs the points of the check cell of its exercise (read from the notebooks' metadata).
Written answers (notebook 06) are expected at 0 points: nbgrader leaves them to a TA.
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

import course
import gradeplan

# the planted mistakes: (notebook, exercise grade id, text of its solution, the wrong text, the mistake id its
# check must name; an id of labcore.checkers.mistakes.MISTAKES)
PLANTED = [
    ("00_tokens.ipynb", "encode_to_z", "return indices.flatten(1)", "return indices.transpose(1, 2).flatten(1)",
     "encode.transposed"),
    ("01_multi_head_attention.ipynb", "multi_head_attention", " / math.sqrt(self.head_dim)", "",
     "attention.no_scaling"),
    ("01_multi_head_attention.ipynb", "multi_head_attention", "scores.softmax(dim=-1)", "scores.softmax(dim=-2)",
     "attention.softmax_axis"),
    ("02_train_stage2.ipynb", "gamma_func", "return lambda r: 1 - r ** 2", "return lambda r: 1 - r",
     "gamma.wrong_mode"),
    ("02_train_stage2.ipynb", "mask_tokens", "r = torch.rand(B, generator=generator, dtype=torch.float64)",
     "r = torch.rand(1, generator=generator, dtype=torch.float64).expand(B)", "masking.ratio_per_batch"),
    ("02_train_stage2.ipynb", "masked_loss", "F.cross_entropy(logits[masked], targets[masked])",
     "F.cross_entropy(logits.flatten(0, 1), targets.flatten())", "masking.loss_all_tokens"),
    ("02_train_stage2.ipynb", "configure_optimizers", '"weight_decay": weight_decay}', '"weight_decay": 0.0}',
     "loop.no_weight_decay"),
    ("02_train_stage2.ipynb", "train_one_epoch", "        optimizer.zero_grad()\n", "", "loop.no_zero_grad"),
    ("03_iterative_decoding.ipynb", "decode_step", "g = gumbel(masked.shape, generator, masked.device)",
     "g = gumbel((), generator, masked.device)", "decode.shared_gumbel"),
    ("03_iterative_decoding.ipynb", "decode_step", "rank = confidence.argsort(dim=1, stable=True)",
     "rank = (-confidence).argsort(dim=1, stable=True)", "decode.keeps_least_confident"),
    ("04_fid.ipynb", "frechet_distance", "- 2 * np.trace(covmean)", "- np.trace(covmean)", "frechet.missing_factor_2"),
]

# special case -> (notebook, exercise or check grade id it touches, whether it costs that check's points)
SPECIAL = {
    "endless_loop": ("01_multi_head_attention.ipynb", "multi_head_attention", True),
    "syntax_error": ("04_fid.ipynb", "frechet_distance", True),
    "deleted_check_cell": ("03_iterative_decoding.ipynb", "check_decode_step", True),
    "edited_locked_cell": ("00_tokens.ipynb", "check_encode_to_z", False),   # nbgrader puts the released cell back
    "missing_notebook": ("02_train_stage2.ipynb", None, True),
    "not_json": ("04_fid.ipynb", None, True),
}


@dataclass
class Spec:
    name: str
    planted: list[tuple] = field(default_factory=list)    # rows of PLANTED
    special: list[str] = field(default_factory=list)      # keys of SPECIAL
    only: list[str] | None = None                         # submit only these notebooks (others: missing)


def random_class(n: int, seed: int) -> list[Spec]:
    """n submissions: the first len(SPECIAL) carry one special case each; each carries 0-3 mistakes
    of distinct exercises, the rows used least so far first (every row appears in a class of 20)."""
    rng, used = random.Random(seed), {i: 0 for i in range(len(PLANTED))}
    specs = []
    for k in range(n):
        special = [list(SPECIAL)[k]] if k < len(SPECIAL) else []
        banned = {SPECIAL[s][0] for s in special}
        rows, exercises, count = [], set(), rng.choice([0, 1, 2, 3])
        for i in sorted(rng.sample(range(len(PLANTED)), len(PLANTED)), key=lambda i: used[i]):
            if len(rows) == count:
                break
            if PLANTED[i][0] not in banned and PLANTED[i][1] not in exercises:
                rows.append(PLANTED[i])
                exercises.add(PLANTED[i][1])
                used[i] += 1
        specs.append(Spec(f"student-{k + 1:02d}", rows, special))
    return specs


def small_class() -> list[Spec]:
    """What CI grades: one mistake per notebook; every special case; 02's other pieces wrong; the release."""
    first = {}
    for row in PLANTED:
        first.setdefault(row[0], row)
    in02 = [r for r in PLANTED if r[0] == "02_train_stage2.ipynb"][1:]
    return [Spec("planted", list(first.values())),
            Spec("special", [], ["edited_locked_cell", "endless_loop", "missing_notebook", "deleted_check_cell",
                                 "syntax_error"]),
            Spec("notjson", [], ["not_json"], only=["04_fid.ipynb"]),
            Spec("planted02", in02, only=["02_train_stage2.ipynb"])]


def _cell(nb, grade_id):
    return next(c for c in nb.cells if gradeplan.meta(c).get("grade_id") == grade_id)


def _replace(cell, right: str, wrong: str) -> None:
    grade_id = gradeplan.meta(cell)["grade_id"]
    assert right in cell.source, f"{right!r} is not in cell {grade_id} any more (update PLANTED)"
    cell.source = cell.source.replace(right, wrong, 1)


def plant(nb, notebook: str, spec: Spec) -> object | None:
    """The notebook with the spec's mistakes and special cases in it (None: it is not submitted)."""
    for _, exercise, right, wrong, _ in (row for row in spec.planted if row[0] == notebook):
        _replace(_cell(nb, exercise), right, wrong)
    for case in spec.special:
        where, grade_id, _ = SPECIAL[case]
        if where != notebook:
            continue
        if case == "missing_notebook":
            return None
        if case == "endless_loop":   # the first line of the solution region loops for ever when it runs
            cell = _cell(nb, grade_id)
            line = next(text for text in cell.source.split("### BEGIN SOLUTION\n")[1].splitlines() if text.strip())
            indent = line[:len(line) - len(line.lstrip())]
            # it waits rather than spins: the time limit is what is tested, and CI's two cores have other work
            _replace(cell, line, f"{indent}while True:  # a student's endless loop\n"
                                 f"{indent}    __import__('time').sleep(0.5)\n{line}")
        elif case == "syntax_error":
            _replace(_cell(nb, grade_id), "diff = mu1 - mu2", "diff = mu1 - mu2)")
        elif case == "deleted_check_cell":
            nb.cells.remove(_cell(nb, grade_id))
        elif case == "edited_locked_cell":
            _cell(nb, grade_id).source = 'print("PASS")  # edited by the student'
    return nb


def expected_rows(spec: Spec, plans) -> list[dict]:
    """One row per check cell: the points it must get and the mistake id its report must name."""
    rows = []
    for plan in plans:
        lost_notebook = (spec.only is not None and plan.name not in spec.only) or any(
            SPECIAL[c][0] == plan.name and SPECIAL[c][1] is None for c in spec.special)
        for check in plan.checks:
            named = [row[4] for row in spec.planted if row[0] == plan.name and row[1] in check.exercises]
            hit = [c for c in spec.special if SPECIAL[c][0] == plan.name and SPECIAL[c][2]
                   and SPECIAL[c][1] in (check.grade_id, *check.exercises)]
            lost = lost_notebook or bool(named) or bool(hit) or check.manual   # a written answer: 0 until a TA
            rows.append({"student": spec.name, "notebook": plan.name, "grade_id": check.grade_id,
                         "points": f"{0 if lost else check.points:g}", "max_points": f"{check.points:g}",
                         "mistake": " ".join(named), "special": " ".join(
                             c for c in spec.special if SPECIAL[c][0] == plan.name)})
    return rows


def write_class(out: Path, specs: list[Spec], notebooks: list[Path] | None = None) -> Path:
    """OUT/<student>/NN_*.ipynb for every spec, and OUT/expected.csv; returns OUT."""
    notebooks = notebooks or course.default_notebooks()
    plans = gradeplan.graded_plans(notebooks)
    out.mkdir(parents=True, exist_ok=True)
    expected = []
    for spec in specs:
        folder = out / spec.name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        for path in notebooks:
            if spec.only is not None and path.name not in spec.only:
                continue
            if "not_json" in spec.special and SPECIAL["not_json"][0] == path.name:
                (folder / path.name).write_text("this is not a notebook\n")
                continue
            nb = plant(nbformat.read(path, as_version=4), path.name, spec)
            if nb is not None:
                nbformat.write(nb, folder / path.name)
        expected += expected_rows(spec, plans)
    with open(out / "expected.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(expected[0]))
        writer.writeheader()
        writer.writerows(expected)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="synthetic_class.py", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="the class folder to write (one folder per student)")
    parser.add_argument("n", type=int, nargs="?", default=20, help="submissions (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", action="store_true", help="the few submissions CI grades instead")
    args = parser.parse_args(argv)
    specs = small_class() if args.small else random_class(args.n, args.seed)
    write_class(args.out, specs)
    print(f"wrote {len(specs)} submissions and expected.csv in {args.out}")


if __name__ == "__main__":
    main()
