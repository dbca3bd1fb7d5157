"""One time budget for a whole run of many cases (``segbench compare --time-budget SECONDS``).

The budget starts when the run does. Each case (one (model, backend): its evaluation, then its benchmark)
gets a deadline when it begins: now plus its share, the time left (less a reserve for the report) divided
by the cases left, so a case that finishes early leaves its time to the next ones and one that overruns
takes it from them. The benchmark's timing loop stops at the deadline
(:func:`segbench.bench.latency.time_calls`' ``deadline_s``) and its row says so (``budget_cut``);
:func:`cut_line` is the one line that tells the user.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from segbench.errors import UserError

__all__ = ["DEFAULT_TIME_BUDGET_S", "REPORT_SHARE", "TimeBudget", "check_time_budget", "cut_line",
           "process_start_time"]

DEFAULT_TIME_BUDGET_S = 60.0
"""``segbench compare``'s default budget in seconds: the whole comparison, evaluation, timing and report."""

REPORT_SHARE = 0.15
"""The share of the budget kept for what follows the last case (analysis and report) and for the last cases'
overrun (each times at least :data:`segbench.bench.latency.MIN_CI_CALLS` calls, however late): with 0.1 the
default compare ended 0.08 s past its 60 s on the Zen 3 EPYC (2 cores, 2026-12-07), its report taking about 6 s."""


def process_start_time() -> float | None:
    """When this process started, in ``time.time()`` seconds (Linux: ``/proc/self/stat``'s start time, in clock
    ticks since boot, against ``CLOCK_BOOTTIME``); None where that cannot be read. The CLI starts a budget
    there, so that the interpreter's start and the imports are inside it."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        since_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat(5); fields[0] is field 3
        start = time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - since_boot)
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return start if 0 <= time.time() - start < 86400 else None


def check_time_budget(seconds: float | None, option: str = "--time-budget") -> float | None:
    """``seconds`` as a float (None stays None: no budget).

    Raises:
        UserError: not a finite number > 0.
    """
    if seconds is None:
        return None
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0 < value < float("inf"):
        raise UserError(f"{option} {seconds}: expected a number of seconds > 0")
    return value


class TimeBudget:
    """A budget of ``total_s`` seconds shared by ``cases`` cases, on a wall clock other processes can read.

    Args:
        total_s: The whole budget, seconds (> 0).
        cases: How many cases share it.
        reserve_s: Seconds kept for after the last case (default :data:`REPORT_SHARE` of ``total_s``).
        start: When the budget began (default now), in ``clock``'s seconds.
        clock: Wall clock in seconds since the epoch (``time.time``: a deadline travels to a worker process
            as such a number); tests replace it.

    Raises:
        UserError: ``total_s`` is not a number > 0.
    """

    def __init__(self, total_s: float, cases: int, reserve_s: float | None = None, start: float | None = None,
                 clock: Callable[[], float] = time.time):  # fmt: skip
        self.total_s = check_time_budget(total_s)
        self.reserve_s = self.total_s * REPORT_SHARE if reserve_s is None else float(reserve_s)
        self.cases_left = max(int(cases), 0)
        self.clock = clock
        self.start = clock() if start is None else float(start)

    def left_s(self) -> float:
        """Seconds of the budget not yet spent (negative once it is overrun)."""
        return self.total_s - (self.clock() - self.start)

    def share_s(self) -> float:
        """The next case's share in seconds: the time left less the reserve, over the cases left (>= 0)."""
        return max(self.left_s() - self.reserve_s, 0.0) / max(self.cases_left, 1)

    def begin_case(self) -> float:
        """Start the next case (one case fewer to share the rest); returns its deadline in ``clock`` seconds:
        now plus :meth:`share_s`."""
        deadline = self.clock() + self.share_s()
        self.cases_left = max(self.cases_left - 1, 0)
        return deadline


def cut_line(row: dict, name: str | None = None) -> str | None:
    """The line saying that the budget cut a case's timing short (None when it did not), e.g.
    ``fast_scnn.camvid: the time budget cut timing short after 14 calls: p50 41.2 ms, 95% interval
    +-6.3%; a larger --time-budget narrows it``."""
    if not row.get("budget_cut"):
        return None
    name = name or str(row.get("model"))
    ci = row.get("ci_rel")
    interval = f"95% interval +-{100 * ci:.1f}%" if ci is not None else "no 95% interval"
    p50 = row.get("latency_ms_p50")
    median = f"p50 {p50:.1f} ms, " if p50 is not None else ""
    asked = f" (asked +-{100 * row['rel_ci']:g}%)" if row.get("rel_ci") else ""
    return (f"{name}: the time budget cut timing short after {row.get('iters')} calls: {median}{interval}{asked}; "
            "a larger --time-budget narrows it")
