"""Training configuration: dataclasses are the source of truth; YAML recipes are loaded strictly.

A recipe is plain data mirroring :class:`TrainConfig`. Unknown keys and wrong types are errors naming the
key and the valid ones. ``--set a.b=value`` overrides any field (value parsed as YAML).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from segbench.errors import UserError
from segbench.files import read_text
from segbench.options import check, recipe_keys


@dataclass
class DataConfig:
    root: str = ""  # dataset folder, any layout of `segbench datasets` (Cityscapes, ADE20K, VOC, CamVid, folder)
    # a split of the dataset (CamVid: train, val, trainval, seq_train, seq_val, or a union such as train+val)
    train_split: str = "train"
    val_split: str = "val"
    # Group-disjoint validation for any dataset: a regular expression whose first group, searched in each
    # file name, names its group (a sequence, site or patient: "^([^_]+)_" gives CamVid's drive). With
    # val_groups, training uses the train split's files outside those groups and validation the val split's
    # files inside them (give both splits the same value, e.g. train+val, to cut one pool in two).
    split_by: str = ""
    val_groups: list[str] = field(default_factory=list)
    crop_size: list[int] = field(default_factory=lambda: [360, 480])  # training crop H, W
    scale_range: list[float] = field(default_factory=lambda: [0.5, 2.0])  # random rescale factors
    hflip: bool = True
    photometric: bool = False  # random brightness/contrast/saturation/hue on the image (not the mask)
    brightness_range: list[float] = field(default_factory=lambda: [0.875, 1.125])  # photometric brightness factors
    gamma_range: list[float] = field(default_factory=list)  # random gamma in [lo, hi] with probability 0.5 ([] = off)
    blur_prob: float = 0.0  # Gaussian blur (kernel 5, sigma 0.1-2 px) with this probability
    noise_std: float = 0.0  # additive Gaussian noise, std drawn in [0, noise_std] (0..255 scale), probability 0.5
    val_max_images: int = 0  # validate on the first N val images only (0 = all)
    # DataLoader worker processes that augment batches ahead of the step. 0: augment in the training
    # process from the global RNG (segbench's original stream). >= 1, or several processes: every sample
    # is drawn and augmented from its own seed (seed, iteration, slot), so the batches do not depend on
    # the number of workers or processes.
    num_workers: int = 0


@dataclass
class ModelConfig:
    name: str = "fast_scnn"
    # "none" (random), a weights tag or a checkpoint path to start from; with another number of classes
    # the classifier (and auxiliary head) are rebuilt and the rest loads
    init: str = "none"
    # "none", or a weights tag or checkpoint of any network with the same encoder class (for example
    # lraspp_mobilenet_v3_large.camvid for deeplabv3_mobilenet_v3_large): only its encoder's tensors load
    encoder_init: str = "none"
    aux_loss: bool = False


@dataclass
class OptimConfig:
    name: str = "sgd"  # "sgd" (with momentum) or "adamw"
    lr: float = 0.01  # the head's learning rate (and the backbone's unless backbone_lr_mult)
    momentum: float = 0.9  # SGD only
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # AdamW only
    weight_decay: float = 1e-4
    poly_power: float = 0.9  # lr = base_lr * (1 - iter / iters) ** poly_power, set every iteration
    warmup_iters: int = 0  # linear warm-up from lr/10 over these iterations
    backbone_lr_mult: float = 1.0  # lr of the encoder/backbone parameters = lr * this (e.g. 0.1)
    no_decay_norm_bias: bool = True  # no weight decay on 1-D parameters (norm weights and biases)
    grad_clip_norm: float = 0.0  # clip the global gradient L2 norm to this (0 = off)


@dataclass
class LossConfig:
    ce: float = 1.0  # weight of cross-entropy (class weights from class_weighting)
    ohem: float = 0.0  # weight of OHEM cross-entropy (class weights too)
    dice: float = 0.0  # weight of the soft Dice loss
    ohem_thresh: float = 0.7  # OHEM: pixels whose true-class probability is below this are hard
    ohem_min_kept: int = 100000  # OHEM: at least this many pixels kept per image
    dice_smooth: float = 1.0
    label_smoothing: float = 0.0  # CE and OHEM targets (1 - e) * onehot + e / C (arXiv 1512.00567); 0 = off


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    iters: int = 1000
    batch_size: int = 8  # global batch: split evenly over the processes of a multi-process run
    aux_weight: float = 0.4  # weight of the auxiliary loss (the same loss mix) when model.aux_loss
    # exponential moving average of the weights, validated and saved as the model (0 = off; e.g. 0.999)
    ema_decay: float = 0.0
    # "none", "median_frequency" or "inverse_log" (computed from the training labels)
    class_weighting: str = "none"
    amp: str = "none"  # mixed precision: "none", "bf16" (CPU or CUDA) or "fp16" (CUDA, with a gradient scaler)
    channels_last: bool = False  # NHWC memory format for the model and its inputs
    sync_bn: bool = False  # batch-norm statistics over all processes of a multi-process run
    val_every: int = 200  # validate (mIoU) every N iterations, and at the end
    ckpt_every: int = 0  # also write last.pt every N iterations (0 = only when validating)
    log_every: int = 10
    tensorboard: bool = True  # TensorBoard logs in OUT/tb when the tensorboard package is installed
    seed: int = 0
    deterministic: bool = False  # torch.use_deterministic_algorithms (bit-exact repeats; may be slower)
    device: str = "cpu"  # "cpu" or "cuda" (each process of a multi-process run takes cuda:LOCAL_RANK)
    threads: int = 0  # torch CPU threads (0 = torch's default)
    out_dir: str = "runs/train"

    def validate(self) -> TrainConfig:
        """This config, when every value is in range (:func:`check_ranges`); for a config built in Python.

        Raises:
            UserError: the first value out of range, its key named.
        """
        check_ranges(self)
        return self


def _check_type(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"config key {key!r}: expected a mapping, got {type(value).__name__}")
        return _from_dict(tp, value, key + ".")
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config key {key!r}: expected a list, got {value!r}")
        return [_check_type(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _check_type(value, option, key)
            except UserError:
                continue
        raise UserError(f"config key {key!r}: {value!r} is not {tp}")
    if tp is type(None):
        if value is not None:
            raise UserError(f"config key {key!r}: expected null")
        return None
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp in (int, float, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise UserError(f"config key {key!r}: expected {tp.__name__}, got {value!r}")
        return value
    return value


def _from_dict(cls, data: dict, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise UserError(
            f"unknown config key '{prefix}{unknown[0]}'; valid keys: {', '.join(prefix + n for n in names)}"
        )
    kwargs = {k: _check_type(v, hints[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def config_from_dict(data: dict) -> TrainConfig:
    """Build a :class:`TrainConfig` from plain data and check every value's range (:func:`check_ranges`).

    Raises:
        UserError: unknown key, wrong type or a value out of range (the key named).
    """
    cfg = _from_dict(TrainConfig, data or {})
    check_ranges(cfg)
    return cfg


def _get(cfg: TrainConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _check_pair(key: str, values: list, low: float) -> None:
    if len(values) != 2 or any(v <= low for v in values) or values != sorted(values):
        raise UserError(f"{key}: expected 2 ascending values above {low:g}, got {values}")


def check_ranges(cfg: TrainConfig) -> None:
    """Check every value of a recipe against its row of :data:`segbench.options.OPTIONS` (sizes and counts
    positive, probabilities within 0..1, choices among theirs), then the factor ranges (ascending, above 0).

    Raises:
        UserError: the first value out of range, its key named with what was expected.
    """
    for key in recipe_keys():
        check(key, _get(cfg, key))
    _check_pair("data.scale_range", cfg.data.scale_range, 0.0)
    _check_pair("data.brightness_range", cfg.data.brightness_range, 0.0)
    if cfg.data.gamma_range:
        _check_pair("data.gamma_range", cfg.data.gamma_range, 0.0)
    if len(cfg.optim.betas) != 2 or not all(0.0 <= b < 1.0 for b in cfg.optim.betas):
        raise UserError(f"optim.betas: expected 2 values within 0..1 (1 excluded), got {cfg.optim.betas}")
    if cfg.data.val_groups and not cfg.data.split_by:
        raise UserError("data.val_groups: needs data.split_by, the pattern that names each file's group")


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` overrides (value parsed as YAML) to the plain-data config.

    Raises:
        UserError: an override without ``=``, or a value that is not YAML (the key named).
    """
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item!r}: expected key=value, for example optim.lr=0.01")
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {item!r}: {p!r} is not a section")
        try:
            node[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
            raise UserError(f"--set {key}: the value {raw!r} is not YAML ({problem}); quote a string, "
                            "e.g. key='[a'") from None
    return data


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """Load a YAML recipe and apply ``--set`` overrides.

    Raises:
        UserError: missing or unparsable file, unknown key, wrong type.
    """
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no such recipe file")
        try:
            data = yaml.safe_load(read_text(path, "recipe")) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise UserError(f"{path}: a recipe must be a mapping of keys to values")
    return config_from_dict(apply_overrides(data, list(overrides)))


def config_to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)
