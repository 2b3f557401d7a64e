"""Multi-process training (DDP) in one place: the torchrun environment, the process group, and a
check that every replica ended with the same weights.

``torchrun --nproc_per_node N -m labcore train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK; a
plain run is rank 0 of 1 and never touches torch.distributed.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


@dataclass
class DDP:
    """Where this process stands: its rank, how many there are, its device and the collectives'."""
    rank: int
    world: int
    device: torch.device      # this process's device (cuda:LOCAL_RANK under DDP on GPUs)
    comm: torch.device        # where collectives run: the GPU with NCCL, the CPU with gloo

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def ddp_env() -> tuple[int, int, int]:
    """(RANK, WORLD_SIZE, LOCAL_RANK) from torchrun's environment; (0, 1, 0) for a plain run."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


@contextmanager
def process_group(device: torch.device, requested: str = "auto"):
    """Yield a ``DDP``; under torchrun, join the process group first (NCCL on GPUs, gloo on the
    CPU) and leave it afterwards, unless the caller had already joined one."""
    rank, world, local_rank = ddp_env()
    joined = False
    if world > 1 and not dist.is_initialized():
        use_nccl = torch.cuda.is_available() and requested != "cpu"
        if use_nccl:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if use_nccl else "gloo")
        joined = True
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    comm = device if world > 1 and dist.get_backend() == "nccl" else torch.device("cpu")
    try:
        yield DDP(rank, world, device, comm)
    finally:
        if joined and dist.is_initialized():
            dist.destroy_process_group()


def wrap(model: torch.nn.Module, ddp: DDP) -> torch.nn.Module:
    """The module the training step calls: ``model`` under DistributedDataParallel (its gradients
    all-reduced in backward) when there are several processes, else ``model`` itself."""
    if not ddp.distributed:
        return model
    return DistributedDataParallel(model, device_ids=[ddp.device.index] if ddp.device.type == "cuda" else None)


def all_agree(flags: torch.Tensor, ddp: DDP) -> torch.Tensor:
    """The element-wise minimum of ``flags`` over every rank (1 = fine, 0 = stop), so that all
    ranks take the same decision."""
    if ddp.distributed:
        dist.all_reduce(flags, op=dist.ReduceOp.MIN)
    return flags


def check_ranks_in_sync(model: torch.nn.Module, comm: torch.device) -> None:
    """DDP keeps every replica identical; verify it (cheaply) before trusting rank 0's files."""
    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().view(1).to(comm)  # (1,)
    gathered = [torch.zeros_like(checksum) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, checksum)
    if any(abs(g.item() - checksum.item()) > 1e-6 * max(1.0, abs(checksum.item())) for g in gathered):
        raise RuntimeError(f"DDP replicas diverged: parameter checksums {[g.item() for g in gathered]}")
    if dist.get_rank() == 0:
        print(f"DDP: {dist.get_world_size()} ranks in sync (parameter checksum {checksum.item():.6f})")
