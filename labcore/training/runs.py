"""A run folder, the same for both training stages: what is in it, how it starts, saves, resumes
and stops.

- ``last.pt`` / ``best.pt``: the model's weights only, a plain state dict of CPU tensors (the
  course's checkpoint format; ``torch.load(..., weights_only=True)`` opens it anywhere): the
  latest weights (the EMA ones when an EMA of the weights is on) and those of the best validation;
- ``train_state.pt``: everything to continue exactly: the weights being trained, optimizer, LR
  schedule, step, EMA, best validation, the model and train configs. It is complete by itself,
  so a crash between two writes never pairs a state with weights of another step. There is no
  RNG state in it: every random draw of a step comes from ``labcore.training.steps.seed_step``;
- the run's config (``config.yml`` / ``vqgan.yml``: also a ``--config`` to resume with), ``log.csv``
  (``CSVLog``: on resume, cut back to the checkpoint's step) and the stage's own outputs.

``prepare_run_dir`` refuses to clobber a run, starts it again on request; ``StopRequested``
turns SIGTERM / SIGINT into "finish the step, save, exit" (background-friendly); a NaN / inf
loss stops it with ``NonFiniteLoss`` before anything of that step is saved.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Iterable

from labcore.csv_tables import append_csv, csv_text, read_csv
from labcore.runtime import atomic_save, atomic_write_text, load_file

STATE_FILE = "train_state.pt"


def prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool, outputs: tuple[str, ...] = ()) -> None:
    """Check ``run_dir`` against ``resume`` / ``overwrite``: an existing run (its train_state.pt)
    needs one of them, ``resume`` needs the run; ``overwrite`` (without ``resume``) deletes
    ``outputs`` (files or folders). Call it on the main process only."""
    state = run_dir / STATE_FILE
    if state.exists() and not (resume or overwrite):
        raise FileExistsError(f"{run_dir} already holds a run: pass --resume to continue it "
                              "or --overwrite to start again")
    if resume and not state.exists():
        raise FileNotFoundError(f"resume: no training state at {state}")
    if overwrite and not resume:
        for name in outputs:
            path = run_dir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def save_run(run_dir: Path, weights: dict, state: dict) -> None:
    """``train_state.pt`` (``state``: everything to resume), then ``last.pt`` (``weights`` only)."""
    atomic_save(state, run_dir / STATE_FILE)
    atomic_save(weights, run_dir / "last.pt")


def load_run_state(run_dir: Path, model_config: dict, total_steps: int, config_name: str) -> dict:
    """The run's train_state.pt, refused when its model or its planned number of steps differs
    from this invocation's (``config_name``: the run's own config file, which gives both)."""
    path = run_dir / STATE_FILE
    state = load_file(path, "training state")
    if state.get("model_config") != model_config:
        raise ValueError(f"{path}: the run's model config {state.get('model_config')} differs from {model_config}; "
                         f"resume with the run's own {config_name}")
    if int(state.get("total_steps", total_steps)) != total_steps:
        raise ValueError(f"{path}: the run was planned for {state['total_steps']} steps, these settings give "
                         f"{total_steps}; resume with the run's own {config_name}")
    return state


class NonFiniteLoss(RuntimeError):
    """Raised by training loops when the loss turns NaN/inf; the last good checkpoint is kept."""


def non_finite(what: str, value: float, step: int, run_dir: Path) -> NonFiniteLoss:
    """The error of a NaN / inf ``what`` at (1-based) ``step``: nothing of that step was saved."""
    return NonFiniteLoss(f"{what} is {value} at step {step}; stopped without saving. The last good state is "
                         f"{run_dir / STATE_FILE} (try a lower lr, or precision fp32)")


class CSVLog:
    """Append rows to a CSV file (header written once; ``labcore.csv_tables`` reads and writes
    it); on resume, rows past ``resume_step`` are dropped so the log matches the checkpoint."""

    def __init__(self, path: str | os.PathLike, fields: Iterable[str], resume_step: int | None = None):
        self.path = Path(path)
        self.fields = list(fields)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows = []
        if resume_step is not None and self.path.exists():
            rows = [r for r in read_csv(self.path)[1] if int(float(r.get("step", 0))) <= resume_step]
        atomic_write_text(csv_text(self.fields, rows), self.path)

    def log(self, **row) -> None:
        append_csv(self.path, self.fields, [{k: row.get(k, "") for k in self.fields}])


class StopRequested:
    """SIGTERM / SIGINT -> ``flag`` turns True: the loop finishes the current step, saves, exits.
    A second signal stops at once (KeyboardInterrupt)."""

    def __init__(self):
        self.flag = False
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.flag:  # second signal: stop now
            raise KeyboardInterrupt
        self.flag = True
        print(f"\nsignal {signum}: saving after this step (send again to stop immediately)", file=sys.stderr)

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        return False
