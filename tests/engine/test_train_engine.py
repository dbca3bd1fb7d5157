"""Training engine features through ``train()``: resuming a checkpoint written before the scheduler and
scaler keys existed, fine-tuning with another class count, gradient clipping, backbone learning rate,
channels_last, bf16 autocast with the loss mix, TensorBoard on and off. Runs of 1-4 iterations on 32 x 32
crops of the coloured-shapes data."""

import csv
import sys

import pytest
import torch

from segbench.classes import CAMVID
from segbench.config import config_from_dict
from segbench.engine import train as train_mod
from segbench.engine.checkpoint import save_checkpoint
from segbench.engine.train import CSV_FIELDS, train
from segbench.errors import UserError
from segbench.models import build_model, load_model

OLD_CSV_FIELDS = ["iter", "epoch", "loss", "lr", "miou", "pixel_accuracy", "mean_accuracy", "elapsed_s", "img_s"]
OLD_KEYS = ("model", "optimizer", "iteration", "best_miou", "elapsed_s", "rng", "meta")  # before scheduler/scaler


def _cfg(root, out, **overrides):
    data = {
        "data": {"root": str(root), "crop_size": [32, 32], "scale_range": [1.0, 1.0], "val_max_images": 1},
        "model": {"name": "fast_scnn"},
        "optim": {"lr": 0.05},
        "iters": 1,
        "batch_size": 2,
        "val_every": 1,
        "log_every": 1,
        "tensorboard": False,
        "out_dir": str(out),
    }
    for key, value in overrides.items():
        section, _, sub = key.partition("__")
        if sub:
            data.setdefault(section, {})[sub] = value
        else:
            data[key] = value
    return config_from_dict(data)


def _rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _params(model_or_state):
    state = model_or_state if isinstance(model_or_state, dict) else model_or_state.state_dict()
    return {k: v for k, v in state.items() if v.is_floating_point() and "running_" not in k}


def _init_file(path, num_classes=3, aux=False):
    """A fast_scnn training checkpoint (model + meta) with random weights."""
    torch.manual_seed(1)
    model = build_model("fast_scnn", num_classes=num_classes, aux_loss=aux)
    meta = {"arch": "fast_scnn", "num_classes": num_classes, "class_names": [f"c{i}" for i in range(num_classes)]}
    save_checkpoint(path, {"model": model.state_dict(), "meta": meta})
    return model


def _last(run_dir):
    return torch.load(run_dir / "last.pt", map_location="cpu", weights_only=False)


def test_resumes_a_checkpoint_written_before_scheduler_and_scaler_keys(shapes_root, tmp_path, monkeypatch):
    small = {"iters": 4, "val_every": 2, "model__aux_loss": True, "class_weighting": "median_frequency"}
    reference = tmp_path / "reference"
    train(_cfg(shapes_root, reference, **small), progress=False)

    run = tmp_path / "old"
    real_poly_lr = train_mod.poly_lr

    def stop_at_2(base_lr, it, *args):
        if it == 2:
            raise KeyboardInterrupt
        return real_poly_lr(base_lr, it, *args)

    monkeypatch.setattr(train_mod, "poly_lr", stop_at_2)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(shapes_root, run, **small), progress=False)
    monkeypatch.setattr(train_mod, "poly_lr", real_poly_lr)
    # Make the run folder look like one written by the first training loop: only its checkpoint keys,
    # and metrics.csv with its nine columns.
    state = _last(run)
    save_checkpoint(run / "last.pt", {k: state[k] for k in OLD_KEYS})
    rows = _rows(run)
    with open(run / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, OLD_CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    assert set(_last(run)) == set(OLD_KEYS) and _last(run)["iteration"] == 2

    train(_cfg(shapes_root, run, **small), resume=True, progress=False)
    last, ref = _last(run), _last(reference)
    assert last["iteration"] == 4 and "scheduler" in last and "scaler" in last
    for key, value in ref["model"].items():
        torch.testing.assert_close(last["model"][key], value, atol=0, rtol=0, msg=f"{key} differs after resume")
    rows = _rows(run)
    assert list(rows[0]) == CSV_FIELDS  # the file now has the current header ...
    assert [r["iter"] for r in rows] == ["1", "2", "3", "4"]  # ... and every row once
    assert [r["loss"] for r in rows] == [r["loss"] for r in _rows(reference)]
    assert rows[0]["data_wait_pct"] == "" and rows[3]["data_wait_pct"] != ""


def test_finetunes_a_checkpoint_with_another_class_count(shapes_root, tmp_path, capsys):
    source = _init_file(tmp_path / "five.pt", num_classes=5)
    out = tmp_path / "ft"
    summary = train(
        _cfg(shapes_root, out, model__init=str(tmp_path / "five.pt"), model__aux_loss=True, optim__lr=0.0),
        progress=False,
    )
    report = summary["init_report"]
    assert report in capsys.readouterr().out  # printed for the user
    assert "rebuilt for 3 classes (shape differs): classifier.3.weight [5, 128, 1, 1] -> [3, 128, 1, 1]" in report
    assert "classifier.3.bias [5] -> [3]" in report
    assert "not in the source, freshly initialised: aux_head." in report
    trained = _last(out)["model"]
    assert trained["classifier.3.weight"].shape == (3, 128, 1, 1)
    src = _params(source)
    kept = [k for k in src if not k.startswith("classifier.3.")]
    assert len(kept) == len(src) - 2
    for key in kept:  # lr 0: everything that loaded is still the source's
        assert torch.equal(trained[key], src[key]), key
    assert not torch.equal(trained["classifier.3.weight"][:3], src["classifier.3.weight"][:3])


def test_finetunes_a_weights_tag_and_refuses_another_architecture(shapes_root, tmp_path):
    out = tmp_path / "tag"
    summary = train(_cfg(shapes_root, out, model__init="fast_scnn.camvid", optim__lr=0.0), progress=False)
    n = CAMVID.num_classes
    assert f"classifier.3.weight [{n}, 128, 1, 1] -> [3, 128, 1, 1]" in summary["init_report"]
    zoo = _params(load_model("fast_scnn.camvid").model)
    trained = _last(out)["model"]
    assert all(torch.equal(trained[k], v) for k, v in zoo.items() if not k.startswith("classifier.3."))
    with pytest.raises(UserError, match="model.init: lraspp_mobilenet_v3_large.camvid holds lraspp_mobilenet_v3_large"):
        train(_cfg(shapes_root, tmp_path / "x", model__init="lraspp_mobilenet_v3_large.camvid"), progress=False)


def test_encoder_init_loads_only_the_encoder_of_another_network(shapes_root, tmp_path):
    out = tmp_path / "enc"
    cfg = _cfg(
        shapes_root, out, model__name="deeplabv3_mobilenet_v3_large", optim__lr=0.0,
        model__encoder_init="lraspp_mobilenet_v3_large.camvid",
    )
    summary = train(cfg, progress=False)
    assert summary["init_report"].startswith("model.encoder_init: loaded 308 of 308 encoder tensors")
    source = load_model("lraspp_mobilenet_v3_large.camvid").model
    trained = _last(out)["model"]
    encoder = _params(source.encoder)
    assert encoder and all(torch.equal(trained["encoder." + k], v) for k, v in encoder.items())
    torch.manual_seed(0)
    fresh = _params(build_model("deeplabv3_mobilenet_v3_large", num_classes=3))
    assert any(not torch.equal(trained[k], fresh[k]) for k in fresh if k.startswith("encoder."))
    with pytest.raises(UserError, match="has a ResNetEncoder encoder, the model needs a MobileNetV3LargeEncoder"):
        train(
            _cfg(shapes_root, tmp_path / "x", model__name="deeplabv3_mobilenet_v3_large",
                 model__encoder_init=str(_resnet_file(tmp_path / "r.pt"))),
            progress=False,
        )
    with pytest.raises(UserError, match="set one of them, not both"):
        train(_cfg(shapes_root, tmp_path / "y", model__init="a.pt", model__encoder_init="b.pt"), progress=False)


def _resnet_file(path):
    model = build_model("fcn_resnet50", num_classes=3)
    meta = {"arch": "fcn_resnet50", "num_classes": 3, "class_names": ["a", "b", "c"]}
    save_checkpoint(path, {"model": model.state_dict(), "meta": meta})
    return path


def test_gradient_clipping_bounds_the_update(shapes_root, tmp_path):
    init = _params(_init_file(tmp_path / "init.pt"))
    common = {"model__init": str(tmp_path / "init.pt"), "optim__momentum": 0.0, "optim__weight_decay": 0.0}
    out = tmp_path / "clip"
    train(_cfg(shapes_root, out, optim__lr=0.5, optim__grad_clip_norm=1e-3, **common), progress=False)
    trained = _params(_last(out)["model"])
    step = torch.sqrt(sum(((trained[k] - init[k]).double() ** 2).sum() for k in init))
    # plain SGD: the update is lr x the clipped gradient, whose norm is the clip norm
    assert step.item() == pytest.approx(0.5 * 1e-3, rel=1e-3)


def test_backbone_learning_rate_multiplier(shapes_root, tmp_path):
    init = _params(_init_file(tmp_path / "init.pt"))
    out = tmp_path / "frozen_encoder"
    train(_cfg(shapes_root, out, model__init=str(tmp_path / "init.pt"), optim__backbone_lr_mult=0.0), progress=False)
    state = _last(out)
    trained = _params(state["model"])
    encoder = [k for k in init if k.startswith("encoder.")]
    head = [k for k in init if not k.startswith("encoder.")]
    assert encoder and head
    assert all(torch.equal(trained[k], init[k]) for k in encoder)  # lr x 0
    assert sum(not torch.equal(trained[k], init[k]) for k in head) > len(head) // 2
    assert state["scheduler"]["groups"] == ["backbone_decay", "backbone_no_decay", "head_decay", "head_no_decay"]
    assert state["scheduler"]["lr_mults"] == [0.0, 0.0, 1.0, 1.0]


def test_channels_last_computes_the_same_loss(shapes_root, tmp_path):
    # LR-ASPP has no dropout, whose masks would be laid out differently in NHWC memory
    common = {"model__name": "lraspp_mobilenet_v3_large", "data__crop_size": [64, 64], "batch_size": 4}
    train(_cfg(shapes_root, tmp_path / "nchw", **common), progress=False)
    train(_cfg(shapes_root, tmp_path / "nhwc", channels_last=True, **common), progress=False)
    nchw, nhwc = _rows(tmp_path / "nchw")[0], _rows(tmp_path / "nhwc")[0]
    assert float(nhwc["loss"]) == pytest.approx(float(nchw["loss"]), rel=1e-3)  # the same batch and weights
    state = _last(tmp_path / "nhwc")["model"]
    conv = next(v for k, v in state.items() if v.ndim == 4 and v.shape[-1] == 3)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


def test_bf16_autocast_with_adamw_and_the_loss_mix(shapes_root, tmp_path):
    init = _params(_init_file(tmp_path / "init.pt", aux=True))
    out = tmp_path / "bf16"
    summary = train(
        _cfg(
            shapes_root, out, iters=2, amp="bf16", model__init=str(tmp_path / "init.pt"), model__aux_loss=True,
            optim__name="adamw", optim__lr=1e-3, class_weighting="inverse_log", data__photometric=True,
            loss={"ce": 1.0, "ohem": 0.5, "dice": 0.5, "ohem_min_kept": 64},
        ),
        progress=False,
    )  # fmt: skip
    assert 0.0 <= summary["best_miou"] <= 1.0
    state = _last(out)
    assert all(v.dtype == torch.float32 for v in _params(state["model"]).values())  # weights stay fp32
    assert any(not torch.equal(state["model"][k], v) for k, v in init.items())
    assert "exp_avg" in next(iter(state["optimizer"]["state"].values()))  # AdamW's moments
    assert all(float(r["loss"]) > 0 for r in _rows(out))


def test_tensorboard_events_or_one_message_without_it(shapes_root, tmp_path, capsys, monkeypatch):
    pytest.importorskip("tensorboard")
    out = tmp_path / "tb"
    train(_cfg(shapes_root, out, iters=2, tensorboard=True), progress=False)
    assert list((out / "tb").glob("events.out.tfevents.*"))
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    capsys.readouterr()
    summary = train(_cfg(shapes_root, tmp_path / "no_tb", iters=2, tensorboard=True), progress=False)
    assert summary["iters"] == 2 and (tmp_path / "no_tb" / "last.pt").exists()
    assert capsys.readouterr().out.count("TensorBoard logging is off") == 1
    assert not (tmp_path / "no_tb" / "tb").exists()


def test_group_disjoint_validation_cut_from_one_split(shapes_root, tmp_path, capsys):
    # files 00..11: group "0" (00-09) trains, group "1" (10, 11) validates
    cfg = _cfg(shapes_root, tmp_path / "run", data__val_split="train", data__split_by=r"^(\d)", data__val_groups=["1"],
               data__val_max_images=0)  # fmt: skip
    result = train(cfg, progress=False)
    assert "10 training and 2 validation files, validation groups 1" in capsys.readouterr().out
    assert result["best_miou"] >= 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"data__val_groups": ["1"]}, "data.val_groups: needs data.split_by"),
        ({"data__gamma_range": [1.2, 0.8]}, "data.gamma_range: expected 2 ascending values above 0"),
        ({"data__brightness_range": [0.0, 1.2]}, "data.brightness_range: expected 2 ascending values above 0"),
        ({"data__blur_prob": 1.5}, "data.blur_prob: must be within 0..1"),
        ({"data__noise_std": -1.0}, "data.noise_std: must be 0 or more"),
    ],
)
def test_augmentation_and_split_options_are_checked(shapes_root, tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        train(_cfg(shapes_root, tmp_path / "run", **overrides), progress=False)
