"""Measure one benchmark case in this (fresh) process: ``python -m segbench.bench.worker CASE.json ROW.json``.

Started by :func:`segbench.bench.isolate.run_isolated`. Reads the case (a
:class:`segbench.bench.case.Case` as JSON), runs :func:`segbench.bench.runner.run_case` and writes the row
to ``ROW.json`` atomically. A failure inside the measurement is a row with ``error`` (exit code 0); exit
code 2 means the worker could not read its case or write its row.

``python -m segbench.bench.worker --serve`` is the warm server (:func:`serve`): it imports torch, torchvision
and the benchmark code once, then forks one such worker per case it is sent, so each worker is a fresh process
whose cold start is a fork, not seconds of imports.
"""

from __future__ import annotations

import json
import os
import sys


def _forked(case_path: str, row_path: str, log_path: str, env: dict) -> int:
    """The forked worker: its own session (a timeout kills its group), stdin from /dev/null, output into
    ``log_path``, ``env`` set; returns :func:`main`'s exit code (70 for an exception that escaped it)."""
    os.setsid()
    null, log = os.open(os.devnull, os.O_RDONLY), os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    for fd, target in ((null, 0), (log, 1), (log, 2)):
        os.dup2(fd, target)
    os.close(null)
    os.close(log)
    os.environ.update(env)
    try:
        return main([case_path, row_path])
    except BaseException:  # noqa: BLE001 - the log says what; the parent reads the exit code
        import traceback

        traceback.print_exc()
        return 70
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def serve() -> int:
    """The warm server: import the benchmark code, say ``{"ready": true}``, then for each line
    ``[CASE.json, ROW.json, LOG.txt, {ENV}]`` on stdin fork a worker (:func:`main` in a fresh session),
    answer ``{"pid": PID}``, wait for it and answer ``{"exit": CODE}`` (negative: killed by that signal).
    Ends at the end of stdin."""
    import segbench.bench.runner  # noqa: F401 - loaded once here, so that every forked worker has them
    import segbench.external  # noqa: F401

    out = sys.stdout
    out.write('{"ready": true}\n')
    out.flush()
    while True:
        line = sys.stdin.readline()
        if not line:
            return 0
        case_path, row_path, log_path, env = json.loads(line)
        pid = os.fork()
        if pid == 0:
            os._exit(_forked(case_path, row_path, log_path, env))
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()
        _, status = os.waitpid(pid, 0)
        out.write(json.dumps({"exit": os.waitstatus_to_exitcode(status)}) + "\n")
        out.flush()


def main(argv: list[str] | None = None) -> int:
    """Run the worker (or with ``--serve`` the warm server); returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--serve"]:
        return serve()
    if len(argv) != 2:
        print("usage: python -m segbench.bench.worker CASE.json ROW.json  (or --serve)", file=sys.stderr)
        return 2
    case_path, row_path = argv
    from segbench.bench.case import Case
    from segbench.errors import UserError

    try:
        with open(case_path, encoding="utf-8") as f:
            case = Case.from_dict(json.load(f))
    except (OSError, json.JSONDecodeError, UserError) as exc:
        print(f"segbench worker: cannot read {case_path}: {exc}", file=sys.stderr)
        return 2
    from segbench.bench.memory import process_peak_rss_mib
    from segbench.bench.runner import run_case
    from segbench.data.io import write_bytes_atomic

    row = run_case(case)
    row["peak_rss_mib_total"] = process_peak_rss_mib()  # this worker's whole life, imports included
    try:
        write_bytes_atomic(row_path, json.dumps(row, default=str).encode())
    except (OSError, UserError) as exc:
        print(f"segbench worker: cannot write {row_path}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
