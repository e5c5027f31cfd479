"""What this process runs on: the CPU's name and the instruction sets that decide its kernels,
the accelerator's name, and where artnet keeps what it caches.

Nothing here imports torch at module level: the CLI reads the machine before torch is loaded.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# The CPU features that decide which fp32 / bf16 / fp16 kernels PyTorch's CPU backends (oneDNN,
# ATen's vectorised loops) run: x86 flags as /proc/cpuinfo spells them, then Arm ones.
KERNEL_ISA_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_bf16",
    "amx_bf16",
    "avx512_fp16",
    "amx_fp16",
    "asimd",
    "asimdhp",
    "sve",
    "bf16",
)


def cache_dir() -> Path:
    """``$ARTNET_CACHE``, else ``~/.cache/artnet``: the built-in dataset, the acceleration choices."""
    return Path(os.environ.get("ARTNET_CACHE", Path.home() / ".cache" / "artnet"))


def _cpuinfo(key: str) -> str | None:
    """The first ``key : value`` line of /proc/cpuinfo (Linux), or None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what the platform module knows."""
    return _cpuinfo("model name") or platform.processor() or platform.machine() or "unknown CPU"


def cpu_kernel_flags() -> list[str]:
    """Which of :data:`KERNEL_ISA_FLAGS` this CPU has (x86 ``flags``, Arm ``Features``); empty off Linux."""
    present = set((_cpuinfo("flags") or _cpuinfo("Features") or "").split())
    return [flag for flag in KERNEL_ISA_FLAGS if flag in present]


def device_name(device) -> str:
    """``"NVIDIA H100 80GB HBM3"`` for a CUDA device, the CPU's name otherwise."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def kernel_identity(device) -> str:
    """What decides which kernels run, for a cache key: the device's name and ISA, capped ISA, torch version.

    CPU: the name, the kernel ISA flags, the ISA ATen dispatches to (``ATEN_CPU_CAPABILITY`` may
    lower it) and ``ONEDNN_MAX_CPU_ISA`` when set. CUDA: the name, compute capability, CUDA and
    cuDNN versions.
    """
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        identity = f"cuda: {device_name(device)}, sm {major}.{minor}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
    else:
        identity = f"{device.type}: {cpu_name()} [{' '.join(cpu_kernel_flags())}], ATen {torch.backends.cpu.get_cpu_capability()}"
        if os.environ.get("ONEDNN_MAX_CPU_ISA"):
            identity += f", ONEDNN_MAX_CPU_ISA={os.environ['ONEDNN_MAX_CPU_ISA']}"
    return f"{identity}; torch {torch.__version__}"
