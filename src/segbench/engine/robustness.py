"""Robustness to image corruptions: mIoU per corruption and severity, as Kamann and Rother measured it.

The 15 corruptions of ImageNet-C (Hendrycks and Dietterich, "Benchmarking Neural Network Robustness to
Common Corruptions and Perturbations", ICLR 2019, https://arxiv.org/abs/1903.12261) in four groups
(:data:`GROUPS`), at severities 1..5, produced by the ``imagecorruptions`` package (optional extra
``robustness``), applied to segmentation as in Kamann and Rother, "Benchmarking the Robustness of Semantic
Segmentation Models", CVPR 2020, https://arxiv.org/abs/1908.04047: mIoU on each corrupted copy of the
images, its mean over the severities, and that mean relative to the clean mIoU of the same images.

Each corrupted image is generated once per (image, corruption, severity), from a seed derived from the run's
seed and those three, and every model of the run is scored on that same array before the next one is made,
so the models see identical corruptions and no corrupted image is stored. One confusion matrix per
(cell, image) is kept, so the figures get bootstrap intervals over the images (:func:`robustness_intervals`).
Inference is one whole-image forward pass (no sliding window, TTA or CRF), each model as loaded.

A long sweep can be resumed: with a ``checkpoint`` file the confusion matrices of every finished
(corruption, severity) cell are written there (atomically) after each cell, and a later sweep of the same
models, images and plan started with ``resume=True`` skips those cells (``segbench compare --resume``).

Cost: generating a corrupted 360 x 480 image takes 0.01-0.8 s, except ``glass_blur`` (about 5 s; pure
Python loops in the package); measured one at a time on a 2-core VM under load.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from segbench.data.io import write_bytes_atomic
from segbench.engine.evaluate import predict_mask
from segbench.errors import UserError, require
from segbench.metrics import ConfusionMatrix
from segbench.preprocessing import Preprocessing
from segbench.engine.robustness_stats import robustness_comparisons, robustness_intervals, robustness_table

__all__ = ["GROUPS", "CorruptionPlan", "corrupt_image", "corruption_sweep", "parse_severities", "Runner",
           "require_corruptions", "robustness_comparisons", "robustness_intervals", "robustness_table"]

GROUPS = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "fog", "brightness"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
}
"""The 15 ImageNet-C corruptions by group (arXiv 1903.12261, Fig. 1)."""
ALL = tuple(name for group in GROUPS.values() for name in group)


def parse_severities(text: str) -> tuple[int, ...]:
    """``"1-5"``, ``"3"`` or ``"1,3,5"`` -> sorted severities in 1..5.

    Raises:
        UserError: anything else.
    """
    found: set[int] = set()
    for part in str(text).replace(" ", "").split(","):
        m = re.fullmatch(r"([1-5])(?:-([1-5]))?", part)
        if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
            raise UserError(f"--severities {text!r}: expected severities 1..5 like 1-5, 3 or 1,3,5")
        found.update(range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1))
    return tuple(sorted(found))


@dataclass(frozen=True)
class CorruptionPlan:
    """Which corrupted copies of the images the robustness pass scores.

    Attributes:
        corruptions: Corruption names (of :data:`GROUPS`), in table order.
        severities: Severities in 1..5.
        max_images: Use N of the evaluated images, spread evenly over them (0 = all of them); see
            :meth:`image_indices`.
        seed: Seed from which each (image, corruption, severity) seed is derived.
    """

    corruptions: tuple[str, ...]
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    max_images: int = 0
    seed: int = 0

    def image_indices(self, num_images: int) -> list[int]:
        """Indices of the images the sweep scores among ``num_images``: all of them, or :attr:`max_images` of
        them evenly spaced from the first to the last (frames of a video sequence are alike, so the first N
        would be N near-copies of one scene)."""
        if not self.max_images or self.max_images >= num_images:
            return list(range(num_images))
        if self.max_images == 1:
            return [0]
        return sorted({round(k * (num_images - 1) / (self.max_images - 1)) for k in range(self.max_images)})

    @classmethod
    def parse(cls, names: list[str], severities: str = "1-5", max_images: int = 0, seed: int = 0) -> CorruptionPlan:
        """From ``--corruptions all|noise|blur|weather|digital|NAME ...`` and ``--severities``.

        Raises:
            UserError: an unknown group or corruption, bad severities, or ``max_images`` < 0.
        """
        chosen: list[str] = []
        for name in names or ["all"]:
            group = ALL if name == "all" else GROUPS.get(name, (name,) if name in ALL else None)
            if group is None:
                raise UserError(f"--corruptions {name!r}: expected all, {', '.join(GROUPS)} or one of {', '.join(ALL)}")
            chosen += [g for g in group if g not in chosen]
        if max_images < 0:
            raise UserError(f"--corruption-images {max_images}: expected an integer >= 0 (0 = all)")
        return cls(tuple(chosen), parse_severities(severities), max_images, seed)


def require_corruptions():
    """``imagecorruptions``, made to run on numpy 2 and scikit-image >= 0.19 (its 1.1.2 release calls
    ``gaussian(..., multichannel=True)`` and ``np.float_``) and to be seeded throughout (its ``impulse_noise``
    calls ``skimage.util.random_noise``, which draws from a fresh unseeded generator): the shims replace those
    names inside the package's own module only."""
    with warnings.catch_warnings():  # its 1.1.2 imports pkg_resources, which warns on import
        warnings.simplefilter("ignore")
        ic = require("imagecorruptions", "robustness", "--corruptions")
    mod = ic.corruptions
    if not getattr(mod, "_segbench_compat", False):
        gaussian = mod.gaussian

        def gaussian_compat(image, sigma=1, multichannel=None, **kw):
            if multichannel:
                kw["channel_axis"] = -1
            return gaussian(image, sigma=sigma, **kw)

        class NumpyCompat:
            float_ = np.float64

            def __getattr__(self, name):
                return getattr(np, name)

        class SkimageCompat:  # impulse_noise's random_noise draws from its own unseeded generator
            def __init__(self, sk):
                self._sk = sk
                self.util = self

            def random_noise(self, image, **kw):
                kw.setdefault("rng", np.random.default_rng(np.random.randint(2**31)))  # from the seeded state
                return self._sk.util.random_noise(image, **kw)

            def __getattr__(self, name):
                return getattr(self._sk, name)

        mod.gaussian, mod.np, mod.sk = gaussian_compat, NumpyCompat(), SkimageCompat(mod.sk)
        mod._segbench_compat = True
    return ic


@contextmanager
def _seeded(seed: int):
    """numpy's global generator (which the package draws from) seeded inside, restored after."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def corrupt_image(image: np.ndarray, corruption: str, severity: int, seed: int = 0, index: int = 0) -> np.ndarray:
    """One corrupted copy of an image, the same for the same (seed, index, corruption, severity).

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        corruption: A name of :data:`GROUPS`.
        severity: 1..5.
        seed: The run's seed.
        index: The image's index in the dataset.

    Returns:
        ``(H, W, 3)`` uint8 RGB.

    Raises:
        BackendUnavailable: ``imagecorruptions`` is not installed (``pip install 'segbench[robustness]'``).
        UserError: an unknown corruption or severity, or the package returned another size.
    """
    if corruption not in ALL or severity not in range(1, 6):
        raise UserError(f"corruption {corruption!r} severity {severity}: expected one of {', '.join(ALL)}, 1..5")
    ic = require_corruptions()
    words = np.random.SeedSequence([seed, index, ALL.index(corruption), severity]).generate_state(1)
    with _seeded(int(words[0])):
        out = ic.corrupt(image, corruption_name=corruption, severity=severity)
    out = np.clip(np.asarray(out), 0, 255).astype(np.uint8)
    if out.shape != image.shape:
        raise UserError(f"{corruption}: imagecorruptions returned {out.shape} for an image of {image.shape}")
    return out


@torch.inference_mode()
def corruption_sweep(models: dict, dataset, num_images: int, plan: CorruptionPlan, device: str = "cpu",
                     progress: bool = True, checkpoint: str | Path | None = None, resume: bool = False,
                     bootstrap: int = 0) -> dict:  # fmt: skip
    """mIoU of every model on every corrupted copy of the images.

    Args:
        models: Row label -> :class:`Runner`; each model returns logits ``(1, C, H, W)`` in the dataset's
            classes (mapped ones through their class mapping).
        dataset: A labelled :class:`~segbench.data.datasets.SegmentationDataset`.
        num_images: Images evaluated in the run; ``plan.image_indices(num_images)`` of them are used.
        plan: Corruptions, severities, images and seed.
        device: Where the models run.
        progress: A progress bar over (corruption, severity).
        checkpoint: A file (``.npz``) the finished cells are saved to after each cell, removed when the sweep
            ends; None: nothing saved.
        resume: Start from the cells already in ``checkpoint`` (when it exists).
        bootstrap: Resamples ``B`` of the swept images for 95% intervals (:func:`robustness_intervals`,
            seeded with ``plan.seed``); 0: none.

    Returns:
        ``{"corruptions", "severities", "num_images", "image_indices", "seed", "bootstrap", "models": {label:
        {"clean_miou", "miou": {corruption: [mIoU per severity]}, "mean": {corruption: mean over severities},
        "relative": {corruption: mean / clean}, "mean_miou", "relative_miou"}}}`` (fractions); with
        ``bootstrap`` each model also has ``clean_miou_interval``, ``mean_miou_interval``,
        ``relative_miou_interval`` (``[low, high]``) and ``mean_interval`` (``{corruption: [low, high]}``), and
        ``comparisons`` holds every pair's paired intervals (:func:`robustness_comparisons`; empty without).

    Raises:
        BackendUnavailable: ``imagecorruptions`` is not installed.
        UserError: ``resume`` with a checkpoint written by a sweep of other models (or weights), images,
            corruptions, severities or seed.
    """
    require_corruptions()
    items = [(i, dataset[i]) for i in plan.image_indices(num_images)]
    items = [(i, it) for i, it in items if "error" not in it and it.get("mask") is not None]
    cells = [(None, 0)] + [(c, s) for c in plan.corruptions for s in plan.severities]
    mats = {  # per cell (clean first) and image: (K, N, C, C)
        label: np.zeros((len(cells), len(items), r.num_classes, r.num_classes), dtype=np.int64)
        for label, r in models.items()
    }  # fmt: skip
    targets = {  # each model's labels of each image, made once for all the cells
        (i, label): torch.from_numpy(item["mask"] if r.mapping is None else r.mapping.map_labels(item["mask"]))
        .unsqueeze(0).to(device) for i, item in items for label, r in models.items()
    }  # fmt: skip
    key = _sweep_key(models, [i for i, _ in items], cells, plan.seed)
    done = _restore(Path(checkpoint), key, mats) if resume and checkpoint and Path(checkpoint).exists() else 0
    bar = tqdm(total=len(cells), initial=done, desc="corruptions", disable=not progress, leave=False)
    for k, (corruption, severity) in list(enumerate(cells))[done:]:
        for n, (i, item) in enumerate(items):
            image = item["image"] if corruption is None else corrupt_image(
                item["image"], corruption, severity, plan.seed, i)  # fmt: skip
            for label, r in models.items():
                cm = ConfusionMatrix(r.num_classes, device=device)
                pred = predict_mask(r.model, image, r.preprocessing, device)
                cm.update(torch.from_numpy(pred).unsqueeze(0).to(device), targets[i, label])
                mats[label][k, n] = cm.mat.cpu().numpy()
        if checkpoint:
            _save(Path(checkpoint), key, mats, k + 1)
        bar.update()
    bar.close()
    if checkpoint:
        Path(checkpoint).unlink(missing_ok=True)
    tables = {}
    for label, m in mats.items():
        tables[label] = robustness_table(m.sum(1), plan)
        if bootstrap and items:
            tables[label].update(robustness_intervals(m, plan, bootstrap))
    return {"corruptions": list(plan.corruptions), "severities": list(plan.severities), "num_images": len(items),
            "image_indices": [i for i, _ in items], "seed": plan.seed, "bootstrap": bootstrap,
            "models": tables, "comparisons": robustness_comparisons(mats, plan, bootstrap) if bootstrap and items else []}  # fmt: skip


def _fingerprint(model) -> str:
    """SHA-256 of a module's state dict (names, dtypes, shapes and values); that of nothing for another
    callable (an external runtime or a backend's predictor: its label identifies it)."""
    h = hashlib.sha256()
    state = model.state_dict() if isinstance(model, torch.nn.Module) else {}
    for name, t in state.items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _sweep_key(models: dict, image_indices: list[int], cells: list, seed: int) -> str:
    """What a checkpoint's cells depend on: every model (label, fingerprint, preprocessing, classes), the images,
    the cells and the seed."""
    spec = {"models": [[label, _fingerprint(r.model), r.preprocessing.to_dict(), r.num_classes]
                       for label, r in models.items()],
            "images": image_indices, "cells": [list(c) for c in cells], "seed": seed,
            "format": "per-image matrices (K, N, C, C)"}  # fmt: skip
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()


def _save(path: Path, key: str, mats: dict, done: int) -> None:
    buf = io.BytesIO()
    np.savez(buf, key=np.array(key), done=np.array(done), **{f"mats_{j}": m for j, m in enumerate(mats.values())})
    write_bytes_atomic(path, buf.getvalue())


def _restore(path: Path, key: str, mats: dict) -> int:
    """Copy the finished cells of the checkpoint ``path`` into ``mats``; returns how many there are.

    Raises:
        UserError: the file is unreadable or was written by another sweep.
    """
    try:
        with np.load(path) as z:
            stored, done = str(z["key"]), int(z["done"])
            saved = [z[f"mats_{j}"][:done] for j in range(len(mats))] if stored == key else []
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"{path}: not a readable corruption checkpoint ({exc}); remove it to start again") from None
    if stored != key:
        raise UserError(f"{path}: written by a sweep of other models, weights, images or corruptions; "
                        "run without --resume (or into another --output) to start again")  # fmt: skip
    for m, s in zip(mats.values(), saved):
        m[:done] = s
    return done


class Runner(NamedTuple):
    """One model of a corruption sweep.

    Attributes:
        model: Maps ``(1, 3, H, W)`` to logits ``(1, C, H, W)`` over the dataset's ``C`` classes.
        preprocessing: What the model expects of its input (:class:`segbench.preprocessing.Preprocessing`).
        num_classes: ``C``.
        mapping: The model's :class:`~segbench.external.classmap.ClassMapping` onto the dataset's classes
            (labels of dataset classes nothing maps onto are ignored); None: the same classes.
    """

    model: torch.nn.Module
    preprocessing: Preprocessing
    num_classes: int
    mapping: object = None


