"""Inference latency with a stable-median stopping rule.

Model-only latency (:func:`measure_latency`): warm up (a number of calls *and* a number of seconds),
then time calls one by one until the median is known well enough: its 95% confidence interval, the
distribution-free order-statistic interval of the median (:func:`median_ci`), lies within
``rel_ci`` (default 2%) of the median on both sides, or a time budget runs out. The result says
which of the two happened (``converged``). A deadline (``deadline_s`` of :func:`time_calls`, an absolute
``deadline`` of :func:`measure_latency`: a share of ``segbench compare --time-budget``) ends timing earlier
still, after at least :data:`MIN_CI_CALLS` calls, and the result says so (``budget_cut``). On CUDA each call is timed with a pair of CUDA events
(``torch.cuda.Event(enable_timing=True)``), on CPU with ``time.perf_counter``.
The end-to-end time per image is in :mod:`segbench.bench.e2e`.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from segbench.bench.timers import CudaEventTimer, PerfCounterTimer, make_timer

__all__ = [
    "CI_METHOD",
    "MIN_CI_CALLS",
    "CudaEventTimer",
    "LatencyResult",
    "PerfCounterTimer",
    "make_timer",
    "measure_latency",
    "median_ci",
    "time_calls",
]

CI_METHOD = (
    "order-statistic (binomial) 95% interval of the median: [x(j), x(n+1-j)] of the sorted times, j the "
    "largest rank with P(j <= Binomial(n, 1/2) <= n-j) >= 0.95; assumes independent calls"
)

MIN_CI_CALLS = 6
"""Fewest timed calls with a 95% interval of the median (:func:`median_ci`): a deadline stops timing no sooner."""

WARMUP_SHARE = 0.25
"""With a deadline, the warm-up ends (after one call at least) once it has used this share of the time left."""


@dataclass
class LatencyResult:
    """Latency statistics of one model at one input shape.

    Attributes:
        latency_ms_p50: Median time per call (whole batch), ms.
        latency_ms_p90: 90th percentile (linear interpolation), ms.
        latency_ms_mean: Mean, ms.
        latency_ms_std: Sample standard deviation (0 for a single call), ms.
        throughput_img_s: ``batch / median seconds``, images per second.
        iters: Number of timed calls.
        batch: Batch size.
        latency_ms_ci_low: Lower end of the 95% confidence interval of the median, ms (None with
            fewer than 6 calls, where no such interval exists).
        latency_ms_ci_high: Upper end of that interval, ms (None likewise).
        ci_rel: ``max(p50 - ci_low, ci_high - p50) / p50``, the interval's larger half-width relative
            to the median (None likewise).
        converged: True when timing stopped because ``ci_rel <= rel_ci``; False when the time
            budget or ``max_iters`` ended it first.
        budget_cut: True when the deadline ended timing (or shortened the warm-up) before the interval got
            within ``rel_ci``: the interval is the one reached by then.
        rel_ci: The relative tolerance asked for.
        warmup_iters: Untimed calls made before timing.
        warmup_s: Seconds spent on them.
        timed_s: Wall-clock seconds of the timing phase.
        timer: ``"cuda_events"`` or ``"perf_counter"``.
        ci_method: How the interval is computed (:data:`CI_METHOD`).
    """

    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_mean: float
    latency_ms_std: float
    throughput_img_s: float
    iters: int
    batch: int
    latency_ms_ci_low: float | None = None
    latency_ms_ci_high: float | None = None
    ci_rel: float | None = None
    converged: bool = False
    budget_cut: bool = False
    rel_ci: float = 0.02
    warmup_iters: int = 0
    warmup_s: float = 0.0
    timed_s: float = 0.0
    timer: str = "perf_counter"
    ci_method: str = field(default=CI_METHOD)

    def to_dict(self) -> dict:
        """Return the fields as a plain dict."""
        return asdict(self)


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default) of an ascending list, q in [0, 100]."""
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _median_rank(n: int, confidence: float) -> int | None:
    """Largest 1-based rank j with P(j <= B <= n - j) >= confidence for B ~ Binomial(n, 1/2), or None."""
    if n < 1:
        return None
    # P(B <= j - 1) for j = 1, 2, ...; the interval [x(j), x(n+1-j)] misses the median with 2 P(B <= j-1).
    log_half_n = n * math.log(0.5)
    cdf, best = 0.0, None
    for j in range(1, n // 2 + 1):
        cdf += math.exp(math.lgamma(n + 1) - math.lgamma(j) - math.lgamma(n - j + 2) + log_half_n)  # P(B = j-1)
        if 1.0 - 2.0 * cdf >= confidence:
            best = j
        else:
            break
    return best


def median_ci(sorted_values: Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free confidence interval of the median from order statistics.

    With ``n`` independent samples sorted ascending, the number below the true median is
    Binomial(n, 1/2), so ``[x(j), x(n+1-j)]`` covers the median with probability
    ``1 - 2 P(B <= j-1)``; the largest ``j`` reaching ``confidence`` gives the narrowest interval.
    The computation uses the exact binomial probabilities (no normal approximation).

    Args:
        sorted_values: Samples in ascending order.
        confidence: Coverage, e.g. 0.95.

    Returns:
        ``(low, high)``, or None when ``n`` is too small for that coverage (fewer than 6 samples at
        0.95: with 5, even ``[min, max]`` covers only 93.75%).

    Raises:
        ValueError: If ``confidence`` is not in (0, 1).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n = len(sorted_values)
    j = _median_rank(n, confidence)
    if j is None:
        return None
    return sorted_values[j - 1], sorted_values[n - j]


def time_calls(
    fn: Callable[[], object],
    timer: Callable[[Callable[[], object]], float],
    *,
    warmup: int = 5,
    warmup_s: float = 1.0,
    min_iters: int = 10,
    max_iters: int = 100_000,
    min_time_s: float = 1.0,
    budget_s: float = 30.0,
    rel_ci: float = 0.02,
    confidence: float = 0.95,
    deadline_s: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict:
    """Warm up, then time ``fn`` call by call until the median is stable or the budget runs out.

    Warm-up: untimed calls until at least ``warmup`` calls *and* ``warmup_s`` seconds are done.
    Timing: each call is timed by ``timer``. Timing stops at the first check where

    1. at least ``min_iters`` calls and ``min_time_s`` seconds are done, and the confidence interval
       of the median (:func:`median_ci`) lies within ``rel_ci`` of the median on both sides
       (converged); or
    2. ``budget_s`` seconds of timing have passed, or ``max_iters`` calls are done (not converged,
       unless the last check met rule 1).

    The interval is checked after every call while there are fewer than 50, then every 10% more calls.

    With ``deadline_s`` (seconds from this call's start, warm-up included), timing also stops once the
    deadline has passed and at least :data:`MIN_CI_CALLS` calls are timed (``min_iters`` and ``min_time_s``
    give way to it), and the warm-up ends, after one call at least, once it has used :data:`WARMUP_SHARE`
    of the time to the deadline; ``budget_cut`` is then True unless the interval got within ``rel_ci``.

    Args:
        fn: The call to time (no arguments).
        timer: Runs ``fn`` once and returns its time in ms (:class:`PerfCounterTimer`,
            :class:`CudaEventTimer`).
        warmup: Minimum untimed calls.
        warmup_s: Minimum seconds of untimed calls.
        min_iters: Minimum timed calls.
        max_iters: Maximum timed calls.
        min_time_s: Minimum seconds of timing.
        budget_s: Maximum seconds of timing (the warm-up is not counted); ``min_iters`` calls are always
            made.
        rel_ci: Relative half-width of the interval at which timing stops, e.g. 0.02 for 2%.
        confidence: Coverage of the interval.
        deadline_s: Seconds from now by which timing should end (None: no deadline); may be <= 0 (then
            one warm-up call and :data:`MIN_CI_CALLS` timed calls are made).
        clock: Wall clock in seconds (tests replace it).

    Returns:
        ``{"times_ms": [...] (in call order), "converged": bool, "budget_cut": bool, "ci": (low, high) | None,
        "ci_rel": float | None, "warmup_iters", "warmup_s", "timed_s"}``.

    Raises:
        ValueError: If ``min_iters`` < 1, ``max_iters`` < ``min_iters``, or ``rel_ci`` <= 0.
    """
    if min_iters < 1 or max_iters < min_iters:
        raise ValueError(f"need 1 <= min_iters <= max_iters, got min_iters={min_iters}, max_iters={max_iters}")
    if rel_ci <= 0:
        raise ValueError(f"rel_ci must be > 0, got {rel_ci}")
    warm_start, warm_calls = clock(), 0
    stop_at = None if deadline_s is None else warm_start + deadline_s
    warm_until = None if stop_at is None else warm_start + max(deadline_s, 0.0) * WARMUP_SHARE
    cut = False
    while warm_calls < warmup or clock() - warm_start < warmup_s:
        if warm_until is not None and warm_calls >= 1 and clock() >= warm_until:
            cut = True
            break
        timer(fn)
        warm_calls += 1
    warm_elapsed = clock() - warm_start

    times: list[float] = []
    start = clock()
    next_check = min_iters
    converged, ci, ci_rel = False, None, None
    while True:
        times.append(timer(fn))
        n = len(times)
        now = clock()
        elapsed = now - start
        past_deadline = stop_at is not None and now >= stop_at and n >= MIN_CI_CALLS
        out_of_budget = n >= max_iters or (elapsed >= budget_s and n >= min_iters) or past_deadline
        if n >= next_check and elapsed >= min_time_s or out_of_budget:
            ordered = sorted(times)
            med = _percentile(ordered, 50)
            ci = median_ci(ordered, confidence)
            ci_rel = max(med - ci[0], ci[1] - med) / med if ci is not None and med > 0 else None
            narrow = ci_rel is not None and ci_rel <= rel_ci
            converged = narrow and n >= min_iters and elapsed >= min_time_s
            if converged or out_of_budget:
                cut = not narrow and (cut or past_deadline)
                break
            next_check = n + 1 if n < 50 else int(n * 1.1) + 1
    return {
        "times_ms": times,
        "converged": converged,
        "budget_cut": cut,
        "ci": ci,
        "ci_rel": ci_rel,
        "warmup_iters": warm_calls,
        "warmup_s": warm_elapsed,
        "timed_s": clock() - start,
    }


def summarize(times_ms: Sequence[float], batch: int, timing: dict, rel_ci: float, timer_name: str) -> LatencyResult:
    """Build a :class:`LatencyResult` from call times (ms) and the output of :func:`time_calls`."""
    ms = sorted(times_ms)
    p50 = _percentile(ms, 50)
    ci = timing.get("ci")
    return LatencyResult(
        latency_ms_p50=p50,
        latency_ms_p90=_percentile(ms, 90),
        latency_ms_mean=statistics.fmean(ms),
        latency_ms_std=statistics.stdev(ms) if len(ms) > 1 else 0.0,
        throughput_img_s=batch / (p50 / 1e3) if p50 > 0 else math.inf,
        iters=len(ms),
        batch=batch,
        latency_ms_ci_low=ci[0] if ci else None,
        latency_ms_ci_high=ci[1] if ci else None,
        ci_rel=timing.get("ci_rel"),
        converged=bool(timing.get("converged")),
        budget_cut=bool(timing.get("budget_cut")),
        rel_ci=rel_ci,
        warmup_iters=int(timing.get("warmup_iters", 0)),
        warmup_s=float(timing.get("warmup_s", 0.0)),
        timed_s=float(timing.get("timed_s", 0.0)),
        timer=timer_name,
    )


def measure_latency(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    input_shape: tuple[int, int, int, int],
    device: str | torch.device = "cpu",
    warmup: int = 5,
    min_iters: int = 10,
    max_iters: int = 100_000,
    min_time_s: float = 1.0,
    dtype: torch.dtype = torch.float32,
    warmup_s: float = 1.0,
    rel_ci: float = 0.02,
    budget_s: float = 30.0,
    timer: str = "auto",
    deadline: float | None = None,
) -> LatencyResult:
    """Time the forward pass of ``model`` on a random input until its median is stable.

    An ``nn.Module`` is moved to ``device`` (in place) and put in eval mode (its mode is restored
    afterwards); any other callable (a backend's predictor) is called as it is. Everything runs under
    ``torch.inference_mode()`` on one random input of ``input_shape`` made once on ``device``. Warm-up
    and the stopping rule are those of :func:`time_calls`: at least ``warmup`` calls and ``warmup_s``
    seconds untimed (the first model timed in a process needs about a second of calls before its
    times settle on CPU: thread pool and allocator warm-up), then calls timed one by one until the
    95% interval of the median is within ``rel_ci`` or ``budget_s`` seconds have passed.

    Args:
        model: Module or callable taking one ``(N, C, H, W)`` tensor and returning a tensor.
        input_shape: ``(N, C, H, W)``; ``N`` is the batch.
        device: Device to run on, e.g. ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
        warmup: Minimum number of untimed calls.
        min_iters: Minimum number of timed calls.
        max_iters: Maximum number of timed calls.
        min_time_s: Minimum seconds of timing.
        dtype: Dtype of the input. A module must already hold floating weights of this dtype.
        warmup_s: Minimum seconds of untimed calls.
        rel_ci: Stop once the 95% interval of the median is within this fraction of it (0.02 = 2%).
        budget_s: Stop after this many seconds of timing even if not converged.
        timer: ``"auto"`` (CUDA events on CUDA, else ``perf_counter``), ``"cuda_events"`` or
            ``"perf_counter"`` (with ``torch.cuda.synchronize`` around each call on CUDA; use it for
            predictors that run outside PyTorch's CUDA stream).
        deadline: Wall-clock time (``time.time()``, seconds since the epoch, so that another process can
            set it) by which warm-up and timing should end (:func:`time_calls`' ``deadline_s``); None: none.

    Returns:
        A :class:`LatencyResult` (times in ms, throughput in images/s).

    Raises:
        ValueError: If ``input_shape`` is not 4 positive ints, ``min_iters`` < 1, ``max_iters`` <
            ``min_iters``, ``rel_ci`` <= 0, or a module's weights are not of ``dtype``.
        Exception: Whatever the model raises (e.g. ``torch.cuda.OutOfMemoryError``).
    """
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 4 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (N, C, H, W) with positive entries, got {input_shape}")
    if min_iters < 1 or max_iters < min_iters:
        raise ValueError(f"need 1 <= min_iters <= max_iters, got min_iters={min_iters}, max_iters={max_iters}")
    is_module = isinstance(model, nn.Module)
    if is_module:
        param_dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
        if param_dtypes and param_dtypes != {dtype}:
            names = ", ".join(sorted(str(d) for d in param_dtypes))
            raise ValueError(f"model weights are {names} but dtype={dtype}; cast the model first (model.to({dtype}))")

    device = torch.device(device)
    clock_timer = make_timer(device, timer)
    was_training = model.training if is_module else False
    if is_module:
        model.to(device).eval()
    try:
        with torch.inference_mode():
            x = torch.randn(input_shape, device=device, dtype=dtype)
            timing = time_calls(
                lambda: model(x), clock_timer, warmup=warmup, warmup_s=warmup_s, min_iters=min_iters,
                max_iters=max_iters, min_time_s=min_time_s, budget_s=budget_s, rel_ci=rel_ci,
                deadline_s=None if deadline is None else deadline - time.time(),
            )  # fmt: skip
    finally:
        if is_module:
            model.train(was_training)
    return summarize(timing["times_ms"], input_shape[0], timing, rel_ci, clock_timer.name)
