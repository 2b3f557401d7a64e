"""How long each checker takes on a correct student implementation (median of 3 runs): the first
correct variant (``expect`` None) of each adversarial suite, ``tests/test_adversarial_<piece>.py``.
labcore's own pieces would stop at once with ``uses_reference``, so they are not what is timed.

    .venv/bin/python scripts/time-checkers.py

Run it on an idle machine; it prints one line per checker and the machine's load average.
"""

import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))


def suites():
    """(piece, check, a correct implementation) per adversarial suite."""
    for path in sorted(TESTS.glob("test_adversarial_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        right = next(case for case in module.CASES if case.expect is None)
        yield path.stem.removeprefix("test_adversarial_"), module.CHECK, right


def main() -> None:
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for name, check, case in suites():
        times, passed = [], True
        for _ in range(3):
            t0 = time.perf_counter()
            passed &= check(case.impl).passed
            times.append(time.perf_counter() - t0)
        print(f"{name:22} {'passes' if passed else 'FAILS '}  median {statistics.median(times) * 1000:8.1f} ms  ({case.name})")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
