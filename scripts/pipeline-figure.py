"""Draw the MaskGIT inpainting pipeline (``labcore.viz.pipeline_figure``) of one test image with
the bundled models and data (decoded by ``labcore.inpaint.pipeline_stages``), into
docs/pipeline.png (the picture of the README and notebook 00).

    .venv/bin/python scripts/pipeline-figure.py [--image 250] [--dpi 120] [-o docs/pipeline.png]
"""

import argparse
from pathlib import Path

from labcore import viz
from labcore.data import InpaintingTestSet
from labcore.inpaint import pipeline_stages
from labcore.model_files import load_bundled_maskgit

REPO = Path(__file__).resolve().parents[1]

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--image", type=int, default=250, help="test image index (default 250, a frog)")
parser.add_argument("--dpi", type=int, default=120, help="resolution (default 120: ~860 px wide)")
parser.add_argument("-o", "--output", type=Path, default=REPO / "docs" / "pipeline.png")
args = parser.parse_args()

fig = viz.pipeline_figure(**pipeline_stages(load_bundled_maskgit(), InpaintingTestSet(), image_index=args.image))
args.output.parent.mkdir(parents=True, exist_ok=True)
fig.savefig(args.output, dpi=args.dpi, metadata={"Software": None})  # no version stamp: same bytes each run
print(f"wrote {args.output} ({args.output.stat().st_size / 1024:.0f} KiB)")
