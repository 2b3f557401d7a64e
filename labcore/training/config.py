"""One config system for both training stages: preset <- ``--config`` YAML <- command-line flags.

A stage's training settings are one dataclass (``TrainConfig`` for the stage-2 transformer,
``VQGANTrainConfig`` for the stage-1 tokenizer), validated in ``__post_init__`` with
``labcore.validate`` (errors name the field). The same dataclass is the source of three things,
so they cannot drift apart:

- its flags: ``add_config_flags`` turns every field into ``--field-name`` (type from the
  annotation, help from ``field(metadata={"help": ...})``, default None so that only the flags
  you give override anything); ``flag_overrides`` turns the parsed flags back into a dict.
  argparse only parses the text: the dataclass validates the values;
- the ``train:`` section of a YAML config file (unknown keys are errors that name them);
- the ``train`` section written into a run's own config file (``resume`` reads it back).

A config file holds ``preset``, the model (``model:``, or the course's ``model_param`` form)
and ``train:``. ``resolve_config`` / ``resolve_vqgan_config`` merge preset, file and overrides
the same way for both stages.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from labcore.model_files import read_vqgan_config, transformer_config, vqgan_config
from labcore.paths import BUNDLED_VQGAN_CONFIG, EMOJI64_DIR
from labcore.runtime import read_yaml_mapping
from labcore.schedules import gamma
from labcore.transformer import TransformerConfig
from labcore.validate import integer, number, one_of
from labcore.vqgan import VQGANConfig

PRECISIONS = ("auto", "fp32", "bf16")


def _help(text: str, **extra) -> dict:
    return {"metadata": {"help": text, **extra}}


def _optional_integer(name: str, value, low: int) -> int | None:
    return None if value is None else integer(name, value, low, allowed=f"an integer >= {low} or None")


# ----------------------------------------------------------------------------- dataclass <-> flags

def _flag_type(hint) -> tuple[type, int | None]:
    """(element type, nargs) of a field annotation: ``int | None`` -> int, ``tuple[float, float]`` -> (float, 2)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        return args[0], len(args)
    return hint, None


FLAGS_TITLE = "training (override the preset and --config; a preset may change the defaults shown)"


def add_config_flags(parser: argparse.ArgumentParser, cls: type, title: str = FLAGS_TITLE) -> None:
    """One ``--field-name`` flag per field of the dataclass ``cls`` (booleans get ``--no-...``
    too); defaults are None so that ``flag_overrides`` returns only what was given. The choices
    of a field show in the help; the dataclass checks them."""
    group = parser.add_argument_group(title)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind, nargs = _flag_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else None
        kwargs = dict(dest=f.name, default=None, help=f"{f.metadata.get('help')} (default: {default})")
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            choices = f.metadata.get("choices")
            metavar = "{" + ",".join(choices) + "}" if choices else (f.name.upper() if nargs else None)
            kwargs.update(type=kind, nargs=nargs, metavar=metavar)
        group.add_argument("--" + f.name.replace("_", "-"), **kwargs)


def flag_overrides(args: argparse.Namespace, cls: type) -> dict:
    """The fields of ``cls`` given on the command line, as a dict of overrides."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name, None) is not None}


def add_run_arguments(parser: argparse.ArgumentParser, presets: dict, default_preset: str, config_help: str,
                      run_dir_help: str, data_root_help: str) -> None:
    """The flags both ``train`` and ``train-vqgan`` share, with the same names and meanings.

    ``--stop-after N`` stops this invocation once the run reaches total step N (state saved;
    ``--resume`` continues)."""
    parser.add_argument("--preset", default=default_preset, metavar="{" + ",".join(presets) + "}",
                        help=f"settings to start from (default: {default_preset})")
    parser.add_argument("--config", default=None, help=config_help)
    parser.add_argument("--run-dir", default=None, help=run_dir_help)
    parser.add_argument("--data-root", default=str(EMOJI64_DIR), help=data_root_help)
    parser.add_argument("--resume", action="store_true", help="continue the run in the run folder exactly")
    parser.add_argument("--overwrite", action="store_true", help="start the run in the run folder again from scratch")
    parser.add_argument("--stop-after", type=int, default=None, metavar="STEP",
                        help="stop this invocation once the run reaches total step STEP (state saved; --resume "
                        "continues)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs still go to log.csv)")


# ----------------------------------------------------------------------------- YAML files

def read_yaml(path: str | Path, what: str, allowed: set[str]) -> dict:
    """A YAML mapping whose top-level keys are all in ``allowed``; errors name the file."""
    raw = read_yaml_mapping(path, what)          # missing, binary, invalid YAML, a list: errors naming it
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {unknown}; expected some of {sorted(allowed)}")
    return raw


def _check_section(raw: dict, path: Path, cls: type, presets: dict) -> tuple[dict, str | None]:
    """The ``train`` section (its keys checked against ``cls``) and the ``preset`` of a config file."""
    train = raw.get("train") or {}
    known = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(train) - known)
    if bad:
        raise ValueError(f"{path}: unknown train key(s) {bad}; known: {sorted(known)}")
    preset = raw.get("preset")
    if preset is not None and preset not in presets:
        raise ValueError(f"{path}: unknown preset {preset!r}; choose one of {list(presets)}")
    return train, preset


def _pick_preset(presets: dict, preset: str) -> dict:
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r}; choose one of {list(presets)}")
    return presets[preset]


# ----------------------------------------------------------------------------- stage 2: the transformer

@dataclass
class TrainConfig:
    """How the stage-2 transformer trains (the model's shape is a TransformerConfig)."""
    epochs: int = field(default=40, **_help("passes over the training tokens"))
    max_steps: int | None = field(default=None, **_help("cap on optimizer steps (the LR schedule spans them)"))
    batch_size: int = field(default=64, **_help("samples per process and micro-batch"))
    grad_accum: int = field(default=1, **_help("micro-batches per optimizer step"))
    lr: float = field(default=1e-3, **_help("peak learning rate (AdamW)"))
    min_lr_factor: float = field(default=0.05, **_help("the cosine decays to lr times this"))
    warmup_steps: int = field(default=300, **_help("linear LR warm-up steps"))
    weight_decay: float = field(default=0.05, **_help("AdamW weight decay (not on biases, norms, embeddings)"))
    betas: tuple[float, float] = field(default=(0.9, 0.95), **_help("AdamW betas"))
    grad_clip: float = field(default=1.0, **_help("gradient-norm clip (0 = off)"))
    label_smoothing: float = field(default=0.1, **_help("label smoothing of the masked-token loss"))
    schedule: str = field(default="cosine", **_help("training mask schedule gamma"))
    all_positions: bool = field(default=False, **_help("loss on every position, not only the masked ones"))
    precision: str = field(default="auto", **_help("auto: bf16 autocast on GPUs and on CPUs with native bf16, "
                                                   "else fp32", choices=PRECISIONS))
    ema: float = field(default=0.0, **_help("EMA decay of the weights (0 = off), e.g. 0.999"))
    flip: bool = field(default=True, **_help("use the flipped training images' tokens half the time"))
    seed: int = field(default=0, **_help("seed of the initialisation, the data order and the masks"))
    val_batch_size: int = field(default=100, **_help("batch size of the validation passes"))
    log_every: int = field(default=10, **_help("optimizer steps per log.csv row"))
    save_every: int = field(default=500, **_help("steps between training-state saves (also every epoch)"))

    def __post_init__(self):
        for name in ("epochs", "batch_size", "grad_accum", "val_batch_size", "log_every", "save_every"):
            setattr(self, name, integer(name, getattr(self, name), 1))
        self.max_steps = _optional_integer("max_steps", self.max_steps, 1)
        self.warmup_steps = integer("warmup_steps", self.warmup_steps, 0)
        self.seed = integer("seed", self.seed)
        self.lr = number("lr", self.lr, 0, low_open=True)
        self.min_lr_factor = number("min_lr_factor", self.min_lr_factor, 0, 1)
        self.weight_decay = number("weight_decay", self.weight_decay, 0)
        self.grad_clip = number("grad_clip", self.grad_clip, 0)
        self.label_smoothing = number("label_smoothing", self.label_smoothing, 0, 1, high_open=True)
        self.ema = number("ema", self.ema, 0, 1, high_open=True)
        if not isinstance(self.betas, (list, tuple)) or len(self.betas) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        self.betas = tuple(number("betas", b, 0, 1, high_open=True) for b in self.betas)
        self.precision = one_of("precision", self.precision, PRECISIONS)
        gamma(self.schedule)  # raises, listing the choices, for an unknown schedule


PRESETS: dict[str, dict] = {
    # Sized for a 2-core AVX2 CPU (fp32: it has no native bf16): 2.5M parameters with K=512, the
    # course's MLP ratio of 2; ~3000 tokens/s on an idle 2-core CPU, so an epoch of emoji64 (5412
    # images, flipped copies mixed in; 169 steps of 32) takes ~8 min and the 7 epochs ~1 hour.
    # A small model on few steps learns faster with a higher peak LR than the course's 2e-4.
    "emoji64": {
        "model": dict(dim=256, n_layers=4, hidden_dim=512, num_heads=8, dropout=0.1, attn_drop=0.1),
        "train": dict(epochs=7, batch_size=32, lr=2e-3, warmup_steps=100, weight_decay=0.05,
                      label_smoothing=0.1, ema=0.0, save_every=50),
    },
    # The course's official stage-2 size (MaskGit.yml): for a GPU.
    "lab": {
        # K (1024 for the course's VQGAN) is not set here: it always comes from the tokenizer.
        "model": dict(dim=768, n_layers=15, hidden_dim=1536, num_heads=16, dropout=0.1, attn_drop=0.1),
        "train": dict(epochs=100, batch_size=64, lr=2e-4, warmup_steps=2000, weight_decay=0.05,
                      label_smoothing=0.1, ema=0.999),
    },
}


def _merge_model(base: dict, override: dict, source: str) -> dict:
    if not override:
        return base
    transformer_config({**TransformerConfig().__dict__, **override}, source)  # validates keys
    return {**base, **override}


def read_config_file(path: str | Path) -> dict:
    """A stage-2 YAML run config: optional ``preset``, the model as ``model:`` or the course's
    ``model_param: {Transformer_param: ...}``, a ``train:`` section and ``tokens``."""
    raw = read_yaml(path, "train config", {"preset", "model", "model_param", "train", "tokens"})
    model = raw.get("model") or {}
    if "model_param" in raw:
        model = {**((raw["model_param"] or {}).get("Transformer_param") or {}), **model}
    train, preset = _check_section(raw, Path(path), TrainConfig, PRESETS)
    return {"preset": preset, "model": model, "train": train, "tokens": raw.get("tokens")}


def resolve_config(preset: str = "emoji64", config_file: str | Path | None = None,
                   model_overrides: dict | None = None, train_overrides: dict | None = None
                   ) -> tuple[dict, TrainConfig, str]:
    """preset <- config file <- explicit overrides. Returns (model dict without K, TrainConfig,
    preset name). K (num_codebook_vectors) is settled later, from the tokens / tokenizer."""
    file_cfg = read_config_file(config_file) if config_file else {"preset": None, "model": {}, "train": {}}
    preset = file_cfg["preset"] or preset
    base = _pick_preset(PRESETS, preset)
    model = _merge_model(dict(base["model"]), file_cfg["model"], str(config_file or f"preset {preset}"))
    model = _merge_model(model, model_overrides or {}, "command line")
    train_dict = {**base["train"], **file_cfg["train"], **(train_overrides or {})}
    return model, TrainConfig(**train_dict), preset


def tokenizer_codebook_size(config_path: str | Path = BUNDLED_VQGAN_CONFIG) -> int | None:
    """K of a course-style VQGAN yml (the bundled tokenizer's by default); None when absent."""
    if not Path(config_path).is_file():
        return None
    raw = read_yaml_mapping(config_path, "VQGAN config")
    value = (raw.get("model_param") or raw).get("num_codebook_vectors")
    return int(value) if value is not None else None


# ----------------------------------------------------------------------------- stage 1: the VQGAN

@dataclass
class VQGANTrainConfig:
    """How the stage-1 VQGAN trains (the model's shape is a VQGANConfig)."""
    steps: int = field(default=700, **_help("optimizer steps of the whole run (the LR schedule spans them)"))
    batch_size: int = field(default=32, **_help("images per step"))
    lr: float = field(default=2e-3, **_help("peak learning rate (AdamW)"))
    weight_decay: float = field(default=1e-4, **_help("AdamW weight decay of the conv weights"))
    warmup_steps: int = field(default=50, **_help("linear LR warm-up steps (then cosine to 0.1x)"))
    grad_clip: float = field(default=1.0, **_help("gradient-norm clip"))
    l1: float = field(default=1.0, **_help("weight of the L1 reconstruction loss"))
    l2: float = field(default=1.0, **_help("weight of the L2 reconstruction loss"))
    disc_start: int = field(default=-1, **_help("step at which the PatchGAN starts (-1: no GAN)"))
    disc_weight: float = field(default=0.1, **_help("weight of the GAN loss (times the adaptive weight)"))
    disc_width: int = field(default=64, **_help("channels of the PatchGAN's first layer"))
    vgg_weights: str | None = field(default=None, **_help("VGG16 state dict (.pth) for a perceptual loss; "
                                                          "off without it (nothing is downloaded)"))
    perceptual_weight: float = field(default=0.1, **_help("weight of the perceptual loss"))
    codebook_update: str = field(default="ema", **_help("ema: codes follow running means of their encoder "
                                                        "outputs; grad: the codebook loss", choices=("ema", "grad")))
    ema_decay: float = field(default=0.99, **_help("decay of the EMA codebook update"))
    restart_every: int = field(default=100, **_help("restart codes unused over this many steps at random "
                                                    "encoder outputs (0: never)"))
    augment: bool = field(default=True, **_help("random horizontal flips"))
    eval_every: int = field(default=200, **_help("val PSNR, best.pt and a sample grid every N steps"))
    save_every: int = field(default=50, **_help("write last.pt and train_state.pt every N steps"))
    limit: int | None = field(default=None, **_help("use only the first N train images (tests, smoke runs)"))
    val_limit: int | None = field(default=None, **_help("use only the first N val images"))
    seed: int = field(default=0, **_help("seed of the initialisation, the data order and the random draws"))
    precision: str = field(default="auto", **_help("auto: bf16 autocast on CUDA only (bf16 convolutions were "
                                                   "~15x slower than fp32 on a CPU), else fp32", choices=PRECISIONS))

    def __post_init__(self):
        for name in ("steps", "batch_size", "disc_width", "eval_every", "save_every"):
            setattr(self, name, integer(name, getattr(self, name), 1))
        for name in ("warmup_steps", "restart_every"):
            setattr(self, name, integer(name, getattr(self, name), 0))
        self.disc_start = integer("disc_start", self.disc_start, -1)
        self.limit = _optional_integer("limit", self.limit, 1)
        self.val_limit = _optional_integer("val_limit", self.val_limit, 1)
        self.seed = integer("seed", self.seed)
        self.lr = number("lr", self.lr, 0, low_open=True)
        self.grad_clip = number("grad_clip", self.grad_clip, 0, low_open=True)
        for name in ("weight_decay", "l1", "l2", "disc_weight", "perceptual_weight"):
            setattr(self, name, number(name, getattr(self, name), 0))
        self.ema_decay = number("ema_decay", self.ema_decay, 0, 1, low_open=True, high_open=True)
        self.codebook_update = one_of("codebook_update", self.codebook_update, ("ema", "grad"))
        self.precision = one_of("precision", self.precision, PRECISIONS)


VQGAN_PRESETS: dict[str, dict] = {
    # The laptop path: 0.9M parameters (32-32-32-64 channels), 16x16 tokens for 64x64 images, about
    # an hour on 2 CPU cores. The bundled tokenizer is the wider data/checkpoints/vqgan_emoji64.yml
    # trained on a GPU (its header has the command).
    "emoji64": {
        "model": dict(image_channels=3, enc_channels=[32, 32, 32, 64], dec_channels=[32, 32, 64], latent_dim=64,
                      img_resolution=64, latent_resolution=16, num_codebook_vectors=512, beta=0.25,
                      enc_res_blocks=1, dec_res_blocks=2),
        "train": {},
    },
}


def read_vqgan_config_file(path: str | Path) -> dict:
    """A stage-1 YAML config: the course's VQGAN.yml (``model_param``, as the bundled tokenizer's),
    optionally with ``preset``, ``model:`` (overrides model_param) and ``train:``; a run's own
    vqgan.yml (which adds ``normalization``) reads back the same way."""
    raw = read_yaml(path, "VQGAN config", {"preset", "model", "model_param", "train", "normalization"})
    model = read_vqgan_config(path).to_dict() if "model_param" in raw else {}
    model.update(raw.get("model") or {})
    train, preset = _check_section(raw, Path(path), VQGANTrainConfig, VQGAN_PRESETS)
    return {"preset": preset, "model": model, "train": train}


def resolve_vqgan_config(preset: str = "emoji64", config_file: str | Path | None = None,
                         train_overrides: dict | None = None) -> tuple[VQGANConfig, VQGANTrainConfig, str]:
    """preset <- config file <- explicit overrides, as ``resolve_config`` for stage 2."""
    file_cfg = read_vqgan_config_file(config_file) if config_file else {"preset": None, "model": {}, "train": {}}
    preset = file_cfg["preset"] or preset
    base = _pick_preset(VQGAN_PRESETS, preset)
    model = {**base["model"], **file_cfg["model"]}
    known = {f.name for f in dataclasses.fields(VQGANConfig)}
    if unknown := sorted(set(model) - known):
        raise ValueError(f"{config_file or f'preset {preset}'}: unknown VQGAN model key(s) {unknown}; "
                         f"expected {sorted(known)}")
    model_cfg = vqgan_config(model, str(config_file or f"preset {preset}"))
    train = VQGANTrainConfig(**{**base["train"], **file_cfg["train"], **(train_overrides or {})})
    return model_cfg, train, preset
