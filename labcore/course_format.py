"""The course's checkpoint files, turned into labcore's state dicts in one place.

The course hands out a frozen ``VQGAN.pt`` and students save their own stage-2 transformer
``.pt`` (``../shared/lab-format/README.md``). labcore's modules use the course's names, so most
files load as they are; what differs is handled here, and only here:

- a wrapper: labcore's own training checkpoints store ``{"model": state_dict, ...}``;
- the attention naming of a student's transformer: separate ``query``/``key``/``value`` (or
  ``q``/``k``/``v``) projections and ``out``/``out_proj`` instead of the fused ``qkv`` + ``proj``;
- the wrong file: a VQGAN given as the transformer (or the other way round), or a training
  state (optimizer, step...) given as weights: said in words, not as 300 missing keys;
- a transformer without its config: the shapes are read off the tensors (the number of heads
  cannot be, so the caller must give it: ``model_files.config_from_state_dict``).

``labcore.model_files`` (reading the model files) calls these after ``runtime.load_file``; what
is here touches no file, so a test can hand it in-memory state dicts.
"""

from __future__ import annotations

import re
from typing import Any

import torch

STAGE1_PREFIXES = ("encoder.", "decoder.", "codebook.", "quant_conv.")   # keys only a VQGAN has
STAGE2_MARKERS = ("tok_emb.weight", "pos_emb", "blocks.0.")              # keys only a transformer has

_SEPARATE_QKV = re.compile(r"^(.*\.Attention)\.(query|key|value|q|k|v)\.(weight|bias)$")
_OUT_PROJ = re.compile(r"^(.*\.Attention)\.(out|out_proj)\.(weight|bias)$")


def _keys(state: dict) -> list[str]:
    return [k for k in state if isinstance(k, str)]


# ----------------------------------------------------------------------------- stage 1

def vqgan_state(state: Any, source: str) -> dict:
    """A plain VQGAN state dict (the course's format) from what ``torch.load`` returned: a plain
    state dict or a labcore training checkpoint (``{"model": state_dict, ...}``)."""
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ValueError(f"{source}: expected a VQGAN state dict, got {type(state).__name__}")
    keys = _keys(state)
    if any(k.startswith(STAGE2_MARKERS) for k in keys) and not any(k.startswith("encoder.") for k in keys):
        raise ValueError(f"{source} is a stage-2 transformer checkpoint (it has tok_emb/pos_emb/blocks keys), "
                         f"not a stage-1 VQGAN: pass it as the transformer weights, and a VQGAN.pt as stage 1")
    return state


# ----------------------------------------------------------------------------- stage 2

def _wrong_transformer_file(state: Any, source: str) -> str | None:
    """Why ``state`` is not a transformer state dict, in words; None when it may be one."""
    if not isinstance(state, dict):
        return f"{source}: expected a transformer state dict, got {type(state).__name__}"
    if any(k.startswith(STAGE1_PREFIXES) for k in _keys(state)):
        return (f"{source} looks like a stage-1 VQGAN checkpoint (encoder/decoder/codebook keys), "
                "not a stage-2 transformer; pass it as the tokenizer instead")
    if "optimizer" in state or "train_state" in state:
        return (f"{source} is a training-state file (optimizer, step...), not a transformer "
                "checkpoint; pass the transformer-only file (e.g. runs/<name>/last.pt)")
    return None


def transformer_state(state: Any, source: str) -> dict:
    """A transformer state dict in labcore's fused layout from what ``torch.load`` returned: the
    course's format, the query/key/value naming, or a ``{"model": state_dict}`` wrapper."""
    if isinstance(state, dict) and isinstance(state.get("model"), dict) and "optimizer" not in state:
        state = state["model"]
    if problem := _wrong_transformer_file(state, source):
        raise ValueError(problem)
    return convert_state_dict(state)


def convert_state_dict(state: dict) -> dict:
    """Map a student checkpoint whose attention uses separate ``query``/``key``/``value`` (or
    ``q``/``k``/``v``) projections and ``out`` for the output onto the fused ``qkv`` + ``proj``
    layout: the rows of ``qkv`` are [all queries | all keys | all values]. Already-fused state
    dicts come back unchanged (a new dict)."""
    parts: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    converted = {}
    for key, value in state.items():
        if m := _SEPARATE_QKV.match(key):
            prefix, which, kind = m.groups()
            parts.setdefault((prefix, kind), {})[which[0]] = value   # query->q, key->k, value->v
        elif m := _OUT_PROJ.match(key):
            converted[f"{m.group(1)}.proj.{m.group(3)}"] = value
        else:
            converted[key] = value
    for (prefix, kind), qkv in parts.items():
        missing = [n for n in "qkv" if n not in qkv]
        if missing:
            raise ValueError(f"{prefix}: found separate attention projections but not {missing} ({kind})")
        converted[f"{prefix}.qkv.{kind}"] = torch.cat([qkv["q"], qkv["k"], qkv["v"]], dim=0)  # (3*dim, ...)
    return converted


def transformer_shapes(state: dict, source: str = "transformer checkpoint") -> dict[str, int]:
    """The sizes a fused-layout transformer state dict shows in its tensor shapes: tokens N,
    codebook size K, dim, layers, MLP width (``TransformerConfig`` keys). The number of heads
    is not among them: it splits ``dim`` without leaving a trace in any shape."""
    try:
        K1, dim = state["tok_emb.weight"].shape                      # (K+1, dim)
        N = state["pos_emb"].shape[0]                                # (N, dim)
        hidden = state["blocks.0.MLP.0.weight"].shape[0]             # (hidden, dim)
    except KeyError as err:
        raise ValueError(f"{source}: not a stage-2 transformer state dict (no {err.args[0]!r})") from None
    layers = {int(k.split(".")[1]) for k in _keys(state) if re.match(r"blocks\.\d+\.", k)}
    if layers != set(range(len(layers))):
        raise ValueError(f"{source}: transformer blocks are not numbered 0..{len(layers) - 1}: {sorted(layers)}")
    return dict(num_image_tokens=N, num_codebook_vectors=K1 - 1, dim=dim, n_layers=len(layers),
                hidden_dim=hidden)
