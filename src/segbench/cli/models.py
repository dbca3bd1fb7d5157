"""``segbench models``: the networks, their parameter counts and weights tags."""

from __future__ import annotations

from segbench.cli.args import add_option


def add_parser(sub) -> None:
    """The ``models`` subcommand and its options."""
    m = sub.add_parser("models", help="list the networks, their parameters and weights tags")
    add_option(m, "--num-classes", default=21, help="classes for the parameter count (default 21)")
    m.set_defaults(func=run)


def run(args) -> int:
    import torch

    from segbench.bench import count_params
    from segbench.models import available_weights, build_model, list_models

    print(f"{'model':32s} {'params (M)':>10s}  weights")
    for name in list_models():
        with torch.device("meta"):  # shapes only: no memory, no initialisation (seconds for the ResNet-101s)
            params = count_params(build_model(name, num_classes=args.num_classes)) / 1e6
        tags = ", ".join(f"{name}.{t}" for t in available_weights(name)) or "-"
        print(f"{name:32s} {params:10.2f}  {tags}")
    print(f"\nparameters at {args.num_classes} classes, without auxiliary heads")
    return 0
