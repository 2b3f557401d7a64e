"""Training both stages with one config system.

- ``config``: the settings of a stage as a dataclass (``TrainConfig``, ``VQGANTrainConfig``), its
  command-line flags, presets and YAML files: preset <- ``--config`` <- flags, the same for both;
- ``tokens``: stage 2's token cache (every image encoded once by the frozen VQGAN);
- ``stage1`` / ``vqgan_losses``: the VQGAN loop and its extra losses and codebook care;
- ``stage2``: the transformer's masked-token-modelling loop (exact resume, DDP, EMA);
- ``evaluate``: held-out figures of both stages; ``publish``: ship a finished stage-2 run;
- ``runs``: the run folder of both stages (start, save, resume, stop; its ``log.csv``, ``NonFiniteLoss``);
- ``steps``: what step k uses besides its batch, from k alone: its seeds (exact resume), its LR;
- ``ddp``, ``precision``: multi-process setup; when to use bf16, and its autocast block.

The names notebooks and other modules use are re-exported here.
"""

from labcore.training.config import (PRESETS, VQGAN_PRESETS, TrainConfig, VQGANTrainConfig, read_config_file,
                                     resolve_config, resolve_vqgan_config, tokenizer_codebook_size)
from labcore.training.evaluate import VAL_RATIOS, evaluate, evaluate_images, evaluate_test_set
from labcore.training.precision import cpu_has_fast_bf16, use_bf16
from labcore.training.publish import publish_run
from labcore.training.stage1 import train_vqgan, write_vqgan_config
from labcore.training.stage2 import RunResult, train
from labcore.training.tokens import encode_split, ensure_tokens, load_tokens, make_tokens

__all__ = ["PRESETS", "VQGAN_PRESETS", "TrainConfig", "VQGANTrainConfig", "read_config_file", "resolve_config",
           "resolve_vqgan_config", "tokenizer_codebook_size", "VAL_RATIOS", "evaluate", "evaluate_images",
           "evaluate_test_set", "cpu_has_fast_bf16", "use_bf16", "publish_run", "train_vqgan", "write_vqgan_config",
           "RunResult", "train", "encode_split", "ensure_tokens", "load_tokens", "make_tokens"]
