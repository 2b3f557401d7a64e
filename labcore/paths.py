"""Where the bundled data, weights and outputs live: one constant per bundled file.

labcore is installed editable (``make setup``), so the repository's ``data/`` folder is
always next to the package. Every module names a bundled file through these constants.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
EMOJI64_DIR = DATA_DIR / "emoji64"          # the bundled dataset (course layout)
CHECKPOINT_DIR = DATA_DIR / "checkpoints"   # the bundled tokenizer and transformer
RESULTS_DIR = REPO_ROOT / "results"         # what `make demo` and the CLI write by default
RUNS_DIR = REPO_ROOT / "runs"               # training runs (`labcore train`, `labcore train-vqgan`)

BUNDLED_VQGAN_CONFIG = CHECKPOINT_DIR / "vqgan_emoji64.yml"              # stage 1: course-style yml
BUNDLED_VQGAN_WEIGHTS = CHECKPOINT_DIR / "vqgan_emoji64.pt"              # stage 1: plain state dict
BUNDLED_TRANSFORMER_STEM = CHECKPOINT_DIR / "transformer_emoji64"        # stage 2: STEM.pt/.yml/_log.csv/...
BUNDLED_TRANSFORMER_WEIGHTS = BUNDLED_TRANSFORMER_STEM.with_suffix(".pt")
BUNDLED_TRANSFORMER_CONFIG = BUNDLED_TRANSFORMER_STEM.with_suffix(".yml")
DEFAULT_TOKENS = RUNS_DIR / "tokens_emoji64.pt"  # emoji64 encoded by the bundled tokenizer (made on first use)


def repo_relative(path: str | Path) -> str:
    """``path`` relative to the repository when it lies inside it (what files the lab writes
    record: they stay true on another clone), else as given."""
    path = Path(path)
    return str(path.resolve().relative_to(REPO_ROOT)) if path.resolve().is_relative_to(REPO_ROOT) else str(path)
