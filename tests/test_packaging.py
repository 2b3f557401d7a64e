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
    """labcore/__init__.py tells a student which files to read, in order, and how long each is;
    the numbers must be the files' real line counts (update the table when a file changes)."""
    import labcore

    rows = re.findall(r"^\d+\s+``(\w+)\.py``\s+(\d+)\s", labcore.__doc__, flags=re.M)
    assert tuple(name for name, _ in rows) == labcore.READING_PATH
    package = Path(labcore.__file__).parent
    real = {name: len((package / f"{name}.py").read_text().splitlines()) for name in labcore.READING_PATH}
    assert {name: int(n) for name, n in rows} == real
    total = int(re.search(r"^\s+total\s+(\d+)$", labcore.__doc__, flags=re.M).group(1))
    assert total == sum(real.values())
