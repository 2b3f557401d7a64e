"""``labcore fid``: FID between a folder of predictions and a reference (folder, the course's
``test_gt.csv`` or an ``.npz``), or ``--write-reference`` to store a reference's activations
beside it. The work is ``labcore.fid_files``'s; this module checks the arguments and prints."""

from __future__ import annotations

import argparse
import json
import time

from labcore import fid_files, inception


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = "labcore fid PRED REF [options]  |  labcore fid --write-reference SOURCE [-o FILE]"
    parser.add_argument("pred", nargs="?", help="folder of predicted images (e.g. results/test_results)")
    parser.add_argument("ref", nargs="?", help="ground truth: a folder, the course's test_gt.csv, or an .npz of stats")
    parser.add_argument("--write-reference", metavar="SOURCE",
                        help="compute the activations of SOURCE (a folder or test_gt.csv) and write them beside it "
                             "(SOURCE.inception.npz), where FID looks first; e.g. data/emoji64/emoji/ground_truth")
    parser.add_argument("-o", "--output", help="with --write-reference: write here instead")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--batch-size", type=int, default=50, help="images per Inception batch (>= 1)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1 ...")
    parser.add_argument("--cache-dir", default=str(fid_files.DEFAULT_CACHE_DIR),
                        help="where reference activations are cached")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def check_arguments(args: argparse.Namespace) -> None:
    """Every argument error before any file is read (the CLI prints it as one line, exit 2)."""
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.write_reference and (args.pred or args.ref):
        raise ValueError("give either PRED REF or --write-reference SOURCE, not both")
    if not args.write_reference and not (args.pred and args.ref):
        raise ValueError("needs PRED and REF (or --write-reference SOURCE); see labcore fid --help")
    if args.output and not args.write_reference:
        raise ValueError("-o/--output goes with --write-reference only")


def run_write_reference(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    path = fid_files.write_reference(args.write_reference, args.output, args.batch_size, args.device,
                                     progress=not args.no_progress)
    features, key = fid_files.read_activation_file(path)
    print(f"wrote {path}: {len(features)} x {features.shape[1]} activations of {args.write_reference} "
          f"(content sha256 {key[:16]}..., {time.perf_counter() - start:.0f} s)")
    return 0


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    if args.write_reference:
        return run_write_reference(args)
    start = time.perf_counter()
    result = fid_files.fid_of_folder(args.pred, args.ref, args.batch_size, args.device, args.cache_dir,
                                     progress=not args.no_progress)
    seconds = time.perf_counter() - start
    if args.json:
        print(json.dumps({"fid": result.fid, "pred": args.pred, "ref": args.ref, "n_pred": result.n_pred,
                          "n_ref": result.n_ref, "weights": inception.weights_source, "seconds": round(seconds, 2)}))
    else:
        print(f"FID {result.fid:.4f}  ({result.n_pred} predictions vs {result.n_ref or '?'} references, "
              f"{seconds:.1f} s)")
    return 0
