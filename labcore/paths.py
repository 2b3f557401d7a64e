"""Where the bundled data, weights and outputs live (relative to the repository root).

labcore is installed editable (``make setup``), so the repository's ``data/`` folder is
always next to the package.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
EMOJI64_DIR = DATA_DIR / "emoji64"          # the bundled dataset (course layout)
CHECKPOINT_DIR = DATA_DIR / "checkpoints"   # the bundled tokenizer and transformer
RESULTS_DIR = REPO_ROOT / "results"         # what `make demo` and the CLI write by default
