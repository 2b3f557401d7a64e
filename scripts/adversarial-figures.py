"""Per exercise: the adversarial suite's wrong cases named / caught generically / misnamed /
passed / crashed, and its right cases passed (``tests/test_adversarial_<exercise>.py``).

    .venv/bin/python scripts/adversarial-figures.py
"""

import collections
import importlib.util
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))
from adversarial_cases import verdict  # noqa: E402


def main() -> None:
    print("| exercise | wrong cases | named | caught generically | misnamed | passed | crashed | right cases | right passed |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for path in sorted(TESTS.glob("test_adversarial_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        count = collections.Counter()
        for case in module.CASES:
            v = verdict(module.CHECK, case)
            count[("wrong " if case.expect else "right ") + v.split(" (")[0]] += 1
            count["wrong" if case.expect else "right"] += 1
            if v.startswith(("crashed", "passed", "misnamed", "false alarm")) and v != "passed right":
                print(f"  {path.stem}: {case.name}: {v}", file=sys.stderr)
        print(f"| {path.stem.removeprefix('test_adversarial_')} | {count['wrong']} | {count['wrong named']} | "
              f"{count['wrong generic']} | {count['wrong misnamed']} | {count['wrong passed']} | {count['wrong crashed']} "
              f"| {count['right']} | {count['right passed right']} |")


if __name__ == "__main__":
    main()
