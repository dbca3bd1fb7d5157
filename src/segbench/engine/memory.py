"""Peak memory of one call, in MiB (2**20 bytes): the measurement the benchmark and inference share.

On CUDA this is the caching allocator's peak of allocated memory (weights, input, activations and
anything else the process holds on that device) and of reserved memory. On CPU it is the peak increase
of the process's resident set size (RSS) during the call, relative to the RSS just before it. The two
are different quantities; ``memory_kind`` (one of :data:`MEMORY_KINDS`) says which one a number is.
:func:`process_peak_rss_mib` gives the whole process's peak RSS (``VmHWM`` on Linux, else ``ru_maxrss``).
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Callable

import torch
from torch import nn

__all__ = [
    "MEMORY_KINDS",
    "MIB",
    "current_rss_mib",
    "peak_memory_mib",
    "peak_rss_increase_mib",
    "process_peak_rss_mib",
]

MIB = 2**20  # bytes in a MiB

MEMORY_KINDS = {
    "cuda_peak_allocated": "peak CUDA memory allocated by PyTorch tensors (`torch.cuda.max_memory_allocated`), "
    "weights included",
    "cpu_peak_rss_increase": "peak increase of the process's resident set size (RSS) during the call, sampled "
    "from /proc/self/statm about every 1 ms",
    "cpu_maxrss_increase": "increase of the process's all-time peak RSS (`ru_maxrss`, without /proc): a lower "
    "bound of the call's peak",
}
"""Every ``memory_kind`` (and ``train_memory_kind``) a measurement produces, with what it measures."""


def _rss_reader():
    """Return a function giving the current RSS in bytes from /proc/self/statm, or None without /proc."""
    path = "/proc/self/statm"
    if not os.path.exists(path):
        return None
    page = os.sysconf("SC_PAGE_SIZE")

    def read() -> int:
        with open(path, "rb") as f:
            return int(f.read().split()[1]) * page

    try:
        read()
    except (OSError, ValueError, IndexError):
        return None
    return read


def _maxrss_bytes() -> int:
    import resource
    import sys

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, KiB on Linux


def _release_free_heap() -> None:
    """Give freed heap memory back to the OS (glibc ``malloc_trim``), so that memory freed by earlier
    work cannot be reused by the measured forward without showing up in RSS. No-op elsewhere."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass


def current_rss_mib() -> float | None:
    """Resident set size of this process now, in MiB (from /proc/self/statm; None without /proc)."""
    read = _rss_reader()
    return read() / MIB if read is not None else None


def process_peak_rss_mib() -> float:
    """Peak resident set size of this process over its whole life so far, in MiB.

    On Linux ``VmHWM`` from ``/proc/self/status``: the high-water mark of this process image only.
    ``ru_maxrss`` is not used there because Linux carries the mark of the memory a process had before
    ``exec`` into it, so a worker started by a large parent (fork or vfork, then exec) would report the
    parent's size. Elsewhere ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (KiB on Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / MIB  # "VmHWM:   123456 kB"
    except (OSError, ValueError, IndexError):
        pass
    return _maxrss_bytes() / MIB


def peak_rss_increase_mib(fn: Callable[[], object], interval_s: float = 0.001) -> dict:
    """Peak RSS increase while ``fn()`` runs, ``{"memory_mib", "memory_kind"}`` (the result of ``fn`` stays
    alive until the last sample).

    Args:
        fn: the call to measure.
        interval_s: seconds between two RSS samples.
    """
    read_rss = _rss_reader()
    _release_free_heap()
    if read_rss is None:
        # Fallback: the process's all-time peak RSS; the call shows up only if it sets a new peak,
        # so this is a lower bound of the true increase.
        before = _maxrss_bytes()
        out = fn()
        after = _maxrss_bytes()
        del out
        return {"memory_mib": max(after - before, 0) / MIB, "memory_kind": "cpu_maxrss_increase"}

    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], read_rss())
            time.sleep(interval_s)

    baseline = read_rss()
    peak[0] = baseline
    thread = threading.Thread(target=sample, name="segbench-rss-sampler", daemon=True)
    thread.start()
    try:
        out = fn()
        peak[0] = max(peak[0], read_rss())  # the output is still alive here
    finally:
        stop.set()
        thread.join()
    del out
    return {"memory_mib": max(peak[0] - baseline, 0) / MIB, "memory_kind": "cpu_peak_rss_increase"}


def peak_memory_mib(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    input_shape: tuple[int, int, int, int],
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    warmup: bool = True,
) -> dict:
    """Measure the peak memory of one inference forward pass, in MiB (2**20 bytes).

    An ``nn.Module`` is moved to ``device`` (in place) and run in eval mode (its train/eval mode is
    restored afterwards); any other callable (a backend's predictor) is called as it is. Both run
    under ``torch.inference_mode()`` on a random input: one unmeasured warm-up forward (so one-time
    lazy initialisation of kernels and libraries is not counted), then the measured one.

    - CUDA: peak statistics are reset, then one forward runs; the result is the peak of memory
      allocated by tensors (``torch.cuda.max_memory_allocated``), which includes the weights, the
      input and any other tensor the process holds on that device, plus the peak reserved by the
      caching allocator.
    - CPU: a background thread samples the process RSS from ``/proc/self/statm`` about every 1 ms
      during the forward; the result is the peak RSS minus the RSS just before the forward. Before
      the baseline, freed heap memory is returned to the OS (glibc ``malloc_trim``) so the forward
      cannot silently reuse it; with other allocators, memory held from earlier work can still hide
      part of the peak. The number is noisier than the CUDA one (1 ms sampling, page granularity,
      other threads of the process). Without ``/proc`` it falls back to
      ``resource.getrusage`` max RSS (a lower bound; kind ``"cpu_maxrss_increase"``).

    Args:
        model: Module or callable taking one ``(N, C, H, W)`` tensor.
        input_shape: ``(N, C, H, W)`` of the input.
        device: Device to run on.
        dtype: Dtype of the input (a module's weights must match).
        warmup: Run one unmeasured forward first.

    Returns:
        On CUDA ``{"memory_mib", "memory_reserved_mib", "memory_kind": "cuda_peak_allocated"}``; on
        CPU ``{"memory_mib", "memory_kind": "cpu_peak_rss_increase"}``. Values in MiB.

    Raises:
        ValueError: If ``input_shape`` does not have 4 positive entries.
        Exception: Whatever the model's forward raises (e.g. ``torch.cuda.OutOfMemoryError``).
    """
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 4 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (N, C, H, W) with positive entries, got {input_shape}")
    device = torch.device(device)
    is_module = isinstance(model, nn.Module)
    was_training = model.training if is_module else False
    if is_module:
        model.to(device).eval()
    try:
        with torch.inference_mode():
            x = torch.randn(input_shape, device=device, dtype=dtype)
            if warmup:
                model(x)  # output dropped at once
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
                out = model(x)
                torch.cuda.synchronize(device)
                del out
                return {
                    "memory_mib": torch.cuda.max_memory_allocated(device) / MIB,
                    "memory_reserved_mib": torch.cuda.max_memory_reserved(device) / MIB,
                    "memory_kind": "cuda_peak_allocated",
                }
            return peak_rss_increase_mib(lambda: model(x))
    finally:
        if is_module:
            model.train(was_training)
