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
