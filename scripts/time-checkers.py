"""How long each checker takes on a correct student implementation (median of 3 runs): the first
correct variant (``expect`` None) of each adversarial suite, ``tests/test_adversarial_<piece>.py``.
labcore's own pieces would stop at once with ``uses_reference``, so they are not what is timed.

    .venv/bin/python scripts/time-checkers.py

Run it on an idle machine; it prints one line per checker and the machine's load average.
"""

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from adversarial_cases import suites  # noqa: E402


def main() -> None:
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for piece, module in suites():
        case = next(case for case in module.CASES if case.expect is None)   # the first correct variant
        times, passed = [], True
        for _ in range(3):
            t0 = time.perf_counter()
            passed &= module.CHECK(case.impl).passed
            times.append(time.perf_counter() - t0)
        median_ms = statistics.median(times) * 1000
        print(f"{piece:22} {'passes' if passed else 'FAILS '}  median {median_ms:8.1f} ms  ({case.name})")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
