"""Shared fixtures: tiny synthetic datasets and a fast_scnn weights file, all made in temporary folders.

Nothing here reads real datasets or the network. Datasets are session-scoped and must be treated as
read-only; a test that needs to add or break files builds its own copy with the ``make_*`` factories.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segbench.classes import CAMVID

# Two cores and background jobs: one thread per test process avoids oversubscription.
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _probe_budget_and_cache(tmp_path_factory):
    """A test-sized peak-probe budget (so that no test's duration depends on the CPU kind: an emulated bf16
    GEMM on an AVX2 CPU runs at about 1 GFLOP/s) and a cache of probes and hardware profiles of its own, so
    that these small probes never land in the user's cache; subprocesses inherit both."""
    saved = {k: os.environ.get(k) for k in ("SEGBENCH_PROBE_BUDGET_S", "SEGBENCH_CACHE_DIR")}
    os.environ["SEGBENCH_PROBE_BUDGET_S"] = "0.05"
    os.environ["SEGBENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("segbench-cache"))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value

H, W = 48, 64  # size of the tiny CamVid images (H x W)
SHAPE_COLOURS = {1: (220, 40, 40), 2: (40, 200, 60)}  # class -> RGB of the "shapes" dataset
SHAPE_BACKGROUND = (90, 90, 200)


def _camvid_label(rng: np.random.Generator) -> np.ndarray:
    """A 48 x 64 label map of 8 x 8 blocks holding every value 0..10 and the void id 11."""
    values = np.arange(12)
    blocks = np.concatenate([values, rng.integers(0, 12, 48 - 12)])
    rng.shuffle(blocks)
    return np.kron(blocks.reshape(6, 8), np.ones((8, 8), dtype=np.int64)).astype(np.uint8)


def make_camvid(root: Path, n_train: int = 4, n_val: int = 2, listing: bool = True, seed: int = 0) -> Path:
    """CamVid in SegNet's layout: ``{split}/``, ``{split}annot/`` and (with ``listing``) ``{split}.txt``
    holding SegNet-style absolute paths (``/SegNet/CamVid/train/x.png ...``)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / split).mkdir(exist_ok=True)
        (root / f"{split}annot").mkdir(exist_ok=True)
        lines = []
        for i in range(n):
            name = f"{split}_{i:03d}.png"
            label = _camvid_label(rng)
            palette = np.array(list(CAMVID.palette) + [(0, 0, 0)], dtype=np.uint8)
            image = palette[label] // 2 + rng.integers(0, 100, (H, W, 3), dtype=np.uint8)
            Image.fromarray(image.astype(np.uint8)).save(root / split / name)
            Image.fromarray(label, mode="L").save(root / f"{split}annot" / name)
            lines.append(f"/SegNet/CamVid/{split}/{name} /SegNet/CamVid/{split}annot/{name}")
        if listing:
            (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def make_folder_dataset(root: Path, n: int = 3, seed: int = 0) -> Path:
    """Generic layout: ``images/*.png``, ``masks/*.png`` (values 0..2 and void 255), ``classes.yaml``."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    for i in range(n):
        mask = rng.integers(0, 3, (H, W)).astype(np.uint8)
        mask[:4] = 255
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(root / "images" / f"img{i}.png")
        Image.fromarray(mask, mode="L").save(root / "masks" / f"img{i}.png")
    (root / "classes.yaml").write_text(
        "names: [background, cat, dog]\npalette: [[0, 0, 0], [255, 0, 0], [0, 255, 0]]\nvoid: [255]\n"
    )
    return root


def make_shapes(root: Path, n_train: int = 12, n_val: int = 4, size: int = 64, seed: int = 0) -> Path:
    """A dataset a small network must learn: a noisy blue background (class 0) with one red (class 1) and
    one green (class 2) rectangle per image; the colour of a pixel decides its class.

    Layout ``{train,val}/{images,masks}`` and ``classes.yaml`` at the root."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "masks").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            noise = rng.integers(-15, 16, (size, size, 3))
            img = (np.array(SHAPE_BACKGROUND) + noise).clip(0, 255).astype(np.uint8)
            mask = np.zeros((size, size), np.uint8)
            for c, colour in SHAPE_COLOURS.items():
                h, w = rng.integers(size // 4, size // 2, 2)
                y, x = rng.integers(0, size - h), rng.integers(0, size - w)
                img[y : y + h, x : x + w] = colour
                mask[y : y + h, x : x + w] = c
            Image.fromarray(img).save(root / split / "images" / f"{i:02d}.png")
            Image.fromarray(mask, mode="L").save(root / split / "masks" / f"{i:02d}.png")
    (root / "classes.yaml").write_text("names: [background, red, green]\n")
    return root


@pytest.fixture(scope="session")
def camvid_root(tmp_path_factory) -> Path:
    """Read-only tiny CamVid: 4 train + 2 val images of 48 x 64, labels 0..10 and void 11, with .txt lists."""
    return make_camvid(tmp_path_factory.mktemp("camvid"))


@pytest.fixture(scope="session")
def folder_root(tmp_path_factory) -> Path:
    """Read-only tiny generic dataset (3 classes, 3 images)."""
    return make_folder_dataset(tmp_path_factory.mktemp("folder"))


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory) -> Path:
    return make_shapes(tmp_path_factory.mktemp("shapes"))


def camvid_meta(arch: str = "fast_scnn") -> dict:
    return {
        "arch": arch,
        "num_classes": CAMVID.num_classes,
        "class_names": list(CAMVID.names),
        "palette": [list(c) for c in CAMVID.palette],
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }


@pytest.fixture(scope="session")
def fast_scnn_ckpt(tmp_path_factory) -> Path:
    """A fast_scnn fp16 safetensors file with CamVid metadata (11 classes), like a shipped zoo file.

    Batch-norm statistics are made non-trivial with a few train-mode forwards so that eval outputs
    depend on every buffer."""
    from segbench.engine.checkpoint import save_safetensors
    from segbench.models import build_model

    torch.manual_seed(0)
    model = build_model("fast_scnn", num_classes=CAMVID.num_classes).train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(2, 3, 64, 64))
    path = tmp_path_factory.mktemp("ckpt") / "fast_scnn_camvid.safetensors"
    save_safetensors(model.eval(), camvid_meta(), path)
    return path


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """Run ``segbench ARGS`` in-process from an empty working folder; returns (exit code, stdout, stderr)."""
    from segbench.cli import main

    monkeypatch.chdir(tmp_path)

    def run(*argv):
        rc = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return rc, out, err

    return run
