"""How one call is timed: ``time.perf_counter`` (with CUDA synchronised around the call) or a pair of CUDA
events. Used by :func:`segbench.bench.latency.time_calls` (and re-exported there)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

__all__ = ["CudaEventTimer", "PerfCounterTimer", "make_timer"]


class PerfCounterTimer:
    """Times a call with ``time.perf_counter``, after synchronising ``device`` when it is CUDA (so a
    call's asynchronous GPU work is inside the time)."""

    name = "perf_counter"

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __call__(self, fn: Callable[[], object]) -> float:
        """Run ``fn`` once; return its time in ms."""
        self._sync()
        t0 = time.perf_counter()
        fn()
        self._sync()
        return (time.perf_counter() - t0) * 1e3


class CudaEventTimer:
    """Times a call with two CUDA events recorded on the current stream around it; waits for the end
    event, and returns ``start.elapsed_time(end)`` (ms, GPU clock, about 0.5 us resolution)."""

    name = "cuda_events"

    def __init__(self, device: str | torch.device = "cuda"):
        self.device = torch.device(device)
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def __call__(self, fn: Callable[[], object]) -> float:
        """Run ``fn`` once; return the GPU time between the events in ms."""
        self.start.record()
        fn()
        self.end.record()
        self.end.synchronize()
        return float(self.start.elapsed_time(self.end))


def make_timer(device: str | torch.device, kind: str = "auto") -> PerfCounterTimer | CudaEventTimer:
    """The timer for ``device``: ``"auto"`` picks CUDA events on CUDA and ``perf_counter`` elsewhere.

    Raises:
        ValueError: If ``kind`` is not ``"auto"``, ``"cuda_events"`` or ``"perf_counter"``, or CUDA events
            are asked for on a non-CUDA device.
    """
    device = torch.device(device)
    if kind not in ("auto", "cuda_events", "perf_counter"):
        raise ValueError(f"timer must be auto, cuda_events or perf_counter, got {kind!r}")
    if kind == "cuda_events" and device.type != "cuda":
        raise ValueError(f"CUDA events need a CUDA device, got {device}")
    if kind == "cuda_events" or (kind == "auto" and device.type == "cuda"):
        with torch.cuda.device(device):
            return CudaEventTimer(device)
    return PerfCounterTimer(device)
