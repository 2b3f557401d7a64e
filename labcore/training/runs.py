"""A run folder: refuse to clobber an existing run, start it again on request, and stop cleanly
on SIGTERM / SIGINT (finish the step, save, exit: background-friendly). Both stages use these."""

from __future__ import annotations

import shutil
import signal
import sys
import threading
from pathlib import Path


def prepare_run_dir(run_dir: Path, marker: str, outputs: tuple[str, ...], resume: bool, overwrite: bool) -> None:
    """Check ``run_dir`` against ``resume`` / ``overwrite``: an existing run (``marker`` file)
    needs one of them; ``overwrite`` (without ``resume``) deletes ``outputs`` (files or folders); ``resume`` needs the
    run. Call it on the main process only."""
    state = run_dir / marker
    if state.exists() and not (resume or overwrite):
        raise FileExistsError(f"{run_dir} already holds a run: pass --resume to continue it "
                              "or --overwrite to start again")
    if resume and not state.exists():
        raise FileNotFoundError(f"--resume: no training state at {state}")
    if overwrite and not resume:
        for name in outputs:
            path = run_dir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


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
