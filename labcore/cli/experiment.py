"""``labcore experiment``: the schedule x iterations FID table (the work: ``labcore.experiment``;
the variants it measures: ``labcore.decoding_variants``), with labcore's step or, ``--step``, a
student's step that passed its checker (``labcore.cli.inpaint.checked_step``)."""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from labcore.cli.inpaint import STEP_HELP, checked_step
from labcore.data import InpaintingTestSet, normalization_for
from labcore.decoding import DecodingSettings
from labcore.decoding_variants import CORRECT_STEP, MEASURED_VARIANTS, variant
from labcore.experiment import ITERATIONS, SAMPLE_TEMPERATURES, Experiment, Plan, previous_rows, run_plan, run_variants
from labcore.model_files import load_maskgit
from labcore.paths import EMOJI64_DIR, RESULTS_DIR
from labcore.runtime import fast_mode
from labcore.schedules import COURSE_SCHEDULES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", default=str(EMOJI64_DIR), help="test set (emoji64 or lab5_dataset)")
    parser.add_argument("-o", "--output-dir", default=str(RESULTS_DIR),
                        help="where experiments.csv/.md/.png go; a run there before is resumed (default: results/)")
    parser.add_argument("--schedules", nargs="+",
                        help="mask schedules (default: the course's linear cosine square; with --variants: cosine)")
    parser.add_argument("--iterations", nargs="+", type=int,
                        help="values of T (default: 1 2 4 8 12; with --variants: 8)")
    parser.add_argument("--sample-temperatures", nargs="+", type=float, default=list(SAMPLE_TEMPERATURES),
                        help="token rules: 0 = argmax (the course's), t > 0 = sample softmax(logits / t) "
                             "(default: 0 1)")
    parser.add_argument("--seeds", type=int, default=3,
                        help="seeds for one-shot and each rule's best iterative setting (default 3: seeds 0, 1, 2)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (the one every row uses)")
    parser.add_argument("--choice-temperature", type=float, default=4.5, help="Gumbel noise on the confidences")
    parser.add_argument("--choice-temperatures", nargs="+", type=float, default=[],
                        help="sweep: each rule's best iterative setting again at each of these choice temperatures")
    parser.add_argument("--orders", nargs="+", default=[],
                        help="sweep: each rule's best iterative setting again in each of these decoding orders: "
                             "confidence (MaskGIT's), halton (with --choice-temperatures: every pair)")
    parser.add_argument("--variants", nargs="*", metavar="VARIANT",
                        help="instead of the grid: one setting (one --schedules, one --iterations) decoded "
                             "correctly and with each variant alone, per token rule; no names: every classic "
                             f"mistake and idea ({' '.join(MEASURED_VARIANTS)})")
    parser.add_argument("--limit", type=int, help="use the first N test images (fast mode: at most 16)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs of background runs)")
    for name in ("vqgan-config", "vqgan-weights", "transformer-config", "transformer-weights"):
        parser.add_argument(f"--{name}", help="default: the bundled model")
    parser.add_argument("--step", metavar="FILE.py:FUNCTION", default=None,
                        help=STEP_HELP + "; every row is decoded with it (its name in the step column), not "
                        "with --variants")


def check_arguments(args: argparse.Namespace) -> None:
    """Every setting checked before any model or image is loaded: the counts here, then every
    decoding setting of the grid as a ``DecodingSettings`` (unknown schedules list the choices;
    T <= 256; finite temperatures). Fills in the defaults of --schedules and --iterations."""
    variants = args.variants is not None
    args.schedules = args.schedules or (["cosine"] if variants else list(COURSE_SCHEDULES))
    args.iterations = args.iterations or ([8] if variants else list(ITERATIONS))
    if variants and args.step:
        raise ValueError("--variants measures labcore's classic mistakes against labcore's step: run it "
                         f"without --step {args.step}")
    if variants:
        if len(args.schedules) != 1 or len(args.iterations) != 1:
            raise ValueError("--variants decodes one setting: give one --schedules and one --iterations, got "
                             f"{' '.join(args.schedules)} and {' '.join(map(str, args.iterations))}")
        args.variants = list(dict.fromkeys(args.variants or MEASURED_VARIANTS))
        for name in args.variants:
            variant(name)  # an unknown name lists the choices
    for name, values, low in (("--iterations", args.iterations, 1),
                              ("--sample-temperatures", args.sample_temperatures, 0),
                              ("--seeds", [args.seeds], 1), ("--choice-temperature", [args.choice_temperature], 0),
                              ("--choice-temperatures", args.choice_temperatures, 0),
                              ("--limit", [args.limit or 1], 1), ("--batch-size", [args.batch_size], 1)):
        if any(v < low for v in values):
            raise ValueError(f"{name} must all be >= {low}, got {' '.join(map(str, values))}")
    base = DecodingSettings(choice_temperature=args.choice_temperature, seed=args.seed)
    for schedule, T, t in itertools.product(args.schedules, args.iterations, args.sample_temperatures):
        base.replace(schedule=schedule, total_iter=T, sample_temperature=t)
    sweep = itertools.product(args.choice_temperatures or [base.choice_temperature], args.orders or [base.order])
    for tau, order in sweep:
        base.replace(choice_temperature=tau, order=order)  # an unknown order lists the choices


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    step_name, step = checked_step(args.step) if args.step else (CORRECT_STEP, None)  # judged before any work
    limit, schedules, iterations, seeds = args.limit, args.schedules, args.iterations, args.seeds
    if fast_mode():  # a tiny subset: 16 images, T <= 2, at most 2 schedules and 2 seeds
        limit = min(limit or 16, 16)
        schedules, seeds = schedules[:2], min(seeds, 2)
        iterations = [t for t in iterations if t <= 2] or iterations[:1]
    maskgit = load_maskgit(args.vqgan_config, args.vqgan_weights, args.transformer_config,
                           args.transformer_weights)
    test_set = InpaintingTestSet(args.data_root, normalization_for(maskgit.normalization, args.data_root))
    out = Path(args.output_dir)
    previous_rows(out, min(limit or len(test_set), len(test_set)), args.choice_temperature, step_name)  # before work
    exp = Experiment(maskgit, test_set, limit, args.batch_size, args.device, progress=not args.no_progress,
                     own_steps={step_name: step} if step else None)
    if args.variants is not None:
        base = DecodingSettings(schedule=schedules[0], total_iter=iterations[0],
                                choice_temperature=args.choice_temperature, seed=args.seed)
        runner = run_variants(exp, out, base, list(dict.fromkeys(args.sample_temperatures)), seeds, args.variants)
    else:
        plan = Plan(tuple(schedules), tuple(sorted(set(iterations))), tuple(dict.fromkeys(args.sample_temperatures)),
                    seeds, DecodingSettings(choice_temperature=args.choice_temperature, seed=args.seed),
                    tuple(dict.fromkeys(args.choice_temperatures)), tuple(dict.fromkeys(args.orders)),
                    step=step_name)
        runner = run_plan(exp, out, plan)
    print((out / "experiments.md").read_text())
    print(f"{runner.computed} rows computed, {len(runner.rows) - runner.computed} read from before; "
          f"wrote experiments.csv, experiments.md, experiments.png in {out}")
    return 0
