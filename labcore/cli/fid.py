"""``labcore fid``: FID between a folder of predictions and a reference (folder, the course's
``test_gt.csv`` or an ``.npz``), or ``--write-reference`` to store a reference's activations
beside it. The work is ``labcore.fid``'s; this module checks the arguments and prints."""

from __future__ import annotations

import argparse
import json
import time

from labcore import fid


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
    parser.add_argument("--cache-dir", default=str(fid.DEFAULT_CACHE_DIR), help="where reference activations are cached")


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
    path = fid.write_reference(args.write_reference, args.output, args.batch_size, args.device)
    features, key = fid.read_activation_file(path)
    print(f"wrote {path}: {len(features)} x {features.shape[1]} activations of {args.write_reference} "
          f"(content sha256 {key[:16]}..., {time.perf_counter() - start:.0f} s)")
    return 0


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    if args.write_reference:
        return run_write_reference(args)
    start = time.perf_counter()
    predictions = fid.read_images(args.pred)                                  # (N, 3, H, W) uint8
    fid.check_same_count(len(predictions), fid.count_images(args.ref), args.pred, args.ref)
    ref = fid.load_or_compute_stats(args.ref, args.cache_dir, args.batch_size, args.device)
    pred = fid.compute_stats(predictions, args.batch_size, args.device)
    score = fid.frechet_distance(pred, ref)
    seconds = time.perf_counter() - start
    if args.json:
        print(json.dumps({"fid": score, "pred": args.pred, "ref": args.ref, "n_pred": pred.count,
                          "n_ref": ref.count, "weights": fid.weights_source, "seconds": round(seconds, 2)}))
    else:
        print(f"FID {score:.4f}  ({pred.count} predictions vs {ref.count or '?'} references, {seconds:.1f} s)")
    return 0
