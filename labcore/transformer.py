"""Stage 2 of MaskGIT (Chang et al. 2022): the bidirectional transformer that predicts masked
image tokens.

An image is N = 16x16 = 256 VQGAN tokens in [0, K); a masked token is the extra id K (the mask
token), so the model has K+1 token classes. Unlike a language model it attends in both
directions: every token sees every other, and all masked tokens are predicted at once.

    tokens (B, N) in [0, K]                                   K = num_codebook_vectors: the mask token
    x = Dropout(LN(tok_emb(tokens) + pos_emb))                learned token + position embeddings
    N blocks:  x = LayerNorm1(x + Dropout(Attention(x)))      post-norm (as BERT), LayerNorm eps 1e-12
               x = LayerNorm2(x + MLP(x))                     MLP = Linear, GELU, Linear, Dropout
    h = Token_Prediction(x)                                   Linear, GELU, LayerNorm
    logits = h @ tok_emb.weight.T + bias                      (B, N, K+1): tied to the token embedding

Module names and layout are the course's, so its checkpoints load as they are (reading the
files: ``labcore.model_files``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from .attention import MultiHeadAttention
from .validate import integer, number


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
        """A config that cannot build the model is refused where it is made (``labcore.validate``;
        a loader adds the file's name)."""
        for name in ("num_image_tokens", "num_codebook_vectors", "dim", "n_layers", "hidden_dim", "num_heads"):
            setattr(self, name, integer(name, getattr(self, name), low=1, allowed="a positive integer"))
        for name in ("dropout", "attn_drop"):
            setattr(self, name, number(name, getattr(self, name), 0, 1, high_open=True))
        if self.dim % self.num_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by num_heads ({self.num_heads})")

    @property
    def mask_token_id(self) -> int:
        return self.num_codebook_vectors


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
