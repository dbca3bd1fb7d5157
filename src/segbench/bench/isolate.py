"""One benchmark case in a fresh ``python -m segbench.bench.worker`` subprocess (:func:`run_isolated`), so one
model's memory, caches, thread pools and lazy initialisation cannot change the next model's figures, and a
crash, out-of-memory kill, timeout or bad input becomes a row holding ``error`` while a sweep goes on."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from segbench.bench.case import Case, as_case

__all__ = ["run_isolated"]


def _tail(path: Path, limit: int = 300) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    last = lines[-1] if lines else ""
    return last if len(last) <= limit else last[: limit - 3] + "..."


def _wait(proc: subprocess.Popen, t0: float, timeout_s: float, poll_s: float) -> tuple[bool, int]:
    """Wait for the worker; past ``timeout_s`` (or on an exception here) kill its process group.

    Returns:
        ``(timed_out, exit code)``, the code negative for a signal as in :attr:`subprocess.Popen.returncode`.
    """
    timed_out, status = False, 0
    try:
        while True:
            pid, status = os.waitpid(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout_s:
                timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                _, status = os.waitpid(proc.pid, 0)
                break
            time.sleep(poll_s)
    except BaseException:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.killpg(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
        proc.returncode = -9
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    return timed_out, proc.returncode


def _failure(timed_out: bool, code: int, timeout_s: float, log_path: Path) -> str:
    """Why a worker left no row: the timeout, the signal that killed it, or its exit code and last line."""
    if timed_out:
        return f"timeout: no result after {timeout_s:g} s; the worker was killed"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"worker killed by signal {name}{hint}: {_tail(log_path)}".rstrip(": ")
    return f"worker exited with code {code} without a result: {_tail(log_path)}".rstrip(": ")


def run_isolated(
    case: Case | dict,
    timeout_s: float = 600.0,
    python: str | None = None,
    command: Sequence[str] | None = None,
    poll_s: float = 0.05,
) -> dict:
    """Run one case in a fresh ``python -m segbench.bench.worker`` subprocess and return its row.

    The child gets the case as a JSON file and writes its row to another (atomically); with
    ``threads`` set, ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` are set for it too. The child runs in
    its own session; past ``timeout_s`` its whole process group is killed. The worker reports
    ``peak_rss_mib_total``, its peak resident set size over its whole life (imports and the training step
    included; :func:`~segbench.bench.memory.process_peak_rss_mib`). Not ``os.wait4``'s ``ru_maxrss``:
    Linux carries the parent's high-water mark over ``exec`` into it, so it is never below the size of
    the process that started the worker.

    Args:
        case: A :class:`~segbench.bench.case.Case` (or its dict).
        timeout_s: Seconds before the child is killed.
        python: Interpreter for the child (default ``sys.executable``).
        command: Replaces ``[python, "-m", "segbench.bench.worker"]`` (tests); the case and result
            paths are appended.
        poll_s: Seconds between checks of the child.

    Returns:
        The child's row plus ``peak_rss_mib_total``, ``worker_exit`` and ``worker_s``; if the child
        wrote no row, the case's base row with ``error`` saying why (timeout, killed by a signal, exit
        code and the last line of its output).
    """
    case = as_case(case)
    base = case.base_row()
    with tempfile.TemporaryDirectory(prefix="segbench-case-") as tmp:
        case_path, out_path, log_path = Path(tmp, "case.json"), Path(tmp, "row.json"), Path(tmp, "log.txt")
        case_path.write_text(json.dumps(case.to_dict()))
        argv = list(command or [python or sys.executable, "-m", "segbench.bench.worker"]) + [
            str(case_path),
            str(out_path),
        ]
        env = dict(os.environ)
        if case.threads:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(case.threads)
        t0 = time.perf_counter()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)  # fmt: skip
        timed_out, code = _wait(proc, t0, timeout_s, poll_s)
        elapsed = time.perf_counter() - t0
        row = None
        if out_path.is_file() and not timed_out:
            try:
                row = json.loads(out_path.read_text())
            except (OSError, json.JSONDecodeError):
                row = None
        if row is None:
            row = base
            row["error"] = _failure(timed_out, code, timeout_s, log_path)
        row["worker_exit"] = code
        row["worker_s"] = elapsed
    return row
