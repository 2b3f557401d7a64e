"""Lines and longest function of every labcore module, at a git revision (default: the work tree).

    python scripts/module-sizes.py [REV]     # e.g. 2c37a79 (before issue #22) or HEAD

Prints the reading path first (labcore.READING_PATH, in order, with its total), then the tooling.
"""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
READING_PATH = ("data", "vqgan", "attention", "transformer", "schedules", "maskgit", "decoding", "metrics", "fid")


def files(rev: str | None) -> dict[str, str]:
    """module path -> source, at ``rev`` (None: the work tree)."""
    if rev is None:
        return {str(p.relative_to(REPO)): p.read_text() for p in sorted((REPO / "labcore").rglob("*.py"))}
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, "labcore"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.split()
    return {n: subprocess.run(["git", "show", f"{rev}:{n}"], cwd=REPO, check=True, capture_output=True,
                              text=True).stdout for n in names if n.endswith(".py")}


def longest(source: str) -> tuple[int, str]:
    spans = [(n.end_lineno - n.lineno + 1, n.name) for n in ast.walk(ast.parse(source))
             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return max(spans, default=(0, "-"))


def main() -> None:
    rev = sys.argv[1] if len(sys.argv) > 1 else None
    sources = files(rev)
    reading = [f"labcore/{m}.py" for m in READING_PATH]
    print(f"{'module':34} {'lines':>6}  longest function")
    for group, names in (("reading path", reading), ("tooling", sorted(set(sources) - set(reading)))):
        total = 0
        for name in names:
            if name in sources:
                lines = len(sources[name].splitlines())
                total += lines
                n, fn = longest(sources[name])
                print(f"{name:34} {lines:6}  {fn} ({n})")
        print(f"{group + ' total':34} {total:6}\n")


if __name__ == "__main__":
    main()
