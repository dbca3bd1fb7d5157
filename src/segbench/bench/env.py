"""The environment a benchmark ran in: library versions, CPU/GPU, threads, date."""

from __future__ import annotations

import platform
from datetime import datetime, timezone

import torch

__all__ = ["environment_info"]


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or None


def _version(module_name: str) -> str | None:
    try:
        module = __import__(module_name)
    except ImportError:
        return None
    return getattr(module, "__version__", None)


def environment_info(device: str | torch.device) -> dict:
    """Describe the software and hardware a benchmark runs on.

    Args:
        device: The device the benchmark runs on, e.g. ``"cpu"`` or ``"cuda:0"``.

    Returns:
        Dict with ``python``, ``torch``, ``torchvision``, ``numpy`` (version strings, None if not
        installed), ``platform``, ``cpu`` (model name from /proc/cpuinfo, else
        ``platform.processor()``, else None), ``cpu_count``, ``threads`` (``torch.get_num_threads()``),
        ``device`` (string), ``date`` (ISO 8601, UTC); on CUDA also ``cuda_device`` (name),
        ``cuda_version``, ``cudnn_version`` and ``cudnn_benchmark`` (flag).

    Raises:
        RuntimeError: If ``device`` is a CUDA device but CUDA is not available.
    """
    import os

    dev = torch.device(device)
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "numpy": _version("numpy"),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": str(device),
    }
    if dev.type == "cuda":
        info["cuda_device"] = torch.cuda.get_device_name(dev)
        info["cuda_version"] = torch.version.cuda
        info["cudnn_version"] = torch.backends.cudnn.version()
        info["cudnn_benchmark"] = bool(torch.backends.cudnn.benchmark)
    info["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return info
