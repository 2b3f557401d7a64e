"""``labcore train-vqgan``: train the stage-1 VQGAN tokenizer (labcore.training.stage1).

    labcore train-vqgan                                     # preset emoji64: the laptop-sized tokenizer
    labcore train-vqgan --config VQGAN.yml --device cuda    # a course-style yml (model_param; train: optional)
    labcore train-vqgan --run-dir runs/vq --resume          # continue exactly (the run's own vqgan.yml)

The flags shared with ``train`` (``--run-dir``, ``--data-root``, ``--resume``, ``--overwrite``,
``--stop-after``, ``--precision``, ...) mean the same in both (labcore.training.config).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from labcore.paths import RUNS_DIR
from labcore.runtime import set_threads
from labcore.training import resolve_vqgan_config, train_vqgan
from labcore.training.config import VQGAN_PRESETS, VQGANTrainConfig, add_config_flags, add_run_arguments, flag_overrides
from labcore.training.runs import NonFiniteLoss

ERRORS = (NonFiniteLoss,)  # a diverged loss: labcore.cli.main's one error line, like a bad file

DEFAULT_RUN_DIR = RUNS_DIR / "vqgan_emoji64"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, VQGAN_PRESETS, "emoji64",
                      config_help="course-style VQGAN yml (model_param), optionally with preset and train "
                      "sections (default: the preset's small emoji64 config)",
                      run_dir_help="run folder: last.pt / best.pt (plain state dicts: latest, val-selected), "
                      "train_state.pt (resume), vqgan.yml, log.csv, samples/ "
                      f"(default: runs/{DEFAULT_RUN_DIR.name})",
                      data_root_help="dataset root (emoji64 or the course's lab5_dataset)")
    add_config_flags(parser, VQGANTrainConfig)


def train_from_args(args: argparse.Namespace) -> dict:
    """Resolve preset <- --config <- flags (on --resume without --config: the run's vqgan.yml) and train."""
    set_threads(args.threads)
    run_dir = Path(args.run_dir or DEFAULT_RUN_DIR)
    config_file = args.config
    if args.resume and config_file is None and (run_dir / "vqgan.yml").is_file():
        config_file = run_dir / "vqgan.yml"
    model_cfg, cfg, preset = resolve_vqgan_config(args.preset, config_file, flag_overrides(args, VQGANTrainConfig))
    return train_vqgan(run_dir, model_cfg, cfg, args.data_root, preset=preset, resume=args.resume,
                       overwrite=args.overwrite, stop_after=args.stop_after, device=args.device,
                       progress=not args.no_progress)


def run(args: argparse.Namespace) -> int:
    summary = train_from_args(args)  # a NaN loss (NonFiniteLoss) becomes labcore.cli.main's one error line
    print(f"train-vqgan: {summary['step']} steps in {summary['seconds'] / 60:.1f} min, best val PSNR "
          f"{summary['best_val_psnr']:.2f} dB -> {summary['out']}/best.pt (config {summary['out']}/vqgan.yml)")
    return 0
