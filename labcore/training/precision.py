"""bf16 in training: when to use it (``--precision auto`` means bf16 autocast only where it is
fast) and the autocast block the loops and their evaluation run in.

On a GPU bf16 is (nearly) free; on a CPU it is fast only with native bf16 instructions
(``avx512_bf16`` / AMX): elsewhere oneDNN emulates it and bf16 autocast is several times SLOWER
than fp32. Convolutions (the VQGAN) were ~15x slower in bf16 even so, hence ``cpu_ok``.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch


def cpu_has_fast_bf16() -> bool:
    """bf16 matmuls are only fast on CPUs with native bf16 (avx512_bf16 / AMX); elsewhere oneDNN
    emulates them and bf16 autocast is several times SLOWER than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(precision: str, device: torch.device, cpu_ok: bool = True) -> bool:
    """True for bf16 autocast: ``bf16`` always, ``fp32`` never, ``auto`` on CUDA with bf16 support
    and (when ``cpu_ok``) on CPUs with native bf16."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.cuda.is_bf16_supported()
        return cpu_ok and cpu_has_fast_bf16()
    return precision == "bf16"


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CPU and CUDA (CPUs with avx512_bf16 run it ~2x faster than fp32); a block
    that changes nothing when not ``enabled`` (``use_bf16``'s answer), so a loop has one code path."""
    if not enabled:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
