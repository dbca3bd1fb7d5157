"""Weight EMA (engine/ema.py) and label smoothing (losses.py): the update rule by hand, training with both
on the coloured-shapes data, checkpoints holding the average as ``model``, exact resume with the average."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segbench.config import config_from_dict
from segbench.engine import train as train_mod
from segbench.engine.ema import WeightEMA, ema_decay_at
from segbench.engine.train import train
from segbench.errors import UserError
from segbench.losses import SegLoss, cross_entropy, ohem_cross_entropy
from segbench.models import load_model


def _cfg(root, out, **top):
    data = {
        "data": {"root": str(root), "crop_size": [32, 32], "scale_range": [1.0, 1.0], "val_max_images": 1},
        "model": {"name": "fast_scnn"},
        "optim": {"lr": 0.05},
        "loss": {"label_smoothing": 0.1},
        "iters": 4,
        "batch_size": 2,
        "val_every": 2,
        "log_every": 1,
        "tensorboard": False,
        "out_dir": str(out),
        **top,
    }
    return config_from_dict(data)


def test_decay_ramps_up_then_stays_at_the_target():
    assert ema_decay_at(0.999, 0) == pytest.approx(0.1)
    assert ema_decay_at(0.999, 10) == pytest.approx(11 / 20)
    assert ema_decay_at(0.999, 10**6) == 0.999


def test_update_follows_the_rule_for_parameters_and_buffers():
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    ema = WeightEMA(net, 0.5)
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
        net[1].running_mean.add_(2.0)
        net[1].num_batches_tracked.add_(7)
    ema.update(net, step=100)  # decay min(0.5, 101/110) = 0.5
    after = ema.state_dict()
    torch.testing.assert_close(after["0.weight"], before["0.weight"] + 0.5)
    torch.testing.assert_close(after["1.running_mean"], before["1.running_mean"] + 1.0)
    assert int(after["1.num_batches_tracked"]) == 7
    assert not any(p.requires_grad for p in ema.model.parameters())


def test_decay_outside_the_open_interval_is_refused():
    with pytest.raises(ValueError, match="ema_decay"):
        WeightEMA(nn.Linear(1, 1), 1.0)


def test_label_smoothing_matches_the_definition_and_leaves_ignored_pixels_out():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5)
    target = torch.randint(0, 3, (2, 4, 5))
    target[0, 0, :] = 255
    eps = 0.2
    valid = target != 255
    logp = logits.log_softmax(1).permute(0, 2, 3, 1)[valid]  # (P, C)
    soft = F.one_hot(target[valid], 3).float() * (1 - eps) + eps / 3
    expected = -(soft * logp).sum(1).mean()
    torch.testing.assert_close(cross_entropy(logits, target, label_smoothing=eps), expected)
    # OHEM keeping every pixel (threshold 1) is the smoothed cross-entropy too
    torch.testing.assert_close(ohem_cross_entropy(logits, target, thresh=1.0, label_smoothing=eps), expected)
    assert cross_entropy(logits, target, label_smoothing=eps) > cross_entropy(logits, target) - 1.0
    with pytest.raises(ValueError, match="label_smoothing"):
        SegLoss(label_smoothing=1.0)


def test_training_with_ema_saves_the_average_as_the_model(shapes_root, tmp_path):
    out = tmp_path / "run"
    train(_cfg(shapes_root, out, ema_decay=0.9), progress=False)
    state = torch.load(out / "last.pt", weights_only=False)
    assert set(state["model"]) == set(state["train_model"])
    trained = state["train_model"]
    differs = [k for k, v in state["model"].items() if v.is_floating_point() and not torch.equal(v, trained[k])]
    assert differs, "the average equals the trained weights"
    loaded = load_model(str(out / "last.pt")).model.state_dict()  # inference loads the average
    for key in differs:
        torch.testing.assert_close(loaded[key], state["model"][key], atol=0, rtol=0)


def test_resume_with_ema_continues_exactly(shapes_root, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    train(_cfg(shapes_root, reference, ema_decay=0.9), progress=False)
    run = tmp_path / "interrupted"
    real = train_mod.poly_lr

    def interrupt_at_2(base_lr, it, total, power, warmup):
        if it == 2:
            raise KeyboardInterrupt
        return real(base_lr, it, total, power, warmup)

    monkeypatch.setattr(train_mod, "poly_lr", interrupt_at_2)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(shapes_root, run, ema_decay=0.9), progress=False)
    monkeypatch.setattr(train_mod, "poly_lr", real)
    train(_cfg(shapes_root, run, ema_decay=0.9), resume=True, progress=False)
    last = torch.load(run / "last.pt", weights_only=False)
    ref = torch.load(reference / "last.pt", weights_only=False)
    for part in ("model", "train_model"):
        for key, value in ref[part].items():
            torch.testing.assert_close(last[part][key], value, atol=0, rtol=0, msg=f"{part}.{key} differs")


@pytest.mark.parametrize("top, message", [
    ({"ema_decay": 1.0}, "ema_decay: must be within"),
    ({"loss": {"label_smoothing": -0.1}}, "loss.label_smoothing: must be within"),
])  # fmt: skip
def test_out_of_range_values_are_user_errors(shapes_root, tmp_path, top, message):
    with pytest.raises(UserError, match=message):
        train(_cfg(shapes_root, tmp_path / "run", **top), progress=False)
