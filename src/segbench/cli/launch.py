"""Subcommands under ``torchrun``: join the process group torchrun describes, run, leave it.

``torchrun --nproc-per-node N -m segbench evaluate|compare ...`` starts N copies of the command; the wrapped
subcommand shards the images over them (:mod:`segbench.engine.sharded`) and only rank 0 prints and writes.
Without torchrun's ``WORLD_SIZE`` (or with 1) the subcommand runs as it is.
"""

from __future__ import annotations

import functools
import os
import sys

from segbench.errors import UserError


def _world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise UserError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r}: expected an integer (launch with torchrun)") from None


def distributed(run):
    """Wrap a subcommand's ``run(args)`` for torchrun: gloo on CPU, NCCL on CUDA (``--device cuda`` becomes
    ``cuda:LOCAL_RANK``), progress and output on rank 0 only. An error raised on every rank alike is printed
    by rank 0 alone; one that only another rank hit is printed by that rank."""

    @functools.wraps(run)
    def wrapper(args) -> int:
        if _world_size() <= 1:
            return run(args)
        from segbench.engine.distributed import cleanup, init_distributed

        dinfo = init_distributed(args.device)
        args.device = str(dinfo.device)
        if not dinfo.is_main:
            args.quiet = True
        try:
            return run(args)
        except UserError as exc:
            if dinfo.is_main:
                raise
            if not getattr(exc, "all_ranks", False):
                print(f"segbench: error (rank {dinfo.rank}): {exc}", file=sys.stderr)
            return 2
        finally:
            cleanup()

    return wrapper
