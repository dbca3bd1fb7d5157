"""Resuming reads ``last.pt`` with ``weights_only=True``: a crafted pickle cannot run code, and a truncated
file or one of another network stops with one line naming it."""

import builtins

import pytest
import torch

from segbench.config import config_from_dict
from segbench.engine.checkpoint import save_checkpoint
from segbench.engine.state import check_same_network, read_state
from segbench.engine.train import train
from segbench.errors import UserError
from segbench.models import build_model


def _cfg(root, out, iters=1):
    return config_from_dict({
        "data": {"root": str(root), "crop_size": [32, 32], "scale_range": [1.0, 1.0], "val_max_images": 1},
        "model": {"name": "fast_scnn"}, "iters": iters, "batch_size": 2, "val_every": 1, "log_every": 1,
        "tensorboard": False, "out_dir": str(out),
    })  # fmt: skip


class _CreatesFile:
    """Unpickling this calls ``builtins.open(path, "w")``: it creates ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return builtins.open, (self.path, "w")


@pytest.fixture(scope="module")
def run_dir(shapes_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "run"
    train(_cfg(shapes_root, out), progress=False)
    return out


def _resume_error(shapes_root, run, payload_state=None, raw=None) -> str:
    if raw is not None:
        (run / "last.pt").write_bytes(raw)
    else:
        save_checkpoint(run / "last.pt", payload_state)
    with pytest.raises(UserError) as info:
        train(_cfg(shapes_root, run, iters=2), resume=True, progress=False)
    message = str(info.value)
    assert "\n" not in message and str(run / "last.pt") in message
    return message


def test_a_crafted_checkpoint_cannot_run_code(shapes_root, run_dir, tmp_path):
    probe = tmp_path / "probe.txt"
    unsafe = tmp_path / "unsafe.pt"
    save_checkpoint(unsafe, {"model": {}, "payload": _CreatesFile(probe)})
    torch.load(unsafe, weights_only=False)  # what the attack does with a plain torch.load
    assert probe.exists()
    probe.unlink()

    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml", "metrics.csv"):
        (run / name).write_bytes((run_dir / name).read_bytes())
    state = torch.load(run_dir / "last.pt", weights_only=False)
    message = _resume_error(shapes_root, run, {**state, "payload": _CreatesFile(probe)})
    assert not probe.exists()
    assert "cannot resume" in message


def test_a_truncated_checkpoint_is_one_line(shapes_root, run_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    raw = (run_dir / "last.pt").read_bytes()
    message = _resume_error(shapes_root, run, raw=raw[: len(raw) // 2])
    assert "cannot resume" in message


def test_a_checkpoint_of_another_network_is_one_line(shapes_root, run_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    state = torch.load(run_dir / "last.pt", weights_only=False)
    state["model"] = build_model("lraspp_mobilenet_v3_large", num_classes=3).state_dict()
    message = _resume_error(shapes_root, run, state)
    assert "another network" in message


def test_check_same_network_names_the_differences(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1))
    check_same_network(tmp_path / "x.pt", model, model.state_dict())  # the same: no error
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 1), torch.nn.ReLU(), torch.nn.Conv2d(5, 2, 1))
    with pytest.raises(UserError, match=r"x\.pt: .*2 unexpected \(e\.g\. 2\.bias\); 2 of another shape \(e\.g\. 0\.bias\)"):
        check_same_network(tmp_path / "x.pt", model, other.state_dict())


def test_read_state_names_missing_keys(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": {}, "iteration": 1})
    with pytest.raises(UserError, match=r"last\.pt: not a segbench training checkpoint \(no optimizer, best_miou"):
        read_state(path, torch.device("cpu"))
