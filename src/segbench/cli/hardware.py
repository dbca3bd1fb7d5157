"""``segbench hardware``: the machine's profile (CPU or GPU, units per precision, theoretical and measured peaks,
memory bandwidth), measured once per machine and library versions and then read from the cache."""

from __future__ import annotations

import json

from segbench.cli.args import add_option


def add_parser(sub) -> None:
    """The ``hardware`` subcommand and its options."""
    hw = sub.add_parser("hardware", help="the machine's profile: precisions native or emulated, peaks, bandwidth")
    hw.add_argument("--device", default="cpu", help="cpu (default) or cuda[:i]")
    add_option(hw, "--threads", default=None, help="CPU threads of the probes (default: torch's)")
    hw.add_argument("--json", action="store_true", help="print the profile as JSON")
    hw.add_argument("--refresh", action="store_true", help="measure again instead of reading the cache")
    hw.set_defaults(func=run)


def run(args) -> int:
    import torch

    from segbench.bench.hardware import format_profile, hardware_profile
    from segbench.errors import UserError

    if args.device != "cpu" and not (args.device.startswith("cuda") and torch.cuda.is_available()):
        raise UserError(f"--device {args.device}: expected cpu or cuda[:i] with CUDA available")
    profile = hardware_profile(args.device, args.threads, refresh=args.refresh)
    print(json.dumps(profile, indent=1) if args.json else format_profile(profile))
    return 0
