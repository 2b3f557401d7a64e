"""Per exercise: the adversarial suite's wrong cases named / caught generically / misnamed /
passed / crashed, and its right cases passed (``tests/test_adversarial_<exercise>.py``).

    .venv/bin/python scripts/adversarial-figures.py
"""

import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from adversarial_cases import suites, verdict  # noqa: E402


def main() -> None:
    print("| exercise | wrong cases | named | caught generically | misnamed | passed | crashed | right cases "
          "| right passed |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for exercise, module in suites():
        count = collections.Counter()
        for case in module.CASES:
            v = verdict(module.CHECK, case)
            count[("wrong " if case.expect else "right ") + v.split(" (")[0]] += 1
            count["wrong" if case.expect else "right"] += 1
            if v.startswith(("crashed", "passed", "misnamed", "false alarm")) and v != "passed right":
                print(f"  test_adversarial_{exercise}: {case.name}: {v}", file=sys.stderr)
        print(f"| {exercise} | {count['wrong']} | {count['wrong named']} | {count['wrong generic']} | "
              f"{count['wrong misnamed']} | {count['wrong passed']} | {count['wrong crashed']} "
              f"| {count['right']} | {count['right passed right']} |")


if __name__ == "__main__":
    main()
