"""Shared plumbing for every command: device choice, seeds, fast mode, atomic checkpoints,
weights-only loading with clear errors, RNG state for exact resume, CSV logs, LR schedules.
"""

from __future__ import annotations

import csv
import os
import random
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable

import numpy as np
import torch

FAST_ENV = "LABCORE_FAST"


def fast_mode() -> bool:
    """True when ``LABCORE_FAST=1`` (CI sets it): training steps and sample counts shrink,
    nothing else changes."""
    return os.environ.get(FAST_ENV, "0").strip().lower() in {"1", "true", "yes"}


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine")
    return device


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters (trainable or not) of any module."""
    return sum(p.numel() for p in model.parameters())


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CPU and CUDA (CPUs with avx512_bf16 run it ~2x faster than fp32)."""
    if not enabled:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


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


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Call ``write(f)`` on a binary file with a temporary name in ``path``'s folder, fsync, then
    rename it over ``path``: a crash mid-write never leaves a truncated file behind, and readers
    see the old file or the new one, nothing in between."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
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


def load_file(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on CPU, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling / zip errors say little about which file
        raise ValueError(f"could not load {what} {path}: {err}") from err


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


# ----------------------------------------------------------------------------- exact resume

def rng_state() -> dict:
    """Every RNG a training loop touches, as tensors/ints so it loads with weights_only."""
    state = {
        "python": random.getstate(),
        "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
        "numpy_pos": int(np.random.get_state()[2]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                  min_factor: float = 0.1) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up then cosine decay to ``min_factor`` x the base LR (torch's own schedulers)."""
    from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

    warmup_steps = max(1, min(warmup_steps, total_steps - 1)) if total_steps > 1 else 1
    base_lr = optimizer.param_groups[0]["lr"]
    warm = LinearLR(optimizer, start_factor=1e-3, end_factor=1.0, total_iters=warmup_steps)
    cos = CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup_steps), eta_min=base_lr * min_factor)
    return SequentialLR(optimizer, [warm, cos], milestones=[warmup_steps])


class NonFiniteLoss(RuntimeError):
    """Raised by training loops when the loss turns NaN/inf; the last good checkpoint is kept."""


class CSVLog:
    """Append rows to a CSV file (header written once); on resume, rows past ``step`` are dropped
    so the log matches the checkpoint."""

    def __init__(self, path: str | os.PathLike, fields: Iterable[str], resume_step: int | None = None):
        self.path = Path(path)
        self.fields = list(fields)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(float(r.get("step", 0))) <= resume_step]
            self._write(rows, "w")
        elif resume_step is None or not self.path.exists():
            self._write([], "w")

    def _write(self, rows, mode):
        with open(self.path, mode, newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields)
            if mode == "w":
                writer.writeheader()
            writer.writerows(rows)

    def log(self, **row) -> None:
        self._write([{k: row.get(k, "") for k in self.fields}], "a")
