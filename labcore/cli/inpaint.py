"""``labcore inpaint``: fill the masked regions of a test set by iterative decoding and write the
course's folders (the work: ``labcore.inpaint.inpaint_test_set``), with labcore's decoding step or,
``--step``, a student's step once it passes its checker (``checked_step``: also ``labcore experiment``'s)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

from labcore.cli import non_negative_int, positive_int
from labcore.decoding import DecodingSettings, decode_step
from labcore.paths import EMOJI64_DIR, RESULTS_DIR
from labcore.schedules import SCHEDULES
from labcore.student_code import load_function

STEP_HELP = ("decode with your own step instead of labcore's: FILE.py:FUNCTION, NOTEBOOK.ipynb:FUNCTION or "
             "package.module:FUNCTION, with decode_step's signature; it runs only if it passes "
             "check_decode_step. From notebook 03: copy your exercise cell, put %%%%writefile my_step.py on its "
             "first line and `import torch` and `from labcore.decoding import StepResult, gumbel` below it, run "
             "it, then --step my_step.py:decode_step")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", "--dataset", default=str(EMOJI64_DIR),
                        help="test set: data/emoji64 (default) or the course's lab5_dataset folder")
    parser.add_argument("--output-dir", "-o", default=str(RESULTS_DIR / "inpaint"),
                        help="where test_results/, mask_scheduling/ and imga/ go (default: results/inpaint)")
    parser.add_argument("--schedule", "--mask-func", "--mask_func", dest="schedule", default="cosine",
                        choices=SCHEDULES, metavar="NAME", help=f"mask schedule gamma, one of {', '.join(SCHEDULES)} "
                        "(default: cosine)")
    parser.add_argument("--total-iter", "--total_iter", dest="total_iter", type=int, default=8,
                        help="decoding steps T (default: 8)")
    parser.add_argument("--sweet-spot", "--sweet_spot", dest="sweet_spot", type=int, default=None,
                        help="stop after S <= T steps and fill what is left with the current prediction "
                        "(default: S = T)")
    parser.add_argument("--temperature", "--choice-temperature", "--choice_temperature", dest="temperature",
                        type=float, default=4.5, help="scale of the per-token Gumbel noise on the confidences "
                        "(default: 4.5; 0 = pure confidence order)")
    parser.add_argument("--sample-temperature", type=float, default=0.0,
                        help="0 (default): take the argmax token; > 0: sample softmax(logits / this)")
    parser.add_argument("--remask", type=float, default=0.0, metavar="ETA",
                        help="ReMDM: after step t, mask again floor(ETA * (1 - t/T) * D) of the D tokens decoded "
                        "before, the least confident (0 <= ETA < 1; default 0: MaskGIT)")
    parser.add_argument("--batch-size", "--batch_size", dest="batch_size", type=positive_int, default=32)
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1 ...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--paste-known", action="store_true",
                        help="put the known input pixels back over the decoded image")
    parser.add_argument("--dilation", type=non_negative_int, default=0,
                        help="also mask tokens within this many tokens of a masked one (default: 0)")
    parser.add_argument("--limit", type=positive_int, default=None, help="only the first N test images")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a non-empty --output-dir (without it, such a folder is an error)")
    parser.add_argument("--no-steps", action="store_true",
                        help="write test_results/ only (skip the per-step strips: faster)")
    parser.add_argument("--strips", type=non_negative_int, default=None,
                        help="write the per-step strips for the first N images only (default: every image)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs of background runs)")
    parser.add_argument("--vqgan-config", default=None, help="course-style VQGAN.yml (default: bundled)")
    parser.add_argument("--vqgan-weights", "--vqgan-ckpt-path", dest="vqgan_weights", default=None,
                        help="VQGAN.pt state dict (default: bundled)")
    parser.add_argument("--transformer-config", "--MaskGitConfig", dest="transformer_config", default=None,
                        help="MaskGit.yml / transformer config (default: bundled; required with --transformer-weights)")
    parser.add_argument("--transformer-weights", "--load-transformer-ckpt-path", dest="transformer_weights",
                        default=None, help="stage-2 transformer checkpoint (default: bundled)")
    parser.add_argument("--step", metavar="FILE.py:FUNCTION", default=None, help=STEP_HELP)


def decoding_settings_from_args(args: argparse.Namespace) -> DecodingSettings:
    """The flags' ``DecodingSettings``, validated (a ValueError naming the setting)."""
    return DecodingSettings(schedule=args.schedule, total_iter=args.total_iter, sweet_spot=args.sweet_spot,
                            choice_temperature=args.temperature, sample_temperature=args.sample_temperature,
                            seed=args.seed, paste_known=args.paste_known, dilation=args.dilation, remask=args.remask)


def step_name(spec: str) -> str:
    """The step's name in logs and in the experiment's step column: ``my_step.py:decode_step`` (the
    file's name without its folder), or the spec itself for ``package.module:NAME``."""
    where, _, name = spec.rpartition(":")
    return f"{Path(where).name}:{name}" if where.endswith((".py", ".ipynb")) else spec


def checked_step(spec: str) -> tuple[str, Callable]:
    """(its name, the step) for ``--step spec``: loaded (``labcore.student_code.load_function``) and
    judged by ``check_decode_step`` before anything else runs. A step that cannot be loaded, or
    fails its check, is a one-line ValueError (the check's mistake ids and the first one's fix)."""
    from labcore.checkers import MISTAKES, check_decode_step  # lazy: the grading package, for --step only

    try:
        step = load_function(spec)
    except ValueError as err:
        raise ValueError(f"--step {err}") from None
    result = check_decode_step(step)
    if result.passed:
        return step_name(spec), step
    if result.not_done:
        why = "not done yet (it still raises NotImplementedError)"
    else:  # the first mistake's fix; a generic one ("it raised") says nothing the first failure's case does not
        first = next(f for f in result.findings if not f.ok)
        mistake = MISTAKES[first.mistake or "decode.error"]
        case = first.detail.strip().splitlines()[0] if first.detail.strip() else mistake.fix
        why = f"{', '.join(result.mistakes or [mistake.id])}; {case if mistake.generic else mistake.fix}"
    raise ValueError(f"--step {spec} fails its check: {why} (the full report: check_decode_step in notebook 03)")


def run(args: argparse.Namespace) -> int:
    settings = decoding_settings_from_args(args)  # first: a bad flag fails before any model or image is loaded
    if args.step and settings.remask > 0:         # re-masking reads the confidences only labcore's step returns
        raise ValueError(f"--remask {settings.remask:g} re-masks by the confidences labcore's decode_step returns; "
                         f"--step {args.step} returns the course's (tokens, masked, filled): drop one of the two")
    step_label, step = checked_step(args.step) if args.step else (None, decode_step)  # then a student's step, judged
    # torchvision and the models load only once the flags are valid (and never for --help):
    from labcore.data import InpaintingTestSet, normalization_for  # lazy: see above
    from labcore.inpaint import inpaint_test_set  # lazy: see above
    from labcore.model_files import load_maskgit  # lazy: see above
    from labcore.runtime import pick_device, staged_output_dir  # lazy: see above

    device = pick_device(args.device)
    # all or nothing: written into a temporary folder beside --output-dir, renamed when complete
    with staged_output_dir(args.output_dir, args.overwrite) as staging:
        maskgit = load_maskgit(args.vqgan_config, args.vqgan_weights, args.transformer_config,
                               args.transformer_weights)
        test_set = InpaintingTestSet(args.data_root, normalization_for(maskgit.normalization, args.data_root))
        t0 = time.perf_counter()
        written = inpaint_test_set(maskgit, test_set, staging, settings, args.batch_size, args.limit,
                                   not args.no_steps, device, progress=not args.no_progress, strips=args.strips,
                                   step=step)
    seconds = time.perf_counter() - t0
    n = written["test_results"]
    print(f"inpainted {n} images in {seconds:.1f} s ({n / max(seconds, 1e-9):.1f} images/s) on {device}; "
          f"schedule {settings.schedule}, T={settings.total_iter}, S={settings.steps}, "
          f"temperature {settings.choice_temperature}" + (f"; step: {step_label}" if step_label else ""))
    for name, count in written.items():
        print(f"  {Path(args.output_dir) / name}/  {count} files")
    return 0
