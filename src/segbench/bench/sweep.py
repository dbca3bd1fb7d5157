"""A sweep: every (model, backend, size, batch) as one case, each in a fresh subprocess by default."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from segbench.bench.case import Case, make_case
from segbench.bench.isolate import run_isolated
from segbench.bench.runner import run_case

__all__ = ["sweep"]


def sweep(
    models: Sequence[str],
    *,
    backends: Sequence[str] = ("eager",),
    batches: Sequence[int] = (1,),
    sizes: Sequence[tuple[int, int]] = ((520, 520),),
    isolate: bool = True,
    timeout_s: float = 600.0,
    on_row: Callable[[dict, int, int], None] | None = None,
    skip: Callable[[Case], bool] | None = None,
    **case_kwargs,
) -> list[dict]:
    """Benchmark every (model, backend, size, batch) and return one row per case, in that order.

    Each case runs in a fresh subprocess (:func:`run_isolated`) unless ``isolate`` is False (then in
    this process, one after the other: later models can be affected by earlier ones; for debugging).
    A failing case becomes a row with ``error`` and the sweep goes on.

    Args:
        models: Model specs.
        backends: Backend names.
        batches: Batch sizes.
        sizes: ``(H, W)`` input sizes.
        isolate: One subprocess per case.
        timeout_s: Per-case limit in seconds (isolated cases only).
        on_row: Called as ``on_row(row, index, total)`` after each case (progress, partial saves).
        skip: Cases it returns True for are not measured and have no row (finished by a stopped run).
        **case_kwargs: Passed to :func:`make_case` (``device``, ``threads``, ``weights``, ``latency``,
            ``data``, ``e2e``, ``train_step``, ``cudnn_benchmark``, ``measure_peak``).

    Returns:
        The rows.
    """
    cases = [make_case(m, backend=b, batch=n, input_size=s, **case_kwargs)
             for m in models for b in backends for s in sizes for n in batches]  # fmt: skip
    if skip is not None:
        cases = [c for c in cases if not skip(c)]
    rows = []
    for i, case in enumerate(cases):
        if isolate:
            row = run_isolated(case, timeout_s=timeout_s)
        else:
            row = run_case(case)
            row["peak_rss_kind"] = "ru_maxrss of this process (not isolated): includes earlier cases"
        rows.append(row)
        if on_row is not None:
            on_row(row, i, len(cases))
    return rows
