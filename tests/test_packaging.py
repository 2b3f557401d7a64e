"""The conda environment and pyproject agree; the CLI lists its subcommands."""

import re
import subprocess
import sys
import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONDA_TO_PYPI = {"pytorch": "torch", "pyyaml": "pyyaml"}


def names(requirements) -> set[str]:
    return {re.split(r"[<>=!~ \[]", r, maxsplit=1)[0].strip().lower() for r in requirements}


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = names(project["dependencies"]) | names(project["optional-dependencies"]["test"])
    env = yaml.safe_load((REPO / "environment.yml").read_text())["dependencies"]
    conda = {CONDA_TO_PYPI.get(n, n) for n in names(d for d in env if isinstance(d, str))} - {"python", "pip"}
    pip = names(p for d in env if isinstance(d, dict) for p in d["pip"] if not p.startswith("-e"))
    assert conda | pip == declared


def test_cli_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "labcore", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("demo", "data-info"):
        assert command in out


@pytest.mark.parametrize("command", ["data-info", "fid"])
def test_command_help(command):
    out = subprocess.run([sys.executable, "-m", "labcore", command, "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("usage: labcore") and ("root" in out if command == "data-info" else "--write-reference" in out)


def test_reading_path_in_the_package_docstring_is_true():
    """labcore/__init__.py tells a student which files to read, in order, one line per file."""
    import labcore

    rows = re.findall(r"^\d+\s+``(\w+)\.py``\s", labcore.__doc__, flags=re.M)
    assert tuple(rows) == labcore.READING_PATH
    package = Path(labcore.__file__).parent
    assert all((package / f"{name}.py").is_file() for name in rows)


# The layers, bottom up: a module may import its own layer or those below, never one above.
# The ground floor, what the reading core stands on: file constants, validation, CSV tables,
# devices/seeds/notes, reading and checking the dataset's files, and the offline Inception
# network that FID runs (as torchvision's models are for others). The benchmarks measure
# the lab's jobs and sit above every other tool (only the CLI runs them).
BASE = {"paths", "validate", "csv_tables", "runtime", "dataset_files", "inception"}


def _layer(module: str) -> int:
    import labcore

    top = module.split(".")[1] if module.startswith("labcore.") else module
    if top in BASE:
        return 0
    if top in labcore.READING_PATH:
        return 1
    return {"cli": 4, "bench": 3}.get(top, 2)


def _labcore_imports(path: Path):
    """(imported module, line number, inside a function?, the line's text) for every labcore import."""
    import ast

    source = path.read_text()
    tree = ast.parse(source)
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inner = {id(n) for f in functions for n in ast.walk(f)}
    lines = source.splitlines()
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [base] if base != "labcore" else [f"labcore.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            if name == "labcore" or name.startswith("labcore."):
                yield name, node.lineno, id(node) in inner, lines[node.lineno - 1]


def _modules():
    return sorted(p for p in (REPO / "labcore").rglob("*.py") if p.name != "__main__.py")


def test_no_module_imports_a_layer_above_it():
    """the ground floor (BASE) <- the reading core <- tooling <- bench <- cli: the reading core
    never reaches into tooling, no tool into the benchmarks, only the command line imports
    labcore.cli."""
    wrong = []
    for path in _modules():
        me = ".".join(path.relative_to(REPO).with_suffix("").parts)
        for name, line, _, _ in _labcore_imports(path):
            if name != "labcore" and _layer(name) > _layer(me):
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert not wrong, "imports that run upward:\n" + "\n".join(wrong)


def test_imports_inside_functions_say_why():
    """An import inside a function only where it saves real start-up time, with a '# lazy:' reason."""
    unexplained = [f"{path.relative_to(REPO)}:{line}: {text.strip()}" for path in _modules()
                   for _, line, inside, text in _labcore_imports(path) if inside and "# lazy:" not in text]
    assert not unexplained, "imports inside functions without a '# lazy: ...' reason:\n" + "\n".join(unexplained)


def test_reading_path_is_short_and_its_functions_too():
    """The reading core is the algorithm, not its plumbing: <= 1,400 lines in all, no function over
    50 lines; tooling functions <= 80 lines."""
    import ast

    import labcore

    package = REPO / "labcore"
    total = sum(len((package / f"{n}.py").read_text().splitlines()) for n in labcore.READING_PATH)
    assert total <= 1400, f"reading path is {total} lines"
    long = []
    for path in _modules():
        limit = 50 if path.parent == package and path.stem in labcore.READING_PATH else 80
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > limit:
                long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1} lines > {limit}")
    assert not long, "\n".join(long)
