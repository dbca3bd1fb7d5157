"""The training loop: it learns a task a small network must learn, writes a complete run folder,
refuses to overwrite, resumes exactly; and its schedule and class weights on hand-made examples."""

import csv
import itertools

import pytest
import torch
import yaml

from segbench.config import config_from_dict
from segbench.engine import train as train_mod
from segbench.engine.train import CSV_FIELDS, poly_lr, train
from segbench.errors import UserError
from segbench.models import load_model

OVERFIT_ITERS = 100


def _cfg(root, out_dir, **overrides):
    data = {
        "data": {"root": str(root), "crop_size": [64, 64], "scale_range": [1.0, 1.0]},
        "model": {"name": "fast_scnn"},
        "optim": {"lr": 0.05},
        "iters": OVERFIT_ITERS,
        "batch_size": 4,
        "val_every": 50,
        "log_every": 10,
        "seed": 0,
        "out_dir": str(out_dir),
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


@pytest.fixture(scope="module")
def overfit_run(shapes_root, tmp_path_factory):
    """One short training run on the coloured-shapes data (about 5 s on a loaded 2-core machine)."""
    out = tmp_path_factory.mktemp("runs") / "shapes"
    summary = train(_cfg(shapes_root, out), progress=False)
    return summary, out


def test_learns_coloured_shapes(overfit_run):
    summary, out = overfit_run
    # chance level (all background) is about 0.2 mIoU; colour decides the class, so it must be learnt
    assert summary["best_miou"] > 0.6
    rows = _rows(out)
    losses = [float(r["loss"]) for r in rows]
    assert losses[-1] < 0.5 * losses[0]
    val_rows = [r for r in rows if r["miou"]]
    assert [int(r["iter"]) for r in val_rows] == [50, 100]
    assert max(float(r["miou"]) for r in val_rows) == pytest.approx(summary["best_miou"], abs=1e-4)
    assert float(val_rows[-1]["pixel_accuracy"]) > 0.85


def test_run_folder_contents(overfit_run):
    summary, out = overfit_run
    assert summary["out_dir"] == str(out) and summary["iters"] == OVERFIT_ITERS and summary["elapsed_s"] > 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["iters"] == OVERFIT_ITERS and saved["optim"]["lr"] == 0.05 and saved["data"]["crop_size"] == [64, 64]
    assert config_from_dict(saved) == _cfg(saved["data"]["root"], out)  # the resolved config, complete
    rows = _rows(out)
    assert list(rows[0]) == CSV_FIELDS
    assert CSV_FIELDS == [
        "iter", "epoch", "loss", "lr", "miou", "pixel_accuracy", "mean_accuracy", "elapsed_s", "img_s", "data_wait_pct",
    ]  # fmt: skip
    assert all(0 <= float(r["data_wait_pct"]) <= 100 and float(r["img_s"]) > 0 for r in rows)
    assert [int(r["iter"]) for r in rows] == list(range(10, OVERFIT_ITERS + 1, 10))
    lrs = [float(r["lr"]) for r in rows]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] < 0.05
    for name in ("last.pt", "best.pt"):
        state = torch.load(out / name, map_location="cpu", weights_only=False)
        meta = state["meta"]
        assert meta["config"] == saved
        assert meta["arch"] == "fast_scnn" and meta["num_classes"] == 3
        assert meta["class_names"] == ["background", "red", "green"]
        assert set(meta["val"]) >= {"miou", "iou", "confusion"}
        assert set(state) >= {
            "model",
            "optimizer",
            "scheduler",
            "scaler",
            "iteration",
            "best_miou",
            "rng",
            "rng_per_rank",
        }
        assert state["scheduler"]["next_iter"] == state["iteration"] and state["scheduler"]["iters"] == OVERFIT_ITERS
    last = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    best = torch.load(out / "best.pt", map_location="cpu", weights_only=False)
    assert last["iteration"] == OVERFIT_ITERS
    assert best["meta"]["val"]["miou"] == pytest.approx(summary["best_miou"])


def test_training_checkpoint_loads_with_load_model(overfit_run):
    _, out = overfit_run
    loaded = load_model(str(out / "best.pt"))
    assert loaded.info.class_names == ["background", "red", "green"]


def test_refuses_to_overwrite_an_existing_run(overfit_run, shapes_root):
    _, out = overfit_run
    before = (out / "metrics.csv").read_text()
    with pytest.raises(UserError, match="a run already exists there; pass --resume"):
        train(_cfg(shapes_root, out), progress=False)
    assert (out / "metrics.csv").read_text() == before


def test_resume_without_a_run(shapes_root, tmp_path):
    with pytest.raises(UserError, match="nothing to resume"):
        train(_cfg(shapes_root, tmp_path / "new"), resume=True, progress=False)


def test_resume_continues_exactly(shapes_root, tmp_path, monkeypatch):
    small = {"iters": 6, "val_every": 3, "log_every": 1, "data__val_max_images": 1}
    reference = tmp_path / "reference"
    train(_cfg(shapes_root, reference, **small), progress=False)

    # The same run, interrupted at the start of iteration 4 (after the checkpoint at 3) ...
    run = tmp_path / "interrupted"
    real_poly_lr = train_mod.poly_lr

    def interrupt_at_3(base_lr, it, total, power, warmup):
        if it == 3:
            raise KeyboardInterrupt
        return real_poly_lr(base_lr, it, total, power, warmup)

    monkeypatch.setattr(train_mod, "poly_lr", interrupt_at_3)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(shapes_root, run, **small), progress=False)
    monkeypatch.setattr(train_mod, "poly_lr", real_poly_lr)
    assert torch.load(run / "last.pt", weights_only=False)["iteration"] == 3

    # ... and resumed: it goes on to the final iteration and ends where the uninterrupted run ended.
    summary = train(_cfg(shapes_root, run, **small), resume=True, progress=False)
    assert summary["iters"] == 6
    assert [int(r["iter"]) for r in _rows(run)] == [1, 2, 3, 4, 5, 6]
    last = torch.load(run / "last.pt", weights_only=False)
    ref = torch.load(reference / "last.pt", weights_only=False)
    assert last["iteration"] == 6
    for key, value in ref["model"].items():
        torch.testing.assert_close(last["model"][key], value, atol=0, rtol=0, msg=f"{key} differs after resume")
    assert [r["loss"] for r in _rows(run)] == [r["loss"] for r in _rows(reference)]


def test_resume_with_changed_settings_rewrites_config_and_logs_the_change(shapes_root, tmp_path):
    run = tmp_path / "run"
    small = {"val_every": 2, "log_every": 1, "data__val_max_images": 1}
    train(_cfg(shapes_root, run, iters=2, **small), progress=False)
    train(_cfg(shapes_root, run, iters=2, **small), resume=True, progress=False)  # nothing changed, nothing logged
    assert not (run / "resumes.yaml").exists()

    train(_cfg(shapes_root, run, iters=4, threads=1, **small), resume=True, progress=False)
    history = yaml.safe_load((run / "resumes.yaml").read_text())
    assert history == [{"iteration": 2, "changed": {"iters": [2, 4], "threads": [0, 1]}}]
    assert yaml.safe_load((run / "config.yaml").read_text())["iters"] == 4


def test_aux_loss_and_median_frequency_weighting(shapes_root, tmp_path):
    out = tmp_path / "aux"
    cfg = _cfg(shapes_root, out, iters=2, val_every=2, log_every=1, class_weighting="median_frequency",
               model__aux_loss=True, data__val_max_images=1)  # fmt: skip
    summary = train(cfg, progress=False)
    assert 0.0 <= summary["best_miou"] <= 1.0
    state = torch.load(out / "last.pt", weights_only=False)
    assert any(k.startswith("aux_head.") for k in state["model"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"class_weighting": "inverse"}, "class_weighting: expected one of none, median_frequency, inverse_log, got 'inverse'"),
        ({"amp": "fp8"}, "amp: expected one of none, bf16, fp16"),
        ({"amp": "fp16"}, "amp: fp16 needs CUDA"),
        ({"optim__name": "adam"}, "optim.name: expected one of sgd, adamw"),
        ({"loss__ce": 0.0}, "every loss weight"),
        ({"batch_size": 0}, "batch_size: must be at least 1"),
        ({"data__num_workers": -1}, "data.num_workers: must be 0 or more"),
        ({"device": "tpu"}, "device: expected 'cpu' or 'cuda'"),
        ({"model__name": "fast_scn"}, "did you mean fast_scnn"),
    ],
)
def test_bad_options_are_user_errors(shapes_root, tmp_path, override, message):
    with pytest.raises(UserError, match=message):
        train(_cfg(shapes_root, tmp_path / "bad", iters=1, **override), progress=False)


def test_missing_data_root(tmp_path):
    with pytest.raises(UserError, match="data.root: set the dataset folder"):
        train(_cfg("", tmp_path / "r"), progress=False)
    with pytest.raises(UserError, match="no such file or folder"):
        train(_cfg(tmp_path / "absent", tmp_path / "r2"), progress=False)


def test_zero_val_every_is_a_user_error(shapes_root, tmp_path):
    with pytest.raises(UserError, match="val_every"):
        train(_cfg(shapes_root, tmp_path / "zero", iters=2, val_every=0), progress=False)


def test_poly_lr():
    assert poly_lr(0.01, 0, 100, 0.9, 0) == pytest.approx(0.01)
    assert poly_lr(0.01, 50, 100, 1.0, 0) == pytest.approx(0.005)
    assert poly_lr(0.02, 75, 100, 2.0, 0) == pytest.approx(0.02 * 0.25**2)
    assert poly_lr(0.01, 50, 100, 0.9, 0) == pytest.approx(0.01 * 0.5**0.9)
    assert poly_lr(0.01, 100, 100, 0.9, 0) == 0.0
    # linear warm-up from lr/10 over the first 10 iterations, multiplied into the poly value
    assert poly_lr(1.0, 0, 100, 1.0, 10) == pytest.approx(0.1)
    assert poly_lr(1.0, 5, 100, 1.0, 10) == pytest.approx(0.95 * 0.55)
    assert poly_lr(1.0, 10, 100, 1.0, 10) == pytest.approx(0.9)
    values = [poly_lr(0.1, i, 50, 0.9, 0) for i in range(50)]
    assert all(a > b for a, b in itertools.pairwise(values))
