"""Safety net for refactoring: every registered network's state_dict key names and shapes, with and without
the auxiliary head, equal a text manifest (tests/snapshots/state_dict_keys.txt). Module names are permanent
once weights exist; a change here breaks every checkpoint and weights tag.

Regenerate only on purpose, for a new network: ``python tests/test_state_dict_snapshot.py --write``.
"""

import inspect
import sys
from pathlib import Path

import torch

from segbench.errors import UserError
from segbench.models import MODELS, build_model, list_models

MANIFEST = Path(__file__).parent / "snapshots" / "state_dict_keys.txt"


def _variants(name):
    yield "", {}
    if "aux_loss" in inspect.signature(MODELS.get(name)).parameters:
        yield " aux_loss=True", {"aux_loss": True}


def manifest() -> str:
    lines = []
    with torch.device("meta"):  # shapes only, no memory and no compute
        for name in list_models():
            for label, kwargs in _variants(name):
                try:
                    model = build_model(name, **kwargs)
                except UserError:  # a network without an auxiliary head refuses aux_loss=True
                    continue
                lines.append(f"# {name}{label}")
                lines += [f"{key} {tuple(t.shape)}" for key, t in model.state_dict().items()]
    return "\n".join(lines) + "\n"


def test_state_dict_keys_and_shapes_match_the_manifest():
    expected = MANIFEST.read_text().splitlines()
    actual = manifest().splitlines()
    if actual != expected:
        missing = sorted(set(expected) - set(actual))[:10]
        added = sorted(set(actual) - set(expected))[:10]
        raise AssertionError(f"state_dict keys changed; missing {missing}, added {added}")


def test_manifest_covers_every_registered_network():
    listed = {line[2:].split()[0] for line in MANIFEST.read_text().splitlines() if line.startswith("# ")}
    assert listed == set(list_models())


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    MANIFEST.write_text(manifest())
