"""One benchmark case in a fresh ``python -m segbench.bench.worker`` subprocess (:func:`run_isolated`), so one
model's memory, caches, thread pools and lazy initialisation cannot change the next model's figures, and a
crash, out-of-memory kill, timeout or bad input becomes a row holding ``error`` while a sweep goes on.

By default the worker is forked from a warm server (``python -m segbench.bench.worker --serve``,
:func:`segbench.bench.worker.serve`) that imported torch, torchvision and segbench's benchmark code once and has
run nothing else: each worker is still a fresh process with no model's memory, caches or thread pools, but its
cold start is a fork instead of seconds of imports (torchvision's import alone brings in ``torch._dynamo`` and
sympy). The server starts with the first worker, serves one at a time and ends with this process."""

from __future__ import annotations

import contextlib
import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from segbench.bench.case import Case, as_case

__all__ = ["run_isolated", "start_warm_server"]


def _kill(pid: int) -> None:
    """SIGKILL a forked worker's process group (or the worker alone, before it made its group)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class _WarmServer:
    """The client of one warm server (:func:`segbench.bench.worker.serve`): one case at a time."""

    def __init__(self, python: str):
        self.proc = subprocess.Popen([python, "-m", "segbench.bench.worker", "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        self.buffer = b""
        self.ready = False

    def _answer(self, until: float | None) -> dict | None:
        """The server's next answer; None when it ended or ``until`` (perf_counter s) passed first."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            wait = None if until is None else max(until - time.perf_counter(), 0.0)
            if not select.select([fd], [], [], wait)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def start(self, paths: list[str], env: dict, until: float) -> int | None:
        """Fork a worker for ``paths`` (case, row, log); its pid, or None when the server failed or was not
        ready (its imports done) by ``until``."""
        if not self.ready:
            self.ready = bool((self._answer(until) or {}).get("ready"))
            if not self.ready:
                return None
        self.proc.stdin.write((json.dumps([*paths, env]) + "\n").encode())
        self.proc.stdin.flush()
        return (self._answer(max(until, time.perf_counter() + 30.0)) or {}).get("pid")  # a fork: milliseconds

    def wait(self, pid: int, t0: float, timeout_s: float, poll_s: float) -> tuple[bool, int | None]:
        """:func:`_wait` for a forked worker: ``(timed out, exit code)``, the code None if the server died."""
        timed_out = False
        while True:
            answer = self._answer(time.perf_counter() + poll_s)
            if answer is not None:
                return timed_out, answer["exit"]
            if self.proc.poll() is not None:
                return timed_out, None
            if not timed_out and time.perf_counter() - t0 > timeout_s:
                timed_out = True
                _kill(pid)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, subprocess.SubprocessError):
            self.proc.wait(5)


_SERVERS: dict[str, _WarmServer] = {}


def _server(python: str) -> _WarmServer:
    server = _SERVERS.get(python)
    if server is None or server.proc.poll() is not None:
        server = _SERVERS[python] = _WarmServer(python)
    return server


def start_warm_server() -> None:
    """Start the warm server now (it imports in the background), so that the first :func:`run_isolated`
    finds it ready; a no-op while one runs."""
    _server(sys.executable)


@atexit.register
def _close_servers() -> None:
    for server in _SERVERS.values():
        server.close()
    _SERVERS.clear()


def _run_warm(paths: list[str], env: dict, t0: float, timeout_s: float, poll_s: float) -> tuple[bool, int] | None:
    """Run the case in a worker forked by the warm server; None when the server could not start one (the
    caller starts a cold worker instead)."""
    server = _server(sys.executable)
    try:
        pid = server.start(paths, env, t0 + timeout_s)
        if pid is None:
            raise OSError("no worker")
        timed_out, code = server.wait(pid, t0, timeout_s, poll_s)
    except BaseException as exc:  # noqa: BLE001 - a broken or interrupted server is not used again
        if "pid" in locals() and pid is not None:
            _kill(pid)
        server.close()
        _SERVERS.pop(sys.executable, None)
        if isinstance(exc, (OSError, ValueError)):
            return None
        raise
    if code is None:  # the server died with the worker
        server.close()
        _SERVERS.pop(sys.executable, None)
        code = -signal.SIGKILL
    return timed_out, code


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
    warm: bool = True,
) -> dict:
    """Run one case in a fresh worker process (forked from the warm server, or ``python -m
    segbench.bench.worker``) and return its row.

    The child gets the case as a JSON file and writes its row to another (atomically); with
    ``threads`` set, ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` are set for it too. The child runs in
    its own session; past ``timeout_s`` (the warm server's imports included) its whole process group is
    killed. The worker reports ``peak_rss_mib_total``, its peak resident set size over its whole life (the
    training step included; :func:`~segbench.bench.memory.process_peak_rss_mib`): a forked worker's counts
    the pages of the imported libraries it touched, not those it only shares with the server, so it reads
    lower than a cold worker's (about 445 vs 729 MiB for fast_scnn at 32 x 48 here). Not ``os.wait4``'s
    ``ru_maxrss``: Linux carries the parent's high-water mark over ``exec`` into it.

    Args:
        case: A :class:`~segbench.bench.case.Case` (or its dict).
        timeout_s: Seconds before the child is killed.
        python: Interpreter for the child (default ``sys.executable``).
        command: Replaces ``[python, "-m", "segbench.bench.worker"]`` (tests); the case and result
            paths are appended.
        poll_s: Seconds between checks of the child.
        warm: Fork the worker from the warm server (module docstring); False, or with ``python`` or
            ``command``, start ``python -m segbench.bench.worker`` afresh (as also when the server fails).

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
        threads = {"OMP_NUM_THREADS": str(case.threads), "MKL_NUM_THREADS": str(case.threads)} if case.threads else {}
        t0 = time.perf_counter()
        done = None
        if warm and command is None and python is None:
            done = _run_warm([*argv[-2:], str(log_path)], threads, t0, timeout_s, poll_s)
        if done is None:
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **threads}, start_new_session=True)  # fmt: skip
            done = _wait(proc, t0, timeout_s, poll_s)
        timed_out, code = done
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
