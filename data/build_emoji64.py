#!/usr/bin/env python3
"""Rebuild ``data/emoji64/`` byte-identically from the two npm tarballs.

    python data/build_emoji64.py                      # runs `npm pack` itself (needs npm)
    python data/build_emoji64.py --google emoji-datasource-google-16.0.0.tgz \
                                 --twitter emoji-datasource-twitter-16.0.0.tgz

Decisions (see data/README.md):
- one *identity* = one base emoji (its ``unified`` code); its skin-tone variants and both
  styles (Noto = google, Twemoji = twitter) belong to the same identity and the same split;
- identities are split per category with a fixed seed (largest-remainder allocation), so test
  has 375 identities x 2 styles = 750 images, val 150 x 2 = 300, train the rest;
- skin-tone variants are kept for train identities only (``--no-skin-tones`` drops them);
- RGBA is composited onto white and saved as 64x64 RGB PNG (Pillow, compress_level 9);
- one mask per test image, drawn from ``numpy.random.default_rng([SEED, index])``: rectangles,
  brush strokes or both, redrawn until 10-50% of the pixels are missing. White (255) = known,
  black (0) = missing, the course's convention. Masked images have their missing pixels set to
  white, as the course's masked images do.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SEED = 20240522
VERSION = "16.0.0"
STYLES = {"google": "emoji-datasource-google", "twitter": "emoji-datasource-twitter"}
N_TEST_IDS, N_VAL_IDS = 375, 150
COVERAGE = (0.10, 0.50)  # share of missing pixels in every test mask
SIZE = 64
DEFAULT_OUT = Path(__file__).resolve().parent / "emoji64"
SUBDIR = "emoji"  # plays the role of the course's `cat_face`


def npm_pack(workdir: Path) -> dict[str, Path]:
    paths = {}
    for style, package in STYLES.items():
        out = subprocess.run(["npm", "pack", f"{package}@{VERSION}", "--silent"], cwd=workdir,
                             check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        paths[style] = workdir / out
    return paths


class Tarball:
    """``package/emoji.json`` and ``package/img/<style>/64/*.png`` of an npm tarball, read once
    in one sequential pass (random access into a .tgz is slow)."""

    def __init__(self, path: Path, style: str):
        self.path, self.style = Path(path), style
        wanted = re.compile(rf"package/(emoji\.json|img/{style}/64/[^/]+\.png)$")
        self.files = {}
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                match = wanted.match(member.name)
                if match and member.isfile():
                    self.files[match.group(1)] = tar.extractfile(member).read()

    def read(self, name: str) -> bytes:
        if name not in self.files:
            raise FileNotFoundError(f"{self.path}: no package/{name}")
        return self.files[name]

    def emoji(self) -> list[dict]:
        return json.loads(self.read("emoji.json"))

    def image(self, file: str) -> Image.Image:
        rgba = Image.open(io.BytesIO(self.read(f"img/{self.style}/64/{file}"))).convert("RGBA")
        if rgba.size != (SIZE, SIZE):
            raise ValueError(f"{self.path}: {file} is {rgba.size}, expected 64x64")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")


def allocate(counts: dict[str, int], total: int) -> dict[str, int]:
    """Largest-remainder allocation of ``total`` over categories in proportion to ``counts``."""
    n = sum(counts.values())
    exact = {c: total * k / n for c, k in counts.items()}
    alloc = {c: math.floor(v) for c, v in exact.items()}
    for c in sorted(exact, key=lambda c: (-(exact[c] - alloc[c]), c))[: total - sum(alloc.values())]:
        alloc[c] += 1
    return alloc


def split_identities(emoji: list[dict], seed: int = SEED) -> dict[str, str]:
    """unified code -> 'train' | 'val' | 'test', stratified by category."""
    by_cat = defaultdict(list)
    for e in emoji:
        by_cat[e["category"]].append(e["unified"])
    counts = {c: len(v) for c, v in by_cat.items()}
    n_test, n_val = allocate(counts, N_TEST_IDS), allocate(counts, N_VAL_IDS)
    rng = np.random.default_rng(seed)
    split = {}
    for cat in sorted(by_cat):
        ids = sorted(by_cat[cat])
        order = rng.permutation(len(ids))
        for rank, i in enumerate(order):
            split[ids[i]] = "test" if rank < n_test[cat] else "val" if rank < n_test[cat] + n_val[cat] else "train"
    return split


def brush_stroke(draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    """A free-form stroke: a random walk of thick line segments with round joints."""
    x, y = rng.uniform(0, SIZE, size=2)
    width = int(rng.integers(4, 11))
    angle = rng.uniform(0, 2 * math.pi)
    for _ in range(int(rng.integers(3, 8))):
        angle += rng.uniform(-1.2, 1.2)
        length = rng.uniform(6, 20)
        nx = float(np.clip(x + length * math.cos(angle), 0, SIZE - 1))
        ny = float(np.clip(y + length * math.sin(angle), 0, SIZE - 1))
        draw.line([(x, y), (nx, ny)], fill=0, width=width)
        r = width / 2
        draw.ellipse([nx - r, ny - r, nx + r, ny + r], fill=0)
        x, y = nx, ny


def make_mask(index: int, seed: int = SEED) -> tuple[Image.Image, str, float]:
    """Deterministic test mask number ``index``: (L-mode image, kind, missing share)."""
    rng = np.random.default_rng([seed, index])
    kind = ["rectangle", "brush", "mixed"][int(rng.integers(3))]
    while True:
        mask = Image.new("L", (SIZE, SIZE), 255)
        draw = ImageDraw.Draw(mask)
        if kind in ("rectangle", "mixed"):
            for _ in range(int(rng.integers(1, 3))):
                w, h = rng.integers(12, 40, size=2)
                x0, y0 = rng.integers(0, SIZE - w + 1), rng.integers(0, SIZE - h + 1)
                draw.rectangle([int(x0), int(y0), int(x0 + w - 1), int(y0 + h - 1)], fill=0)
        if kind in ("brush", "mixed"):
            for _ in range(int(rng.integers(1, 4))):
                brush_stroke(draw, rng)
        missing = float((np.asarray(mask) == 0).mean())
        if COVERAGE[0] <= missing <= COVERAGE[1]:
            return mask, kind, missing


def save_png(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", compress_level=9)


def channel_stats(images: list[np.ndarray]) -> dict:
    x = np.stack(images).astype(np.float64) / 255.0  # (N, 64, 64, 3)
    return {"mean": [round(float(v), 4) for v in x.mean(axis=(0, 1, 2))],
            "std": [round(float(v), 4) for v in x.std(axis=(0, 1, 2))], "count": len(images)}


def build(google: Path, twitter: Path, out: Path = DEFAULT_OUT, skin_tones: bool = True,
          only: set[str] | None = None) -> list[dict]:
    """Write the dataset to ``out``; with ``only`` (relative file names) write just those
    images, plus the metadata CSV (always complete). Returns the metadata rows."""
    tars = {"google": Tarball(google, "google"), "twitter": Tarball(twitter, "twitter")}
    emoji = sorted(tars["google"].emoji(), key=lambda e: e["sort_order"])
    split = split_identities(emoji)

    rows = []
    for e in emoji:
        variants = [(e["unified"], e["image"])]
        if skin_tones and split[e["unified"]] == "train":
            variants += [(v["unified"], v["image"]) for _, v in sorted(e.get("skin_variations", {}).items())]
        for style in STYLES:
            for unified, image in variants:
                rows.append({"split": split[e["unified"]], "style": style, "unified": unified,
                             "identity": e["unified"], "name": e["name"] or e["short_name"],
                             "short_name": e["short_name"], "category": e["category"],
                             "subcategory": e["subcategory"], "image": image})
    test_rows = [r for r in rows if r["split"] == "test"]
    for i, r in enumerate(test_rows):
        r["file"] = f"{SUBDIR}/ground_truth/image_{i:03d}.png"
        r["masked_file"] = f"{SUBDIR}/masked_image/image_{i:03d}.png"
        r["mask_file"] = f"mask64/mask_{i:03d}.png"
        r["mask"], r["mask_kind"], missing = make_mask(i)
        r["mask_missing"] = f"{missing:.4f}"
    for r in rows:
        if r["split"] != "test":
            r["file"] = f"{SUBDIR}/{r['split']}/{r['style']}_{r['unified'].lower()}.png"

    pixels = defaultdict(list)
    try:
        from tqdm import tqdm
    except ImportError:  # the script also runs without labcore's environment
        def tqdm(x, **_):
            return x
    todo = rows if only is None else [r for r in rows if only & {r["file"], r.get("masked_file"), r.get("mask_file")}]
    for r in tqdm(todo, desc="emoji64", unit="img", mininterval=2):
        image = tars[r["style"]].image(r["image"])
        pixels[r["split"]].append(np.asarray(image))
        if "mask" in r:
            masked = Image.composite(image, Image.new("RGB", image.size, (255, 255, 255)), r["mask"])
            outputs = {r["mask_file"]: r["mask"], r["masked_file"]: masked}
        else:
            outputs = {}
        outputs[r["file"]] = image
        for rel, img in outputs.items():
            if only is None or rel in only:
                save_png(img, out / rel)

    fields = ["file", "split", "style", "unified", "identity", "name", "short_name", "category",
              "subcategory", "masked_file", "mask_file", "mask_kind", "mask_missing"]
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: r["file"]))
    if only is not None:  # a partial rebuild (tests): the stats need every image
        return rows
    stats = {split: channel_stats(pixels[split]) for split in ("train", "val", "test")}
    stats["note"] = "per-split channel mean/std of RGB in [0,1]; test = the ground truth images"
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--google", type=Path, help=f"emoji-datasource-google-{VERSION}.tgz (default: npm pack)")
    p.add_argument("--twitter", type=Path, help=f"emoji-datasource-twitter-{VERSION}.tgz (default: npm pack)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--no-skin-tones", action="store_true", help="drop the skin-tone variants from train")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tgz = {"google": args.google, "twitter": args.twitter}
        if not all(tgz.values()):
            tgz = npm_pack(Path(tmp))
        for style, path in tgz.items():
            if not Path(path).is_file():
                sys.exit(f"--{style}: no such file: {path}")
        rows = build(tgz["google"], tgz["twitter"], args.out, skin_tones=not args.no_skin_tones)
    counts = {s: sum(r["split"] == s for r in rows) for s in ("train", "val", "test")}
    print(f"wrote {args.out}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
