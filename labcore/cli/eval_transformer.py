"""``labcore eval-transformer``: the validation loss and masked-token accuracy at mask ratios
0.25 / 0.5 / 0.75 (fixed masks: the numbers ``labcore train`` logs in val.csv)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from labcore.model_files import load_bundled_vqgan, load_transformer
from labcore.paths import BUNDLED_TRANSFORMER_CONFIG, BUNDLED_TRANSFORMER_WEIGHTS
from labcore.runtime import atomic_write_text, pick_device
from labcore.training.evaluate import VAL_RATIOS, evaluate
from labcore.training.tokens import encode_split, load_tokens


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", default=None, help="transformer weights (default: the bundled transformer)")
    parser.add_argument("--config", default=None, help="its yml (default: the bundled transformer's)")
    parser.add_argument("--tokens", default=None, help="tokens file with a 'val' split (default: emoji64 val "
                        "encoded by the bundled tokenizer)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda")
    parser.add_argument("--out", default=None, help="also write the metrics to this JSON file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs of background runs)")


def val_tokens(tokens: str | None, device, progress: bool = True):
    """The val split of --tokens, or emoji64 val encoded by the bundled tokenizer (small: no cache needed)."""
    if tokens:
        val = load_tokens(tokens).get("val")
        if val is None:
            raise ValueError(f"tokens file {tokens}: no 'val' split to evaluate on")
        return val
    return encode_split(load_bundled_vqgan(device), "val", progress=progress)[0]


def run(args: argparse.Namespace) -> int:
    weights = Path(args.weights or BUNDLED_TRANSFORMER_WEIGHTS)
    config = Path(args.config or BUNDLED_TRANSFORMER_CONFIG)
    device = pick_device(args.device)
    val = val_tokens(args.tokens, device, progress=not args.no_progress)
    model = load_transformer(weights, config, device=device)
    metrics = evaluate(model, val, mask_token_id=model.config.num_codebook_vectors,
                       bf16=device.type == "cuda", progress=not args.no_progress)
    for r in VAL_RATIOS:
        print(f"mask ratio {r:.2f}: val loss {metrics[f'loss@{r}']:.4f}  masked-token accuracy "
              f"{100 * metrics[f'accuracy@{r}']:.1f} %")
    print(f"{weights} on {len(val)} val images: mean loss {metrics['loss']:.4f}, "
          f"mean accuracy {100 * metrics['accuracy']:.1f} %")
    if args.out:
        atomic_write_text(json.dumps({"weights": str(weights), **metrics}, indent=2), args.out)
    return 0
