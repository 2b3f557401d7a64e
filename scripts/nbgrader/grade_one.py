"""One submission, in its own course folder: nbgrader autograde + generate_feedback, in one
process (run by classgrade.py as ``python grade_one.py COURSE STUDENT``, its cwd the course).

Writes COURSE/scores.json: {notebook: {grade_id: [score, max_score, needs_manual_grade]}} from the
gradebook, and {"log": nbgrader's log} when a step failed.
"""

import json
import sys
import warnings
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from traitlets.config.loader import PyFileConfigLoader

ASSIGNMENT = "maskgit_lab"


def main(root: Path, student: str) -> int:
    warnings.filterwarnings("ignore", module="nbgrader.api")  # its gradebook's SQLAlchemy warnings: noise
    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    api = NbGraderAPI(coursedir=CourseDirectory(config=config, root=str(root)), config=config)
    out: dict = {"log": ""}
    for step in (api.autograde, api.generate_feedback):
        done = step(ASSIGNMENT, student)
        if not done["success"]:
            out["log"] += f"{step.__name__} failed:\n{done.get('log', '')}\n{done.get('error', '')}"
            break
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "labcore") as gb:
        try:
            submission = gb.find_submission(ASSIGNMENT, student)
        except MissingEntry:  # autograde failed before it recorded the submission
            submission = None
        out["scores"] = {nb.name + ".ipynb": {g.name: [g.score, g.max_score, bool(g.needs_manual_grade)]
                                              for g in nb.grades}
                         for nb in (submission.notebooks if submission else [])}
    (root / "scores.json").write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve(), sys.argv[2]))
