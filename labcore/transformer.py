"""Stage 2: the bidirectional transformer that predicts masked VQGAN tokens.

Module names and layout are the course's (so its checkpoints load as they are):

    tokens (B, 256) in [0, K]   (K = num_codebook_vectors is the mask token)
    x = Dropout(LN(tok_emb(tokens) + pos_emb))              LN: LayerNorm eps 1e-12
    blocks.N:  x = LayerNorm1(x + Dropout(Attention(x)))    post-norm
               x = LayerNorm2(x + MLP(x))                   MLP = Linear, GELU, Linear, Dropout
    h = Token_Prediction(x)                                 Linear, GELU, LayerNorm
    logits = h @ tok_emb.weight.T + bias                    (B, 256, K+1), weights tied to tok_emb
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn as nn

from .attention import MultiHeadAttention
from .course_format import transformer_shapes, transformer_state
from .paths import BUNDLED_TRANSFORMER_CONFIG, BUNDLED_TRANSFORMER_WEIGHTS
from .runtime import check_state_dict, load_file, read_yaml_mapping


@dataclass
class TransformerConfig:
    """Defaults are the course's official stage-2 config (``MaskGit.yml``)."""
    num_image_tokens: int = 256       # 16 x 16 latent grid
    num_codebook_vectors: int = 1024  # K; token id K is the mask token
    dim: int = 768
    n_layers: int = 15
    hidden_dim: int = 1536
    num_heads: int = 16
    dropout: float = 0.1              # embedding, residual and MLP dropout
    attn_drop: float = 0.1            # dropout on attention weights
    fused_attention: bool = True      # F.scaled_dot_product_attention (same weights, faster)

    def __post_init__(self):
        for name in ("num_image_tokens", "num_codebook_vectors", "dim", "n_layers", "hidden_dim", "num_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"transformer config: {name} must be a positive integer, got {value!r}")
        if self.dim % self.num_heads:
            raise ValueError(f"transformer config: dim ({self.dim}) must be divisible by num_heads ({self.num_heads})")
        for name in ("dropout", "attn_drop"):
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                raise ValueError(f"transformer config: {name} must be in [0, 1), got {getattr(self, name)!r}")

    @property
    def mask_token_id(self) -> int:
        return self.num_codebook_vectors

    @classmethod
    def from_dict(cls, cfg: dict, source: str = "transformer config") -> "TransformerConfig":
        """Accepts a flat dict, ``{Transformer_param: ...}`` or the course's
        ``{model_param: {Transformer_param: ...}}`` (extra lab keys such as gamma_type are ignored
        at the outer levels; unknown keys inside the transformer's own block are errors)."""
        if not isinstance(cfg, dict):
            raise ValueError(f"{source}: expected a mapping, got {type(cfg).__name__}")
        cfg = cfg.get("model_param", cfg)
        cfg = cfg.get("Transformer_param", cfg) if isinstance(cfg, dict) else cfg
        if not isinstance(cfg, dict):
            raise ValueError(f"{source}: Transformer_param must be a mapping")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"{source}: unknown transformer key(s) {unknown}; known: {sorted(known)}")
        try:
            return cls(**cfg)
        except (TypeError, ValueError) as err:  # a wrong type or value, e.g. dim: "big"
            raise ValueError(f"{source}: {err}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TransformerConfig":
        """The course's ``MaskGit.yml`` (or labcore's run ``config.yml``); errors name the file."""
        return cls.from_dict(read_yaml_mapping(path, "transformer config"), source=str(path))

    def to_course_dict(self) -> dict:
        """The course's YAML form (``model_param.Transformer_param``) plus labcore's extra keys."""
        return {"model_param": {"Transformer_param": asdict(self),
                                "num_codebook_vectors": self.num_codebook_vectors,
                                "num_image_tokens": self.num_image_tokens}}


class Block(nn.Module):
    """One post-norm encoder block (the course calls it ``Encoder``)."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.Attention = MultiHeadAttention(cfg.dim, cfg.num_heads, cfg.attn_drop, fused=cfg.fused_attention)
        self.LayerNorm1 = nn.LayerNorm(cfg.dim, eps=1e-12)
        self.LayerNorm2 = nn.LayerNorm(cfg.dim, eps=1e-12)
        self.MLP = nn.Sequential(nn.Linear(cfg.dim, cfg.hidden_dim), nn.GELU(),
                                 nn.Linear(cfg.hidden_dim, cfg.dim), nn.Dropout(cfg.dropout))
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        attn = self.Attention(x, return_attention=return_attention)        # (B, N, dim)
        attn, weights = attn if return_attention else (attn, None)
        x = self.LayerNorm1(x + self.dropout(attn))                          # (B, N, dim)
        x = self.LayerNorm2(x + self.MLP(x))                                 # (B, N, dim)
        return x, weights


class BidirectionalTransformer(nn.Module):
    def __init__(self, config: TransformerConfig | None = None):
        super().__init__()
        self.config = cfg = config or TransformerConfig()
        K, N = cfg.num_codebook_vectors, cfg.num_image_tokens
        self.tok_emb = nn.Embedding(K + 1, cfg.dim)                  # +1: the mask token
        self.pos_emb = nn.Parameter(torch.zeros(N, cfg.dim))
        self.blocks = nn.Sequential(*[Block(cfg) for _ in range(cfg.n_layers)])
        self.Token_Prediction = nn.Sequential(nn.Linear(cfg.dim, cfg.dim), nn.GELU(),
                                              nn.LayerNorm(cfg.dim, eps=1e-12))
        self.bias = nn.Parameter(torch.zeros(N, K + 1))
        self.LN = nn.LayerNorm(cfg.dim, eps=1e-12)
        self.drop = nn.Dropout(cfg.dropout)
        self.apply(self._init_weights)
        nn.init.trunc_normal_(self.pos_emb, 0.0, 0.02)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        # the course template's init: truncated normal(0, 0.02), zero biases, unit LayerNorms
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(m.weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    @property
    def mask_token_id(self) -> int:
        return self.config.mask_token_id

    def forward(self, tokens: torch.Tensor, return_attention: bool = False):
        """tokens (B, N) long in [0, K] -> logits (B, N, K+1); with ``return_attention`` also a
        list of per-layer attention weights, each (B, heads, N, N)."""
        B, N = tokens.shape
        if N != self.pos_emb.shape[0]:
            raise ValueError(f"expected {self.pos_emb.shape[0]} tokens per image, got {N}")
        x = self.drop(self.LN(self.tok_emb(tokens) + self.pos_emb))         # (B, N, dim)
        maps = []
        for block in self.blocks:
            x, weights = block(x, return_attention=return_attention)         # (B, N, dim)
            maps.append(weights)
        h = self.Token_Prediction(x)                                         # (B, N, dim)
        logits = h @ self.tok_emb.weight.T + self.bias                       # (B, N, K+1)
        return (logits, maps) if return_attention else logits

    def param_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups: decay matrices; no decay for biases, LayerNorms, embeddings."""
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            is_matrix = p.ndim >= 2 and name not in ("tok_emb.weight", "pos_emb", "bias")
            (decay if is_matrix else no_decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay},
                {"params": no_decay, "weight_decay": 0.0}]


# ----------------------------------------------------------------------------- checkpoints

def config_from_state_dict(state: dict, num_heads: int, source: str = "transformer checkpoint",
                           **overrides) -> TransformerConfig:
    """The config a fused-layout state dict was made with: dim, layers, hidden size, K and N read
    off its shapes (``course_format.transformer_shapes``); ``num_heads`` must be given, as no
    shape records it (the course uses 16)."""
    return TransformerConfig(**{**transformer_shapes(state, source), "num_heads": num_heads, **overrides})


def load_state(path: str | Path) -> dict:
    """Load a transformer-only state dict (course format or query/key/value naming), fused layout."""
    return transformer_state(load_file(path, what="transformer checkpoint"), str(path))


def _resolve_config(config: TransformerConfig | dict | str | Path | None, state: dict, path: str | Path,
                    num_heads: int | None) -> TransformerConfig:
    if isinstance(config, TransformerConfig):
        return config
    if isinstance(config, dict):
        return TransformerConfig.from_dict(config)
    if config is not None:
        return TransformerConfig.from_yaml(config)
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
    state = load_state(path)
    model = BidirectionalTransformer(_resolve_config(config, state, path, num_heads))
    check_state_dict(model, state, f"transformer checkpoint {path}")
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def bundled_transformer_paths() -> tuple[Path, Path]:
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
