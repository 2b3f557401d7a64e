"""The conda environment and pyproject agree; the CLI lists its subcommands; the package is
layered (no upward import, no cycle, the grading package above the product), its functions short
and its code clean by ruff's rules (pyproject.toml)."""

import ast
import graphlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONDA_TO_PYPI = {"pytorch": "torch", "pyyaml": "pyyaml"}


def names(requirements) -> set[str]:
    return {re.split(r"[<>=!~ \[]", r, maxsplit=1)[0].strip().lower() for r in requirements}


def test_environment_yml_matches_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
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
    assert out.startswith("usage: labcore")
    assert ("root" in out) if command == "data-info" else ("--write-reference" in out)


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


def _module_name(path: Path) -> str:
    """labcore/training/stage2.py -> labcore.training.stage2; a package's __init__.py -> the package."""
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _labcore_imports(path: Path):
    """(imported module, line number, inside a function?, the line's text) for every labcore import;
    ``from labcore.training import config`` imports the module labcore.training.config, ``from
    labcore.training import train`` the package labcore.training."""
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
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in dict.fromkeys(names):
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


def grading_imports(paths) -> list[str]:
    """'file:line imports labcore.checkers...' for every import of the grading package in ``paths``."""
    return [f"{path.relative_to(REPO)}:{line} imports {name}" for path in paths
            for name, line, _, _ in _labcore_imports(path)
            if name == "labcore.checkers" or name.startswith("labcore.checkers.")]


def test_product_never_imports_the_grading_package():
    """labcore.checkers grades the students' exercises against the product; the product (every
    module outside labcore/checkers/) never imports it, not even inside a function. The one
    exception is the command line (labcore/cli/), which serves both: ``--step`` judges a
    student's step with its checker before running it (lazily: only with --step)."""
    package = REPO / "labcore"
    allowed = (package / "checkers", package / "cli")
    wrong = grading_imports(p for p in _modules() if not any(a in p.parents for a in allowed))
    assert not wrong, "the product imports the grading package:\n" + "\n".join(wrong)
    assert grading_imports([package / "cli" / "inpaint.py"]), "the rule no longer sees the CLI's own import"


def test_no_import_cycle():
    """The module-level imports among labcore's modules form no cycle (imports inside functions,
    each with its '# lazy:' reason, run after every module is loaded and are left out)."""
    graph = {_module_name(path): set() for path in _modules()}
    for path in _modules():
        me = _module_name(path)
        graph[me] |= {name for name, _, inside, _ in _labcore_imports(path) if not inside and name != me}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        cycle = err.args[1][::-1]  # graphlib lists each module before the one that imports it
        pytest.fail("import cycle: " + " imports ".join(cycle))


def test_reading_path_is_short():
    """The reading core is the algorithm, not its plumbing: <= 1,400 lines in all."""
    import labcore

    package = REPO / "labcore"
    total = sum(len((package / f"{n}.py").read_text().splitlines()) for n in labcore.READING_PATH)
    assert total <= 1400, f"reading path is {total} lines"


def test_no_function_over_50_lines():
    """Every function of labcore/ (reading core, tooling, checkers, CLI alike) fits on one screen:
    at most 50 lines, its docstring included."""
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 50:
                long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: "
                            f"{node.end_lineno - node.lineno + 1} lines > 50")
    assert not long, "\n".join(long)


def test_ruff_finds_nothing():
    """ruff with the rules of pyproject.toml ([tool.ruff]: unused imports and names, undefined names,
    line length, sorted imports) on labcore/, tests/ and scripts/."""
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise",
                           "labcore", "tests", "scripts"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
