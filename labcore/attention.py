"""Multi-head self-attention (Vaswani et al. 2017, section 3.2): the explicit math the course
asks for, beside the fused kernel.

    head_h = softmax(Q_h K_h^T / sqrt(d_k)) V_h        Q_h, K_h, V_h: (N, d_k), d_k = dim / H
    MultiHead(X) = Concat(head_1, ..., head_H) W_O     X: (N, dim), Q = X W_Q, K = X W_K, V = X W_V

Both paths share the same parameters (the course's layout): ``qkv`` = Linear(dim, 3*dim) whose
output rows are [all queries | all keys | all values] (the layout of
``torch.nn.MultiheadAttention.in_proj_weight``), and ``proj`` = Linear(dim, dim).

``labcore.checkers.check_attention(module)`` compares any attention module (yours!) with
``torch.nn.MultiheadAttention`` holding the same weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class MultiHeadAttention(nn.Module):
    """Self-attention over a sequence: (B, N, dim) -> (B, N, dim).

    ``fused=False`` runs the explicit math (and can return the attention weights);
    ``fused=True`` calls ``F.scaled_dot_product_attention`` on the same q, k, v.
    """

    def __init__(self, dim: int = 768, num_heads: int = 16, attn_drop: float = 0.1, fused: bool = False):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads          # d_k
        self.fused = fused
        self.qkv = nn.Linear(dim, 3 * dim)        # W_q, W_k, W_v stacked: one matmul for all three
        self.attn_drop = nn.Dropout(attn_drop)    # dropout on the attention weights
        self.proj = nn.Linear(dim, dim)           # output projection after concatenating heads

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        B, N, C = x.shape                                                   # x: (B, N, dim)
        qkv = self.qkv(x)                                                   # (B, N, 3*dim)
        qkv = qkv.view(B, N, 3, self.num_heads, self.head_dim)              # (B, N, 3, H, d_k)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)                      # each (B, H, N, d_k)

        if self.fused and not return_attention:
            drop = self.attn_drop.p if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)   # (B, H, N, d_k)
            weights = None
        else:
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)     # (B, H, N, N)
            weights = scores.softmax(dim=-1)                                # (B, H, N, N), rows sum to 1
            out = self.attn_drop(weights) @ v                               # (B, H, N, d_k)

        out = out.transpose(1, 2).reshape(B, N, C)                          # (B, N, dim): heads concatenated
        out = self.proj(out)                                                # (B, N, dim)
        return (out, weights) if return_attention else out

