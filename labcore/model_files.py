"""Reading the model files of both stages: configs (the course's ``VQGAN.yml`` and ``MaskGit.yml``,
labcore's run ``vqgan.yml`` / ``config.yml``) and weights (``.pt``), into models ready to use:
the VQGAN, the transformer, and both as a ``MaskGit`` (``load_maskgit``, ``load_bundled_maskgit``).

Tooling: the models are ``labcore.vqgan`` and ``labcore.transformer``, and a config dataclass
checks its own values when it is made; what is here is everything about files. Each error names
the file and says why: an unreadable or wrong-layout yml, unknown keys, a stage-2 file given as
stage 1 (or the reverse), weights that do not match the config (``runtime.check_state_dict``).

The YAML layouts read:

- VQGAN: the keys under ``model_param`` (the course's), or at the top level; labcore's own
  ``vqgan.yml`` adds the ``normalization`` its images were trained with;
- transformer: flat, ``{Transformer_param: ...}``, or the course's
  ``{model_param: {Transformer_param: ...}}`` (a run's ``config.yml``, which adds ``train``...).

Turning the course's state dicts into labcore's (``query``/``key``/``value`` names, wrapped
dicts) stays in ``labcore.course_format``: that is conversion of tensors and key names with no file
in sight, tested on in-memory dicts; this module is the files around it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, fields
from pathlib import Path

import torch

from labcore.course_format import transformer_shapes, transformer_state, vqgan_state
from labcore.data import Normalization
from labcore.maskgit import MaskGit
from labcore.paths import (BUNDLED_TRANSFORMER_CONFIG, BUNDLED_TRANSFORMER_WEIGHTS, BUNDLED_VQGAN_CONFIG,
                           BUNDLED_VQGAN_WEIGHTS)
from labcore.runtime import check_state_dict, count_parameters, load_file, read_yaml_mapping
from labcore.transformer import BidirectionalTransformer, TransformerConfig
from labcore.vqgan import VQGAN, VQGANConfig


def _config_from(cls, params: dict, source: str, what: str, listed: str):
    """``cls(**params)``, a config dataclass that checks its own values; an unknown key, or a value
    the dataclass refuses (a wrong type or shape, e.g. enc_channels: 32), is a ValueError naming
    ``source`` (``what`` / ``listed``: the words of the unknown-key message)."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"{source}: unknown {what} {unknown}; {listed} {sorted(known)}")
    try:
        return cls(**params)
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None


# ----------------------------------------------------------------------------- stage 1: the VQGAN

def vqgan_config(params: dict, source: str = "VQGAN config") -> VQGANConfig:
    """A VQGANConfig from the keys of a yml's ``model_param``; errors name ``source``."""
    return _config_from(VQGANConfig, params, source, "VQGAN model_param keys", "expected")


def read_vqgan_config(path: str | Path) -> VQGANConfig:
    """A course-style ``VQGAN.yml`` (keys under ``model_param``, or at the top level)."""
    params = read_yaml_mapping(path, "VQGAN config")
    params = params.get("model_param", params)
    if not isinstance(params, dict):
        raise ValueError(f"{path}: model_param must be a mapping of VQGAN keys, got {type(params).__name__}")
    if "Transformer_param" in params or ("dim" in params and "n_layers" in params):
        raise ValueError(f"{path} is a stage-2 transformer config (MaskGit.yml), not a VQGAN config")
    return vqgan_config(params, str(path))


def load_config_normalization(config_path: str | Path = BUNDLED_VQGAN_CONFIG) -> Normalization | None:
    """The Normalization the tokenizer was trained with, as its yml records it (labcore's
    ``train-vqgan`` writes it); None for a yml without one (the course's VQGAN.yml)."""
    norm = read_yaml_mapping(config_path, "VQGAN config").get("normalization")
    if norm is None:
        return None
    try:
        return Normalization(tuple(float(v) for v in norm["mean"]), tuple(float(v) for v in norm["std"]))
    except (TypeError, KeyError, ValueError) as err:
        raise ValueError(f"{config_path}: normalization must hold mean and std lists of 3 numbers ({err})") from None


def load_vqgan(config_path: str | Path, weights_path: str | Path | None = None,
               device: str | torch.device = "cpu") -> VQGAN:
    """Build a VQGAN from a course-style yml and load its weights strictly (weights-only),
    in eval mode. A mismatch raises a ValueError naming the file and the first bad keys."""
    model = VQGAN(read_vqgan_config(config_path))
    model.normalization = load_config_normalization(config_path)  # what its inputs must be normalised with
    if weights_path is not None:
        state = vqgan_state(load_file(weights_path, what="VQGAN checkpoint"), str(weights_path))
        check_state_dict(model, state, f"VQGAN checkpoint {weights_path} (config {config_path})")
        model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def load_bundled_vqgan(device: str | torch.device = "cpu") -> VQGAN:
    """The tokenizer shipped in ``data/checkpoints`` (trained on emoji64 train)."""
    return load_vqgan(BUNDLED_VQGAN_CONFIG, BUNDLED_VQGAN_WEIGHTS, device)


# ----------------------------------------------------------------------------- stage 2: the transformer

def transformer_config(cfg: dict, source: str = "transformer config") -> TransformerConfig:
    """A TransformerConfig from a flat dict, ``{Transformer_param: ...}`` or the course's
    ``{model_param: {Transformer_param: ...}}`` (extra lab keys such as gamma_type are ignored
    at the outer levels; unknown keys inside the transformer's own block are errors)."""
    if not isinstance(cfg, dict):
        raise ValueError(f"{source}: expected a mapping, got {type(cfg).__name__}")
    cfg = cfg.get("model_param", cfg)
    cfg = cfg.get("Transformer_param", cfg) if isinstance(cfg, dict) else cfg
    if not isinstance(cfg, dict):
        raise ValueError(f"{source}: Transformer_param must be a mapping")
    return _config_from(TransformerConfig, cfg, source, "transformer key(s)", "known:")


def read_transformer_config(path: str | Path) -> TransformerConfig:
    """The course's ``MaskGit.yml`` (or labcore's run ``config.yml``); errors name the file."""
    return transformer_config(read_yaml_mapping(path, "transformer config"), source=str(path))


def transformer_yaml(cfg: TransformerConfig) -> dict:
    """``cfg`` in the course's YAML form (``model_param.Transformer_param``) plus labcore's extra keys."""
    return {"model_param": {"Transformer_param": asdict(cfg),
                            "num_codebook_vectors": cfg.num_codebook_vectors,
                            "num_image_tokens": cfg.num_image_tokens}}


def config_from_state_dict(state: dict, num_heads: int, source: str = "transformer checkpoint",
                           **overrides) -> TransformerConfig:
    """The config a fused-layout state dict was made with: dim, layers, hidden size, K and N read
    off its shapes (``course_format.transformer_shapes``); ``num_heads`` must be given, as no
    shape records it (the course uses 16)."""
    return TransformerConfig(**{**transformer_shapes(state, source), "num_heads": num_heads, **overrides})


def load_transformer_state(path: str | Path) -> dict:
    """Load a transformer-only state dict (course format or query/key/value naming), fused layout."""
    return transformer_state(load_file(path, what="transformer checkpoint"), str(path))


def _config_for(config: TransformerConfig | dict | str | Path | None, state: dict, path: str | Path,
                num_heads: int | None) -> TransformerConfig:
    """``load_transformer``'s config: as given (a dict or a yml path is read), else off the weights."""
    if isinstance(config, TransformerConfig):
        return config
    if isinstance(config, dict):
        return transformer_config(config)
    if config is not None:
        return read_transformer_config(config)
    if num_heads is None:
        raise ValueError(f"{path}: no transformer config given, and the number of attention heads cannot be "
                         "read off the weights: pass the config yml it was trained with (MaskGit.yml, "
                         "runs/<name>/config.yml; --transformer-config on the command line)")
    return config_from_state_dict(state, num_heads, source=str(path))


def load_transformer(path: str | Path, config: TransformerConfig | dict | str | Path | None = None,
                     device: str | torch.device = "cpu", *, num_heads: int | None = None) -> BidirectionalTransformer:
    """Build the transformer from ``config`` (a TransformerConfig, a dict, or a YAML path), load
    ``path`` strictly, eval mode. Without a config the shapes are read off the checkpoint and
    ``num_heads`` must be given (heads leave no trace in the shapes)."""
    state = load_transformer_state(path)
    model = BidirectionalTransformer(_config_for(config, state, path, num_heads))
    check_state_dict(model, state, f"transformer checkpoint {path}")
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def bundled_transformer_paths() -> tuple[Path, Path]:
    """(weights, config) of the transformer shipped in ``data/checkpoints``."""
    return BUNDLED_TRANSFORMER_WEIGHTS, BUNDLED_TRANSFORMER_CONFIG


def load_bundled_transformer(device: str | torch.device = "cpu") -> BidirectionalTransformer:
    """The transformer shipped in ``data/checkpoints`` (trained on emoji64 tokens of the bundled
    VQGAN), in eval mode."""
    weights, config = bundled_transformer_paths()
    for path in (weights, config):
        if not path.is_file():
            raise FileNotFoundError(f"bundled transformer file missing: {path} (train one with "
                                    "`labcore train`, then copy runs/<name>/best.pt and config.yml there)")
    return load_transformer(weights, config, device=device)


# ----------------------------------------------------------------------------- both stages: MaskGit

def load_maskgit(vqgan_config: str | Path | None = None, vqgan_weights: str | Path | None = None,
                 transformer_config: str | Path | None = None, transformer_weights: str | Path | None = None,
                 device: str | torch.device = "cpu") -> MaskGit:
    """Both stages from course-style files; a part left as None is the bundled one. Transformer
    weights need their config yml (the number of heads is not in the weights)."""
    if (vqgan_config is None) != (vqgan_weights is None):
        raise ValueError("give both vqgan_config and vqgan_weights, or neither (the bundled VQGAN)")
    if transformer_config is not None and transformer_weights is None:
        raise ValueError("transformer_config needs transformer_weights")
    vq = load_vqgan(vqgan_config, vqgan_weights) if vqgan_config is not None else load_bundled_vqgan()
    tr = (load_transformer(transformer_weights, transformer_config) if transformer_weights is not None
          else load_bundled_transformer())
    return MaskGit(vq, tr).to(device)


def load_bundled_maskgit(device: str | torch.device = "cpu") -> MaskGit:
    """The bundled tokenizer and transformer (``data/checkpoints``), ready to inpaint."""
    return load_maskgit(device=device)


if __name__ == "__main__":  # python -m labcore.model_files: size and load time of the bundled models
    for name, load in (("VQGAN", load_bundled_vqgan), ("transformer", load_bundled_transformer)):
        t0 = time.perf_counter()
        model = load()
        print(f"bundled {name}: {count_parameters(model):,} parameters, loaded in {time.perf_counter() - t0:.2f} s")
