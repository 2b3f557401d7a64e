"""What step k of a run uses besides its batch, computed from k alone: its learning rate and its
random draws. That is why a run stopped after step k and resumed replays the uninterrupted run
exactly: the LR schedule's state is in ``train_state.pt`` (``runs``), the seeds need none.
"""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR


def seed_step(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """Seed torch's global RNG (dropout, codebook restarts: CPU and CUDA) from (seed, step, rank)
    and return a CPU generator seeded the same way (masks, flips), at the start of every
    training step of both stages.

    This is labcore's one exact-resume mechanism: every random draw of step k depends only on
    (seed, k, rank), and the data order only on (seed, epoch), so a run stopped after step k and
    resumed draws exactly what the uninterrupted run drew, with no RNG state in the checkpoint.
    Chosen over saving RNG snapshots because it is as exact and also holds under DDP (rank 0
    writes the files and could not save the other ranks' RNG states) and across machines (a
    CUDA RNG state does not load where there is no GPU)."""
    mixed = (seed * 1_000_003 + step * 1009 + rank) % 2**62
    torch.manual_seed(mixed)
    return torch.Generator().manual_seed(mixed)


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                  min_factor: float = 0.1) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up then cosine decay to ``min_factor`` x the base LR (torch's own schedulers)."""
    warmup_steps = max(1, min(warmup_steps, total_steps - 1)) if total_steps > 1 else 1
    base_lr = optimizer.param_groups[0]["lr"]
    warm = LinearLR(optimizer, start_factor=1e-3, end_factor=1.0, total_iters=warmup_steps)
    cos = CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup_steps), eta_min=base_lr * min_factor)
    return SequentialLR(optimizer, [warm, cos], milestones=[warmup_steps])
