"""Measure one benchmark case in this (fresh) process: ``python -m segbench.bench.worker CASE.json ROW.json``.

Started by :func:`segbench.bench.isolate.run_isolated`. Reads the case (a
:class:`segbench.bench.case.Case` as JSON), runs :func:`segbench.bench.runner.run_case` and writes the row
to ``ROW.json`` atomically. A failure inside the measurement is a row with ``error`` (exit code 0); exit
code 2 means the worker could not read its case or write its row.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str] | None = None) -> int:
    """Run the worker; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m segbench.bench.worker CASE.json ROW.json", file=sys.stderr)
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
