"""The probes of the machine's profile: a square GEMM per precision whose size grows within a time budget
(:func:`gemm_rate`) and STREAM's copy and triad memory bandwidth (:func:`stream_bandwidth`).

The time budget per precision is ``budget_s`` or ``$SEGBENCH_PROBE_BUDGET_S`` (default 1.5 s); the test suite
sets it small so no test's duration depends on the CPU.
"""

from __future__ import annotations

import os
import time

import torch

__all__ = ["DEFAULT_BUDGET_S", "EMULATED_MAX_N", "gemm_rate", "probe_budget_s", "stream_bandwidth"]

DEFAULT_BUDGET_S = 1.5
EMULATED_MAX_N = 256
"""The largest GEMM side probed for a precision emulated through fp32 (it is slow and says nothing new)."""


def probe_budget_s(budget_s: float | None = None) -> float:
    """The time budget of one precision's GEMM probe, in seconds: ``budget_s``, else
    ``$SEGBENCH_PROBE_BUDGET_S``, else 1.5."""
    if budget_s is not None:
        return float(budget_s)
    try:
        return float(os.environ["SEGBENCH_PROBE_BUDGET_S"])
    except (KeyError, ValueError):
        return DEFAULT_BUDGET_S

def _gemm(precision: str, n: int, device: torch.device):
    """A no-argument callable running one ``n x n x n`` GEMM in ``precision``, and the kernel it runs."""
    if precision == "int8":
        a = torch.randint(-64, 64, (n, n), dtype=torch.int8, device=device)
        if device.type == "cpu" and hasattr(torch.ops, "onednn") and hasattr(torch.ops.onednn, "qlinear_prepack"):
            x = torch.randint(0, 128, (n, n), dtype=torch.uint8)
            packed = torch.ops.onednn.qlinear_prepack(a, [n, n])
            scales, zeros = torch.ones(n), torch.zeros(n, dtype=torch.long)
            return (lambda: torch.ops.onednn.qlinear_pointwise(x, 1.0, 0, packed, scales, zeros, None, 1.0, 0,
                                                               torch.float32, "none", [], "")), "onednn.qlinear"  # fmt: skip
        return (lambda: torch._int_mm(a, a)), "torch._int_mm"
    dtype = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    return (lambda: torch.mm(a, b)), "torch.mm"


def _time_once(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def gemm_rate(precision: str, device: str = "cpu", *, budget_s: float | None = None, target_s: float = 0.2,
              max_n: int = 8192, repeats: int = 3, n: int | None = None) -> dict:  # fmt: skip
    """The measured rate of a square GEMM in ``precision``, its size found within a time budget.

    From ``n = 64`` the side doubles while one product takes under ``target_s``, the next size fits the
    budget (two products of 8x the time) and ``n < max_n``; at the last size up to ``repeats`` products are
    timed while the budget lasts (at least one). With ``n`` given, that size only.

    Args:
        precision: fp32, tf32 (CUDA), bf16, fp16 or int8.
        device: ``"cpu"`` or ``"cuda[:i]"``.
        budget_s: seconds for this precision (:func:`probe_budget_s`).
        target_s: a product's time under which the size grows.
        max_n: largest side.
        repeats: timed products at the last size.
        n: a fixed side (no growth).

    Returns:
        ``{"gflop_s", "n", "best_ms", "kernel", "sizes" (sides tried), "elapsed_s"}`` (int8: giga-ops/s).

    Raises:
        RuntimeError: A precision this build or device cannot run (the caller records it).
    """
    dev = torch.device(device)
    budget = probe_budget_s(budget_s)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"  # fp32 is true fp32
    try:
        return _grow(precision, dev, budget, target_s, max_n, repeats, n)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


def _grow(precision: str, dev: torch.device, budget: float, target_s: float, max_n: int, repeats: int,
          n: int | None) -> dict:  # fmt: skip
    start = time.perf_counter()
    side = n or 64
    sizes = []
    while True:
        fn, kernel = _gemm(precision, side, dev)
        sizes.append(side)
        first = _time_once(fn, dev)  # includes packing and first-touch: warm-up
        t = _time_once(fn, dev)
        elapsed = time.perf_counter() - start
        if n is not None or t >= target_s or side * 2 > max_n or elapsed + 2 * 8 * max(t, first / 2) > budget:
            break
        side *= 2
    best = t
    for _ in range(repeats - 1):
        if time.perf_counter() - start + t > budget:
            break
        best = min(best, _time_once(fn, dev))
    return {"gflop_s": 2 * side**3 / best / 1e9, "n": side, "best_ms": best * 1e3, "kernel": kernel,
            "sizes": sizes, "elapsed_s": time.perf_counter() - start}  # fmt: skip


def stream_bandwidth(array_mib: float, device: str = "cpu", repeats: int = 5) -> dict:
    """STREAM-style copy and triad bandwidth over float32 arrays of ``array_mib`` MiB, best of ``repeats``.

    Returns:
        ``{"copy_gb_s", "triad_gb_s", "array_mib", "repeats", "method"}`` (GB = 10^9 bytes; write-allocate
        traffic not counted, as in STREAM).
    """
    dev = torch.device(device)
    count = int(array_mib * 2**20 // 4)
    a = torch.zeros(count, device=dev)
    b = torch.full((count,), 1.5, device=dev)
    c = torch.full((count,), 0.5, device=dev)
    best_copy = best_triad = float("inf")
    for _ in range(repeats):
        best_copy = min(best_copy, _time_once(lambda: a.copy_(b), dev))
        best_triad = min(best_triad, _time_once(lambda: torch.add(b, c, alpha=3.0, out=a), dev))
    nbytes = count * 4
    return {"copy_gb_s": 2 * nbytes / best_copy / 1e9, "triad_gb_s": 3 * nbytes / best_triad / 1e9,
            "array_mib": count * 4 / 2**20, "repeats": repeats,
            "method": "torch copy_ (a = b) and add(out=a) (a = b + 3 c), float32, best of repeats"}  # fmt: skip
