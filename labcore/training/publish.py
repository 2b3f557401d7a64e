"""Shipping a finished stage-2 run: its best weights, config, log and metrics become the bundled
transformer's files (``STEM.pt`` / ``STEM.yml`` / ``STEM_log.csv`` / ``STEM_metrics.json``)."""

from __future__ import annotations

import json
from pathlib import Path

from labcore.model_files import load_transformer
from labcore.paths import BUNDLED_TRANSFORMER_STEM, REPO_ROOT
from labcore.runtime import atomic_save, atomic_write_text, count_parameters, load_file
from labcore.training.evaluate import VAL_RATIOS
from labcore.training.runs import STATE_FILE


def publish_run(run_dir: str | Path, stem: str | Path = BUNDLED_TRANSFORMER_STEM) -> dict:
    """Copy a finished run's best weights to ``STEM.pt`` (the transformer-only state dict the
    course saves), its config to ``STEM.yml``, its training log to ``STEM_log.csv``, and write
    ``STEM_metrics.json`` (best validation loss / masked-token accuracy at the fixed mask ratios,
    parameters, steps). Every file is written to a temporary name and renamed. Returns the metrics."""
    run_dir, stem = Path(run_dir), Path(stem)
    state = load_file(run_dir / STATE_FILE, "training state")
    step, total = int(state["step"]), int(state["total_steps"])
    if step < total:
        raise ValueError(f"{run_dir}: the run stopped at step {step} of {total}; finish it "
                         f"(`labcore train --run-dir {run_dir} --resume`) before publishing")
    weights = run_dir / "best.pt" if (run_dir / "best.pt").is_file() else run_dir / "last.pt"
    model = load_transformer(weights, run_dir / "config.yml")                  # checks weights vs config
    atomic_save(model.state_dict(), stem.with_suffix(".pt"))
    log_rows = (run_dir / "log.csv").read_text().splitlines()
    best = dict(state.get("best") or {})
    metrics = {
        "val": {k: round(v, 4) for k, v in best.items() if k.startswith(("loss", "accuracy"))},
        "val_mask_ratios": list(VAL_RATIOS),
        "best_step": best.get("step"), "steps": step,
        "parameters": count_parameters(model),
        "weights_mb": round(stem.with_suffix(".pt").stat().st_size / 1e6, 2),
        "train_config": state.get("train_config"),
        "last_log_row": dict(zip(log_rows[0].split(","), log_rows[-1].split(","))) if len(log_rows) > 1 else {},
        "source": str(weights.relative_to(REPO_ROOT) if weights.is_relative_to(REPO_ROOT) else weights),
    }
    for suffix, text in ((".yml", (run_dir / "config.yml").read_text()), ("_log.csv", "\n".join(log_rows) + "\n"),
                         ("_metrics.json", json.dumps(metrics, indent=2) + "\n")):
        atomic_write_text(text, stem.with_name(stem.name + suffix))
    return metrics
