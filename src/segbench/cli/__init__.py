"""segbench: build, train, evaluate and compare semantic segmentation networks.

Commands: models, datasets, train, curves, evaluate, predict, benchmark, compare, export, hardware. Exit code 0 on success, 2 on bad
input (one line naming the file or option and what was expected).
"""

from __future__ import annotations

import argparse
import sys

from segbench.cli import benchmark, compare, curves, datasets, evaluate, export, hardware, models, predict, train
from segbench.cli.args import OneLineParser, UsageError
from segbench.errors import Terminated, UserError, stop_signals, threads_warning
from segbench.files import release_output_locks

SUBCOMMANDS = (models, datasets, train, curves, evaluate, predict, benchmark, compare, export, hardware)


def build_parser() -> argparse.ArgumentParser:
    """The ``segbench`` parser: one subparser per module of :data:`SUBCOMMANDS`, each setting ``func``."""
    p = OneLineParser(prog="segbench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in SUBCOMMANDS:
        command.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the ``segbench`` command line; returns the exit code (0, 2 on a user error, 130 when interrupted,
    143 on SIGTERM)."""
    try:
        args = build_parser().parse_args(argv)  # every option's range is checked here (segbench.options)
    except UsageError:
        return 2  # its one line is printed
    warning = threads_warning(getattr(args, "threads", None))
    if warning:
        print(f"segbench: {warning}", file=sys.stderr)
    try:
        with stop_signals():
            return args.func(args)
    except UserError as exc:
        print(f"segbench: error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("segbench: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("segbench: interrupted", file=sys.stderr)
        return 130
    finally:
        release_output_locks()  # the outputs this command locked (segbench.files.lock_output)
