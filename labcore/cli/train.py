"""``labcore train``: train the stage-2 transformer (MVTM) on cached tokens.

    labcore train                                  # preset emoji64 on the bundled tokenizer's tokens
    labcore train --preset lab --config my.yml     # a config file overrides the preset, flags override both
    labcore train --name NAME --resume             # continue exactly where runs/NAME stopped
    labcore train --make-tokens --tokens T.pt      # only encode the images (any VQGAN: --vqgan-config/-weights)
    labcore train --name NAME --publish STEM       # ship a finished run as STEM.pt/.yml/_log.csv/_metrics.json
    torchrun --nproc_per_node 4 -m labcore train --preset lab ...   # multi-GPU (DDP)

The flags shared with ``train-vqgan`` (``--run-dir``, ``--data-root``, ``--resume``,
``--overwrite``, ``--stop-after``, ``--precision``, ...) mean the same in both (labcore.training.config).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from labcore.paths import DEFAULT_TOKENS, REPO_ROOT, RUNS_DIR
from labcore.runtime import note, pick_device, read_yaml_mapping, set_threads
from labcore.training import ensure_tokens, make_tokens, publish_run, resolve_config, train
from labcore.training.config import PRESETS, TrainConfig, add_config_flags, add_run_arguments, flag_overrides
from labcore.training.ddp import ddp_env
from labcore.training.runs import NonFiniteLoss, prepare_run_dir
from labcore.validate import one_of

ERRORS = (NonFiniteLoss,)  # a diverged loss: labcore.cli.main's one error line, like a bad file

MODEL_FLAGS = {"dim": int, "n_layers": int, "hidden_dim": int, "num_heads": int, "dropout": float}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, PRESETS, "emoji64",
                      config_help="YAML file overriding the preset (keys: preset, model or "
                      "model_param.Transformer_param, train)",
                      run_dir_help="output folder (default: runs/NAME)",
                      data_root_help="images for --make-tokens (emoji64 or the course's lab5_dataset)")
    parser.add_argument("--name", default=None, help="run name: files go to runs/NAME (default: the preset name)")
    parser.add_argument("--tokens", default=None, help=f"tokens file (default: {DEFAULT_TOKENS.relative_to(REPO_ROOT)},"
                        " made once from the bundled tokenizer)")
    parser.add_argument("--make-tokens", action="store_true", help="encode the images into --tokens and exit")
    parser.add_argument("--vqgan-config", default=None, help="tokenizer yml for --make-tokens (default: bundled)")
    parser.add_argument("--vqgan-weights", default=None, help="tokenizer weights for --make-tokens (default: bundled)")
    parser.add_argument("--publish", metavar="STEM", default=None,
                        help="do not train: copy the finished run's best weights, config, log and metrics to "
                        "STEM.pt / STEM.yml / STEM_log.csv / STEM_metrics.json (e.g. "
                        "data/checkpoints/transformer_emoji64)")
    model = parser.add_argument_group("model (override the preset and --config)")
    for name, typ in MODEL_FLAGS.items():
        model.add_argument(f"--{name.replace('_', '-')}", type=typ, default=None, help=f"model {name}")
    model.add_argument("--attention", metavar="{fused,explicit}", default=None,
                       help="fused = F.scaled_dot_product_attention (default), explicit = the math")
    add_config_flags(parser, TrainConfig)


def overrides(args: argparse.Namespace, run_dir: Path) -> tuple[str | Path | None, dict, dict]:
    """(config file, model overrides, train overrides); ``--resume`` keeps the run's own config.yml."""
    model_over = {k: getattr(args, k) for k in MODEL_FLAGS if getattr(args, k) is not None}
    if args.attention is not None:
        model_over["fused_attention"] = one_of("attention", args.attention, ("fused", "explicit")) == "fused"
    train_over = flag_overrides(args, TrainConfig)
    if not args.resume:
        return args.config, model_over, train_over
    if args.config or model_over:
        raise ValueError("--resume continues a run with its saved config.yml; drop --config/model options")
    if train_over:
        note(f"--resume keeps the run's saved settings; ignoring {sorted(train_over)}")
    return run_dir / "config.yml", model_over, {}


def tokens_path(args: argparse.Namespace, run_dir: Path) -> Path:
    """--tokens, else (on --resume) the run's own tokens file, else the default one (made on first use)."""
    tokens = Path(args.tokens) if args.tokens else DEFAULT_TOKENS
    if args.resume and args.tokens is None:
        saved = read_yaml_mapping(run_dir / "config.yml", "run config").get("tokens")
        tokens = Path(saved) if saved else tokens
    if ddp_env()[0] != 0:  # rank 0 makes the default file; the others wait for it in train()
        return tokens
    return ensure_tokens(tokens if args.tokens or args.resume else None, progress=not args.no_progress)


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    if args.make_tokens:
        tokens = Path(args.tokens) if args.tokens else DEFAULT_TOKENS
        out = make_tokens(tokens, args.vqgan_config, args.vqgan_weights, args.data_root, device=args.device,
                          progress=not args.no_progress)
        print(f"wrote {tokens}: train {tuple(out['train'].shape)}, val {tuple(out['val'].shape)}, "
              f"K={out['num_codebook_vectors']}")
        return 0
    run_dir = Path(args.run_dir) if args.run_dir else RUNS_DIR / (args.name or args.preset)
    if args.publish:
        metrics = publish_run(run_dir, args.publish)
        print(f"published {run_dir} -> {args.publish}.pt/.yml/_log.csv/_metrics.json: "
              f"val loss {metrics['val'].get('loss')}, masked-token accuracy {metrics['val'].get('accuracy')}")
        return 0
    pick_device(args.device)                    # a bad device, an existing run or --resume without one:
    if ddp_env()[0] == 0:                       # an error before any work (nothing deleted yet)
        prepare_run_dir(run_dir, args.resume, args.overwrite)
    config_file, model_over, train_over = overrides(args, run_dir)
    model_dict, cfg, preset = resolve_config(args.preset, config_file, model_over, train_over)
    tokens = tokens_path(args, run_dir)
    result = train(run_dir, model_dict, cfg, tokens, preset=preset, resume=args.resume, overwrite=args.overwrite,
                   device=args.device, stop_after=args.stop_after,
                   progress=not args.no_progress)  # a NaN loss: labcore.cli.main's one error line
    return 0 if result.step >= result.total_steps or args.stop_after else 3
