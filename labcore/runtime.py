"""Shared plumbing for every command: device choice, threads, seeds, fast mode, notes, atomic
checkpoints, weights-only loading and YAML configs with errors that name the file. Training's own
pieces (per-step seeds, LR schedule, logs, bf16) are in ``labcore.training``.
"""

from __future__ import annotations

import logging
import os
import pickle
import random
import resource
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import torch
import yaml

from labcore.validate import integer

FAST_ENV = "LABCORE_FAST"

# Every notice labcore gives (a command's or a library call's) goes through this logger: the CLI
# prints each as one ``labcore <command>: note: ...`` line (labcore.cli.main); in a notebook or a
# script, Python's last-resort handler prints the bare message to stderr.
LOG = logging.getLogger("labcore")


def note(message: str) -> None:
    """Tell the user one thing, on one line, without a file path or a traceback."""
    LOG.warning(" ".join(str(message).split()))


def fast_mode() -> bool:
    """True when ``LABCORE_FAST=1`` (CI sets it): training steps and sample counts shrink,
    nothing else changes."""
    return os.environ.get(FAST_ENV, "0").strip().lower() in {"1", "true", "yes"}


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; anything else is passed to torch.device."""
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {name!r}: not a device name (auto, cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type not in ("cpu", "cuda") and not (device.type == "mps" and torch.backends.mps.is_available()):
        raise ValueError(f"device {name!r}: not available here (use auto, cpu or cuda)")
    return device


def set_threads(threads: int | None) -> None:
    """torch's CPU threads for this process; None leaves torch's own choice."""
    if threads is not None:
        torch.set_num_threads(integer("threads", threads, 1))


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters (trainable or not) of any module."""
    return sum(p.numel() for p in model.parameters())


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- checkpoints

def to_cpu(obj: Any) -> Any:
    """``obj`` with every tensor inside (dicts, lists, tuples: state dicts, optimizer states) moved
    to the CPU, so a checkpoint written on a GPU opens with a plain ``torch.load`` anywhere."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        out = type(obj)((k, to_cpu(v)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):  # a module's state_dict keeps its version info
            out._metadata = obj._metadata
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it; put it back at once
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Call ``write(f)`` on a binary file with a temporary name in ``path``'s folder, fsync, then
    rename it over ``path``: a crash mid-write never leaves a truncated file behind, and readers
    see the old file or the new one, nothing in between. The file gets the permissions a plain
    ``open(path, "w")`` would give it (0666 less the umask; mkstemp's own 0600 would hide it from
    the rest of a course's group)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save of ``obj`` with CPU tensors (``to_cpu``), atomically (``atomic_write``): a
    checkpoint written on a GPU loads on a CPU-only machine with a plain ``torch.load``."""
    obj = to_cpu(obj)
    return atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    """``text`` written atomically (``atomic_write``): readers never see a half-written config,
    log or metrics file."""
    return atomic_write(path, lambda f: f.write(text.encode()))


@contextmanager
def staged_output_dir(target: str | os.PathLike, overwrite: bool = False, name: str = "output_dir"):
    """All-or-nothing output folder: yields a temporary folder beside ``target`` to write into and
    renames it to ``target`` only when the block finishes; on any error it is deleted, so a failed
    run leaves nothing behind and a finished one holds no stale files of an earlier run.

    Checked before any work (the block is where the work is): ``target`` must not be a file, must
    be empty or absent unless ``overwrite`` (then the old folder is replaced whole), and its parent
    must be writable (creating the temporary folder proves it)."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{name} {target}: exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise FileExistsError(f"{name} {target} is not empty: pass --overwrite to replace it, or choose another folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    os.chmod(staging, 0o777 & ~_umask())  # what mkdir would make (mkdtemp's 0700 would hide the outputs)
    try:
        yield staging
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(staging, target)
            shutil.rmtree(old)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_file(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on CPU. torch's own errors on a wrong file
    (``EOFError``, ``KeyError: 543911541``, a miniz message) do not say which file or why, so
    every failure here is a FileNotFoundError / ValueError naming the file and the reason."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{what} {path}: empty file (0 bytes)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "unsupported global" in str(err).lower():  # a pickled class, e.g. a whole nn.Module
            raise ValueError(f"{what} {path}: holds Python objects other than tensors, refused by "
                             "weights-only loading (save a plain state dict)") from None
        raise ValueError(f"{what} {path}: not a torch checkpoint ({_first_line(err)})") from None
    except Exception as err:  # a truncated zip, a text file, another format
        raise ValueError(f"{what} {path}: not a torch checkpoint ({type(err).__name__}: "
                         f"{_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0][:200]


def read_yaml_mapping(path: str | os.PathLike, what: str = "config") -> dict:
    """A YAML file whose top level is a mapping (an empty file is ``{}``). A missing file is a
    FileNotFoundError; a binary file, invalid YAML or a top-level list is a ValueError naming
    the file, instead of PyYAML's multi-line trace."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{what} {path}: not a text file (not UTF-8)") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{what} {path}: invalid YAML ({_first_line(err)})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"{what} {path}: expected a mapping of keys at the top level, got a "
                         f"{type(raw).__name__}")
    return raw


def check_state_dict(model: torch.nn.Module, state: dict, source: str, limit: int = 8) -> None:
    """Raise a ValueError listing the first missing / unexpected / mis-shaped keys of
    ``state`` against ``model`` (``source`` names the file in the message)."""
    if not isinstance(state, dict):
        raise ValueError(f"{source}: expected a state dict, got {type(state).__name__}")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and hasattr(state[k], "shape")
              and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)):
            if keys:
                more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
                parts.append(f"{len(keys)} {label}: " + ", ".join(keys[:limit]) + more)
        raise ValueError(f"{source} does not match the model config:\n  " + "\n  ".join(parts))
