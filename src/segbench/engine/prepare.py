"""Training set-up, before the first iteration: options checked, seeds, the training images in memory and
their augmentation, the model with its loss, optimiser and schedule, and the batch stream.

The order of these steps is part of the training stream: each draws from the seeded global RNG (model
initialisation first), so a run and its resume see the same numbers.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from segbench.classes import IGNORE_INDEX
from segbench.config import TrainConfig, check_ranges, config_to_dict
from segbench.data.datasets import SegmentationDataset, open_dataset, select_groups
from segbench.data.loader import RankSampler, SeededSamples, collate_pairs
from segbench.data.transforms import to_tensor_pair, train_transform
from segbench.engine import distributed as dist_utils
from segbench.engine.evaluate import evaluate
from segbench.engine.init import initial_model
from segbench.engine.optim import build_optimizer
from segbench.errors import UserError, threads_warning
from segbench.losses import SegLoss, inverse_log_weights, median_frequency_weights
from segbench.metrics import ConfusionMatrix, SegMetrics
from segbench.preprocessing import Preprocessing

CLASS_WEIGHTING = {"none": None, "median_frequency": median_frequency_weights, "inverse_log": inverse_log_weights}

TRAIN_PREPROCESSING = Preprocessing()
"""The input preprocessing of the networks ``segbench train`` trains (ImageNet's normalisation, which the
encoders' ImageNet weights expect); written into the weights' metadata."""


AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def load_split(ds: SegmentationDataset, split: str, progress: bool) -> tuple[list, list, list[dict]]:
    """Every readable image and mask of ``ds`` as tensors, and the skipped files (``{"file", "reason"}``)."""
    images, masks, skipped = [], [], []
    for i in tqdm(range(len(ds)), desc=f"loading {split}", unit="img", leave=False, disable=not progress):
        item = ds[i]
        if "error" in item:
            skipped.append({"file": item["path"], "reason": item["error"]})
            continue
        img, mask = to_tensor_pair(item["image"], item["mask"])
        images.append(img)
        masks.append(mask)
    return images, masks, skipped


def inline_batches(images: list, masks: list, augment, batch_size: int):
    """segbench's original stream: indices drawn with replacement and augmented in this process, all
    from the global RNG (whose state the checkpoint carries). Yields ``(N, 3, h, w)``, ``(N, h, w)`` uint8."""
    n = len(images)
    while True:
        idx = torch.randint(0, n, (batch_size,)).tolist()
        pairs = [augment(images[i], masks[i]) for i in idx]
        yield torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def validate(model: nn.Module, val_ds: SegmentationDataset, num_classes: int, cfg: TrainConfig, dinfo) -> SegMetrics:
    """mIoU on the validation split; each process takes every world_size-th image and the confusion
    matrices are summed over processes."""
    if not dinfo.distributed:
        return evaluate(model, val_ds, num_classes, TRAIN_PREPROCESSING, device=dinfo.device,
                        max_images=cfg.data.val_max_images, progress=False).metrics  # fmt: skip
    n = len(val_ds) if not cfg.data.val_max_images else min(cfg.data.val_max_images, len(val_ds))
    shard = val_ds.subset(val_ds.pairs[:n][dinfo.rank :: dinfo.world_size])
    res = evaluate(model, shard, num_classes, TRAIN_PREPROCESSING, device=dinfo.device, progress=False)
    cm = ConfusionMatrix(num_classes, device=dinfo.device)
    if res.metrics is not None:
        cm.mat = torch.tensor(res.metrics.confusion, dtype=torch.int64, device=dinfo.device)
    cm.all_reduce()
    return cm.compute()


def check_options(cfg: TrainConfig, dinfo) -> None:
    """Raise a :class:`UserError` naming the key of the first option out of range or that cannot work here."""
    check_ranges(cfg)  # a config built in Python, not from a recipe, is checked here
    if cfg.class_weighting not in CLASS_WEIGHTING:
        raise UserError(
            f"class_weighting: expected one of {', '.join(map(repr, CLASS_WEIGHTING))}, got {cfg.class_weighting!r}"
        )
    if cfg.amp not in AMP_DTYPES:
        raise UserError(f"amp: expected one of {', '.join(AMP_DTYPES)}, got {cfg.amp!r}")
    if cfg.amp == "fp16" and dinfo.device.type != "cuda":
        raise UserError("amp: fp16 needs CUDA (it trains with a gradient scaler there); use amp=bf16 on CPU")
    if cfg.batch_size % dinfo.world_size:
        raise UserError(
            f"batch_size: the global batch {cfg.batch_size} must divide evenly over {dinfo.world_size} processes"
        )
    if not cfg.data.root:
        raise UserError("data.root: set the dataset folder (in the recipe or with --set data.root=DIR)")


@dataclass
class TrainData:
    """The training images in memory (``(3, H, W)`` uint8 and ``(H, W)`` uint8 masks), their augmentation, the
    validation split (read per image) and the files skipped while loading."""

    images: list
    masks: list
    skipped: list[dict]
    augment: object
    val_ds: SegmentationDataset
    class_set: object


@dataclass
@dataclass
class TrainSetup:
    """The model, its loss, optimiser, schedule, gradient scaler and the checkpoint's ``meta``."""

    model: nn.Module
    init_report: str | None
    criterion: SegLoss
    optimizer: torch.optim.Optimizer
    lr_mults: list[float]
    schedule: dict
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler
    meta: dict


def seed_and_threads(cfg: TrainConfig) -> None:
    """Torch threads, deterministic algorithms, and the Python, numpy and torch seeds of ``cfg``."""
    if cfg.threads:
        warning = threads_warning(cfg.threads, "threads")
        if warning:
            print(f"segbench: {warning}", file=sys.stderr)
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)


def prepare_data(cfg: TrainConfig, say, progress: bool) -> TrainData:
    """Training images in memory, augmented per batch; the validation split read per image.

    Raises:
        UserError: the training split has no labels or no usable image.
    """
    train_ds = open_dataset(cfg.data.root, cfg.data.train_split)
    val_ds = open_dataset(cfg.data.root, cfg.data.val_split)
    if cfg.data.val_groups:
        train_ds = select_groups(train_ds, cfg.data.split_by, cfg.data.val_groups, keep=False)
        val_ds = select_groups(val_ds, cfg.data.split_by, cfg.data.val_groups, keep=True)
        say(f"split_by {cfg.data.split_by!r}: {len(train_ds)} training and {len(val_ds)} validation files, "
            f"validation groups {', '.join(cfg.data.val_groups)}")  # fmt: skip
    if not train_ds.labelled:
        raise UserError(f"{cfg.data.root}: split {cfg.data.train_split!r} has no labels to train on")
    images, masks, skipped = load_split(train_ds, cfg.data.train_split, progress)
    if not images:
        raise UserError(f"{cfg.data.root}: no usable training images ({len(skipped)} skipped)")
    short_side = int(np.median([min(im.shape[-2:]) for im in images]))
    augment = train_transform(
        tuple(cfg.data.crop_size), tuple(cfg.data.scale_range), cfg.data.hflip, short_side, cfg.data.photometric,
        brightness_range=tuple(cfg.data.brightness_range), gamma_range=tuple(cfg.data.gamma_range) or None,
        blur_prob=cfg.data.blur_prob, noise_std=cfg.data.noise_std,
    )
    return TrainData(images, masks, skipped, augment, val_ds, train_ds.class_set)


def build_setup(cfg: TrainConfig, data: TrainData, dinfo, say) -> TrainSetup:
    """Model (on the device), loss mix with optional class weights, optimiser groups and the poly schedule.

    Raises:
        UserError: bad ``model.init``/``model.encoder_init`` or ``loss.*`` options.
    """
    num_classes, device = data.class_set.num_classes, dinfo.device
    model, init_report = initial_model(cfg, num_classes)
    if init_report:
        say(init_report)
    if cfg.sync_bn and dinfo.distributed:
        model = dist_utils.convert_sync_batchnorm(model, device)
    elif cfg.sync_bn:
        say("sync_bn: a single process, so batch-norm statistics are the batch's as without it")
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    class_weights = None
    if CLASS_WEIGHTING[cfg.class_weighting] is not None:
        class_weights = CLASS_WEIGHTING[cfg.class_weighting](data.masks, num_classes).to(device)
    try:
        criterion = SegLoss(**vars(cfg.loss), class_weights=class_weights, ignore_index=IGNORE_INDEX)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    optimizer, group_names, lr_mults = build_optimizer(model, cfg.optim)
    # the schedule is a function of the iteration; the checkpoint records its parameters
    schedule = {"base_lr": cfg.optim.lr, "power": cfg.optim.poly_power, "warmup_iters": cfg.optim.warmup_iters,
                "iters": cfg.iters, "groups": group_names, "lr_mults": lr_mults}  # fmt: skip
    meta = {
        "arch": cfg.model.name,
        "num_classes": num_classes,
        "class_names": list(data.class_set.names),
        "palette": [list(c) for c in data.class_set.palette],
        **TRAIN_PREPROCESSING.to_dict(),
        "config": config_to_dict(cfg),
    }
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp == "fp16")
    return TrainSetup(model, init_report, criterion, optimizer, lr_mults, schedule, AMP_DTYPES[cfg.amp], scaler, meta)


def batch_stream(cfg: TrainConfig, data: TrainData, start_iter: int, dinfo):
    """Batches ``(N, 3, h, w)`` uint8 and ``(N, h, w)``: from DataLoader workers with their seeded stream
    (workers or several processes), else augmented in this process from the global RNG."""
    if cfg.data.num_workers == 0 and not dinfo.distributed:
        return inline_batches(data.images, data.masks, data.augment, cfg.batch_size)
    loader = torch.utils.data.DataLoader(
        SeededSamples(data.images, data.masks, data.augment, cfg.seed),
        batch_size=cfg.batch_size // dinfo.world_size,
        sampler=RankSampler(start_iter, cfg.iters, cfg.batch_size, dinfo.rank, dinfo.world_size),
        num_workers=cfg.data.num_workers,
        collate_fn=collate_pairs,
        pin_memory=dinfo.device.type == "cuda",
        generator=torch.Generator(),  # the loader's own seed draw must not touch the global RNG
        prefetch_factor=4 if cfg.data.num_workers else None,
    )
    return iter(loader)
