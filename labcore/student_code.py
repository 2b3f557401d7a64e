"""A student's function, loaded by name from a file, a module or a notebook: what ``labcore inpaint
--step`` and ``labcore experiment --step`` run, and what a report notebook scores.

``load_function(spec)`` takes one of three forms:

- ``FILE.py:NAME``         the file is imported as a module of its own (a unique name each time, so
                           two files called ``my_step.py`` never clash), then its ``NAME``;
- ``package.module:NAME``  an importable module's ``NAME``;
- ``NOTEBOOK.ipynb:NAME``  a student's notebook, without running it: only its top-level imports,
                           then the top-level ``def``/``class`` that defines ``NAME`` and, by name,
                           the notebook's other top-level defs and classes it uses (transitively),
                           run in one fresh namespace. Nothing else runs: no model is loaded, no
                           training starts. Cells that are not Python (a syntax error, a cell magic
                           such as ``%%writefile``) are skipped, and so are ``%`` and ``!`` lines.

A name the notebook's function reads but the notebook *assigns* (02's ``mask_tokens_used =
yours_or_reference(...)``) is therefore not bound, since binding it would run that cell's work: the
caller binds it in the function's ``__globals__`` (notebook 06 does, for 02's training pieces).

Every failure is a ValueError whose message starts with the spec: a missing file, an import or
syntax error (the first line of the exception), no such name, a name that is not callable.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import itertools
import json
import linecache
import sys
import types
from pathlib import Path
from typing import Callable

_FORMS = "FILE.py:NAME, NOTEBOOK.ipynb:NAME or package.module:NAME"
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_IMPORTS = (ast.Import, ast.ImportFrom)
_RUNS_ITS_BODY = {"time", "capture"}   # cell magics whose body runs in the notebook's namespace
_unique = itertools.count()


def load_function(spec: str) -> Callable:
    """The callable ``spec`` names (``FILE.py:NAME``, ``package.module:NAME`` or
    ``NOTEBOOK.ipynb:NAME``); a ValueError that names ``spec`` when it cannot be had."""
    where, _, name = str(spec).rpartition(":")
    if not where or not name.isidentifier():
        raise ValueError(f"{spec}: expected {_FORMS}")
    if where.endswith(".ipynb"):
        scope = _notebook_scope(spec, _existing(spec, where), name)
    elif where.endswith(".py"):
        scope = vars(_import_file(spec, _existing(spec, where)))
    elif all(part.isidentifier() for part in where.split(".")):
        scope = vars(_guarded(spec, importlib.import_module, where))
    else:
        raise ValueError(f"{spec}: expected {_FORMS}")
    if name not in scope:
        raise ValueError(f"{spec}: {where} has no {name}")
    found = scope[name]
    if not callable(found):
        raise ValueError(f"{spec}: {name} is not callable (type {type(found).__name__})")
    return found


def _existing(spec: str, where: str) -> Path:
    path = Path(where).expanduser()
    if not path.is_file():
        raise ValueError(f"{spec}: no such file {where}")
    return path.resolve()


def _guarded(spec: str, action, *args):
    """``action(*args)``; whatever it raises (the student's code ran) becomes a one-line ValueError."""
    try:
        return action(*args)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - any error of the student's code is the message
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ValueError(f"{spec}: {type(err).__name__}{': ' + first if first else ''}") from err


def _unique_name(stem: str) -> str:
    """A module name no other load uses: two files called my_step.py never replace each other."""
    return f"labcore_student_{''.join(c if c.isalnum() else '_' for c in stem)}_{next(_unique)}"


def _import_file(spec: str, path: Path) -> types.ModuleType:
    """The file imported as a module of its own, registered in ``sys.modules`` (as an import is:
    dataclasses and pickle look it up). Compiled from its text each time: no stale bytecode after
    an edit, no __pycache__ left beside it; its code keeps the file's name (tracebacks show its lines)."""
    found = importlib.util.spec_from_file_location(_unique_name(path.stem), path)
    module = sys.modules[found.name] = importlib.util.module_from_spec(found)
    try:
        code = _guarded(spec, lambda: compile(path.read_bytes(), str(path), "exec"))
        _guarded(spec, exec, code, vars(module))
    except ValueError:
        del sys.modules[found.name]
        raise
    return module


# ----------------------------------------------------------------------------- notebooks

def _python_cells(spec: str, path: Path) -> list[tuple[str, ast.Module]]:
    """(a name for the cell, its parsed source) of every code cell that is Python once its ``%``
    and ``!`` lines are dropped; a cell magic other than ``%%time``/``%%capture`` is not Python."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{spec}: not a notebook ({type(err).__name__}: {err})") from err
    parsed = []
    for number, cell in enumerate(cells):
        source = cell.get("source", "")
        lines = (source if isinstance(source, str) else "".join(source)).splitlines(keepends=True)
        magic = lines[0].strip()[2:].split() + [""] if lines and lines[0].startswith("%%") else None
        if cell.get("cell_type") != "code" or (magic is not None and magic[0] not in _RUNS_ITS_BODY):
            continue
        text = "".join("\n" if line.lstrip().startswith(("%", "!")) else line for line in lines)
        filename = f"<{path.name} cell {number}>"
        try:
            parsed.append((filename, ast.parse(text, filename)))
        except SyntaxError:
            continue
        linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)  # tracebacks
    return parsed


def _needed(definitions: dict[str, ast.stmt], name: str) -> set[str]:
    """``name`` and every top-level definition it uses by name, transitively."""
    needed, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in needed:
            continue
        needed.add(current)
        used = {n.id for n in ast.walk(definitions[current]) if isinstance(n, ast.Name)}
        todo += [n for n in used if n in definitions and n not in needed]
    return needed


def _notebook_scope(spec: str, path: Path, name: str) -> dict:
    """The notebook's imports, then ``name``'s definition and the definitions it needs, each run in
    notebook order in one fresh module; returns its namespace."""
    cells = _python_cells(spec, path)
    definitions = {node.name: node for _, tree in cells for node in tree.body if isinstance(node, _DEFINITIONS)}
    if name not in definitions:
        raise ValueError(f"{spec}: {path.name} has no top-level def or class {name}")
    needed = _needed(definitions, name)
    module = types.ModuleType(_unique_name(path.stem))
    sys.modules[module.__name__] = module     # as for a file: dataclasses and pickle look the module up
    for pick in (lambda node: isinstance(node, _IMPORTS),
                 lambda node: isinstance(node, _DEFINITIONS) and definitions.get(node.name) is node
                 and node.name in needed):
        for filename, tree in cells:
            body = [node for node in tree.body if pick(node)]
            if body:
                code = compile(ast.Module(body=body, type_ignores=[]), filename, "exec")
                _guarded(spec, exec, code, vars(module))
    return vars(module)
