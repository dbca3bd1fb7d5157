"""The training loop: SGD with momentum, poly LR, cross-entropy with ignore index, periodic validation.

Read it top to bottom: data is loaded once into memory, each iteration samples a batch, augments image and
mask together, steps the optimizer, and every ``val_every`` iterations measures mIoU on the validation
split and writes ``last.pt`` (and ``best.pt`` when mIoU improves). ``last.pt`` holds everything needed to
resume exactly: model, optimizer, iteration, RNG states and the resolved config.

Run folder: ``config.yaml`` (resolved), ``metrics.csv``, ``last.pt``, ``best.pt``.
"""

from __future__ import annotations

import csv
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from tqdm import tqdm

from segbench.config import TrainConfig, config_to_dict
from segbench.data.classes import IGNORE_INDEX
from segbench.data.datasets import SegmentationDataset, open_dataset
from segbench.data.io import write_bytes_atomic
from segbench.data.transforms import normalize, to_tensor_pair, train_transform
from segbench.engine.checkpoint import save_checkpoint
from segbench.engine.evaluate import evaluate
from segbench.errors import UserError
from segbench.models import build_model, load_model
from segbench.models.weights import IMAGENET_MEAN, IMAGENET_STD

CSV_FIELDS = ["iter", "epoch", "loss", "lr", "miou", "pixel_accuracy", "mean_accuracy", "elapsed_s", "img_s"]


def poly_lr(base_lr: float, it: int, total: int, power: float, warmup: int) -> float:
    """Poly schedule ``base_lr * (1 - it/total) ** power`` with optional linear warm-up from ``base_lr/10``."""
    lr = base_lr * (1.0 - it / total) ** power
    if warmup and it < warmup:
        lr *= 0.1 + 0.9 * it / warmup
    return lr


def median_frequency_weights(masks: list[torch.Tensor], num_classes: int) -> torch.Tensor:
    """Median-frequency balancing (Eigen & Fergus, arXiv 1411.4734): ``w_c = median(f) / f_c`` where
    ``f_c`` is the pixel frequency of class c over the images that contain it."""
    counts = torch.zeros(num_classes, dtype=torch.float64)
    image_pixels = torch.zeros(num_classes, dtype=torch.float64)
    for m in masks:
        valid = m[m != IGNORE_INDEX].long()
        c = torch.bincount(valid, minlength=num_classes)[:num_classes].double()
        counts += c
        image_pixels += (c > 0).double() * valid.numel()
    freq = counts / image_pixels.clamp(min=1)
    present = freq > 0
    weights = torch.zeros(num_classes, dtype=torch.float64)
    weights[present] = freq[present].median() / freq[present]
    return weights.float()


def _load_split(ds: SegmentationDataset, split: str) -> tuple[list, list, list[dict]]:
    images, masks, skipped = [], [], []
    for i in tqdm(range(len(ds)), desc=f"loading {split}", unit="img", leave=False):
        item = ds[i]
        if "error" in item:
            skipped.append({"file": item["path"], "reason": item["error"]})
            continue
        img, mask = to_tensor_pair(item["image"], item["mask"])
        images.append(img)
        masks.append(mask)
    return images, masks, skipped


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> dict:
    """Train ``cfg.model.name`` on ``cfg.data.root``; returns a summary dict (best mIoU, paths, timings).

    Raises:
        UserError: missing data, an existing run folder without ``resume``, bad model options.
    """
    out = Path(cfg.out_dir)
    last_path = out / "last.pt"
    if last_path.exists() and not resume:
        raise UserError(f"{out}: a run already exists there; pass --resume to continue it or choose another out_dir")
    if resume and not last_path.exists():
        raise UserError(f"{last_path}: nothing to resume")
    for key in ("iters", "batch_size", "val_every", "log_every"):
        if getattr(cfg, key) < 1:
            raise UserError(f"{key}: must be at least 1, got {getattr(cfg, key)}")
    if not cfg.data.root:
        raise UserError("data.root: set the dataset folder (in the recipe or with --set data.root=DIR)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = cfg.device

    train_ds = open_dataset(cfg.data.root, cfg.data.train_split)
    val_ds = open_dataset(cfg.data.root, cfg.data.val_split)
    if not train_ds.labelled:
        raise UserError(f"{cfg.data.root}: split {cfg.data.train_split!r} has no labels to train on")
    class_set = train_ds.class_set
    num_classes = class_set.num_classes
    images, masks, skipped = _load_split(train_ds, cfg.data.train_split)
    if not images:
        raise UserError(f"{cfg.data.root}: no usable training images ({len(skipped)} skipped)")
    short_side = int(np.median([min(im.shape[-2:]) for im in images]))
    augment = train_transform(tuple(cfg.data.crop_size), tuple(cfg.data.scale_range), cfg.data.hflip, short_side)

    if cfg.model.init == "none":
        model = build_model(cfg.model.name, num_classes=num_classes, aux_loss=cfg.model.aux_loss)
    else:
        loaded = load_model(cfg.model.name, weights=cfg.model.init)
        if loaded.info.num_classes != num_classes:
            raise UserError(f"model.init: {cfg.model.init} has {loaded.info.num_classes} classes, data has {num_classes}")
        model = loaded.model
    model.to(device)
    class_weights = None
    if cfg.class_weighting == "median_frequency":
        class_weights = median_frequency_weights(masks, num_classes).to(device)
    elif cfg.class_weighting != "none":
        raise UserError(f"class_weighting: expected 'none' or 'median_frequency', got {cfg.class_weighting!r}")

    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": cfg.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.optim.lr,
        momentum=cfg.optim.momentum,
    )
    meta = {
        "arch": cfg.model.name,
        "num_classes": num_classes,
        "class_names": list(class_set.names),
        "palette": [list(c) for c in class_set.palette],
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "config": config_to_dict(cfg),
    }

    start_iter, best_miou, elapsed_before = 0, -1.0, 0.0
    if resume:
        state = torch.load(last_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_iter, best_miou = state["iteration"], state["best_miou"]
        elapsed_before = state.get("elapsed_s", 0.0)
        _set_rng_state(state["rng"])
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(out / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False).encode())
        write_bytes_atomic(out / "metrics.csv", (",".join(CSV_FIELDS) + "\n").encode())
        if skipped:
            write_bytes_atomic(out / "skipped.txt", "".join(f"{s['file']}\t{s['reason']}\n" for s in skipped).encode())

    n = len(images)
    steps_per_epoch = max(1, n // cfg.batch_size)
    t0 = time.perf_counter()
    loss_sum, loss_count, images_seen, last_log_t = 0.0, 0, 0, t0
    model.train()
    bar = tqdm(range(start_iter, cfg.iters), initial=start_iter, total=cfg.iters, desc="train", disable=not progress)
    for it in bar:
        lr = poly_lr(cfg.optim.lr, it, cfg.iters, cfg.optim.poly_power, cfg.optim.warmup_iters)
        for g in optimizer.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, n, (cfg.batch_size,)).tolist()
        pairs = [augment(images[i], masks[i]) for i in idx]
        x = normalize(torch.stack([p[0] for p in pairs]).to(device), IMAGENET_MEAN, IMAGENET_STD)
        y = torch.stack([p[1] for p in pairs]).to(device).long()
        logits, aux = model(x, with_aux=True)
        loss = F.cross_entropy(logits, y, weight=class_weights, ignore_index=IGNORE_INDEX)
        if aux is not None:
            loss = loss + cfg.aux_weight * F.cross_entropy(aux, y, weight=class_weights, ignore_index=IGNORE_INDEX)
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"loss is {loss.item()} at iteration {it}; lower optim.lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item()
        loss_count += 1
        images_seen += cfg.batch_size
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.2e}", best_miou=f"{max(best_miou, 0) * 100:.1f}")

        done = it + 1
        row = None
        if done % cfg.log_every == 0 or done % cfg.val_every == 0 or done == cfg.iters:
            now = time.perf_counter()
            row = {
                "iter": done,
                "epoch": f"{done / steps_per_epoch:.2f}",
                "loss": f"{loss_sum / max(loss_count, 1):.4f}",
                "lr": f"{lr:.6g}",
                "elapsed_s": f"{elapsed_before + now - t0:.1f}",
                "img_s": f"{images_seen / max(now - last_log_t, 1e-9):.2f}",
            }
            loss_sum, loss_count, images_seen, last_log_t = 0.0, 0, 0, now
        if done % cfg.val_every == 0 or done == cfg.iters:
            res = evaluate(
                model, val_ds, num_classes, IMAGENET_MEAN, IMAGENET_STD, device,
                max_images=cfg.data.val_max_images, progress=False,
            )
            model.train()
            m = res.metrics
            row.update(miou=f"{m.miou:.4f}", pixel_accuracy=f"{m.pixel_accuracy:.4f}", mean_accuracy=f"{m.mean_accuracy:.4f}")
            tqdm.write(f"iter {done}: val mIoU {m.miou * 100:.2f}  pixel acc {m.pixel_accuracy * 100:.2f}")
            improved = m.miou > best_miou
            best_miou = max(best_miou, m.miou)
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "iteration": done,
                "best_miou": best_miou,
                "elapsed_s": elapsed_before + time.perf_counter() - t0,
                "rng": _rng_state(),
                "meta": {**meta, "iteration": done, "val": m.to_dict(list(class_set.names))},
            }
            if improved:
                save_checkpoint(out / "best.pt", state)
            save_checkpoint(last_path, state)
        if row is not None:
            with open(out / "metrics.csv", "a", newline="") as f:
                csv.DictWriter(f, CSV_FIELDS).writerow(row)
    bar.close()
    return {
        "out_dir": str(out),
        "best_miou": best_miou,
        "iters": cfg.iters,
        "elapsed_s": elapsed_before + time.perf_counter() - t0,
        "skipped": skipped,
    }
