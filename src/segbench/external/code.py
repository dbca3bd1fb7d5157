"""Networks built by code: ``py:package.module:function`` (your own builder) and ``smp:ARCH:ENCODER[:CLASSES]``
(segmentation_models_pytorch, the ``smp`` extra).

``py:`` imports the module (the current folder first on the import path) and calls the function without
arguments; it must return an ``nn.Module`` whose forward maps ``(N, 3, H, W)`` to logits ``(N, C, H, W)``.
Importing runs the module's code: the spec names code on the user's own import path, so naming it is the
user's decision to run it and ``--trust-remote-code`` (for files someone else made) is not asked for.

``smp:`` builds the network offline (``encoder_weights=None``): random weights with ``--weights none``, or a
local state_dict (``--weights FILE``: a raw state_dict or a segbench ``.pt``/``.safetensors`` checkpoint).
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from segbench.errors import UserError, first_line, require
from segbench.external.files import _num_classes
from segbench.external.inputs import ExternalInfo, ModelInputs, read_class_file, resolve_info
from segbench.models.pretrained import load_state_strict, read_checkpoint
from segbench.preprocessing import Resized

__all__ = ["load_py", "load_smp"]


def _import(module_name: str, spec: str):
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"{spec}: cannot import {module_name!r} ({first_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing
        raise UserError(f"{spec}: importing {module_name!r} failed ({first_line(exc)})") from None


def load_py(spec: str, inputs: ModelInputs | None = None) -> tuple[nn.Module, ExternalInfo]:
    """The module returned by ``function()`` of ``py:package.module:function``.

    Raises:
        UserError: a malformed spec, a module that cannot be imported, no such function, a function that
            fails or does not return an ``nn.Module`` mapping an image to logits.
    """
    target = spec[len("py:") :]
    module_name, _, func_name = target.partition(":")
    if not module_name or not func_name or not all(p.isidentifier() for p in module_name.split(".")):
        raise UserError(f"{spec}: expected py:package.module:function")
    func = getattr(_import(module_name, spec), func_name, None)
    if not callable(func):
        raise UserError(f"{spec}: {module_name} has no function {func_name!r}")
    try:
        model = func()
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{spec}: {func_name}() failed ({first_line(exc)})") from None
    if not isinstance(model, nn.Module):
        raise UserError(f"{spec}: {func_name}() returned {type(model).__name__}, not a torch.nn.Module")
    model.eval()
    num_classes = _num_classes(model, Path(spec))
    info = resolve_info(label=spec, kind="py", source=spec, num_classes=num_classes,
                        meta=dict(getattr(model, "segbench_meta", None) or {}), inputs=inputs)  # fmt: skip
    return Resized(model, info.preprocessing), info


def _smp_classes(state: dict | None, inputs: ModelInputs | None, given: int | None, spec: str) -> int:
    if state is not None:
        heads = [k for k in state if k.startswith("segmentation_head.") and k.endswith(".weight") and state[k].ndim == 4]
        if heads:
            return int(state[heads[-1]].shape[0])
    if given is not None:
        return given
    if inputs is not None and inputs.classes is not None:
        return len(read_class_file(inputs.classes)[0])
    raise UserError(f"{spec}: how many classes? use smp:ARCH:ENCODER:CLASSES or --classes FILE")


def load_smp(spec: str, weights: str | None, inputs: ModelInputs | None = None) -> tuple[nn.Module, ExternalInfo]:
    """A segmentation_models_pytorch network, built offline, with random (``weights="none"``) or local weights.

    Raises:
        UserError: segmentation_models_pytorch missing, a malformed spec, an unknown architecture or
            encoder, no ``weights`` given, or weights that do not fit.
    """
    parts = spec.split(":")
    if len(parts) not in (3, 4) or not parts[1] or not parts[2]:
        raise UserError(f"{spec}: expected smp:ARCH:ENCODER or smp:ARCH:ENCODER:CLASSES (e.g. smp:Unet:resnet34:11)")
    smp = require("segmentation_models_pytorch", "smp", f"{spec}")
    arch, encoder = parts[1], parts[2]
    given = None
    if len(parts) == 4:
        if not parts[3].isdigit() or int(parts[3]) < 1:
            raise UserError(f"{spec}: CLASSES must be a positive number, got {parts[3]!r}")
        given = int(parts[3])
    known = {cls.__name__.lower(): cls for cls in smp.MODEL_ARCHITECTURES_MAPPING.values()}
    builder = known.get(arch.lower())
    if builder is None or not inspect.isclass(builder):
        raise UserError(f"{spec}: unknown smp architecture {arch!r}; available: "
                        f"{', '.join(sorted(c.__name__ for c in known.values()))}")  # fmt: skip
    if not weights:
        raise UserError(f"{spec}: which weights? --weights none (random initialisation) or --weights FILE (local)")
    state = None
    if weights != "none":
        state, _ = read_checkpoint(Path(weights))
    num_classes = _smp_classes(state, inputs, given, spec)
    try:
        model = builder(encoder_name=encoder, encoder_weights=None, classes=num_classes)
    except Exception as exc:  # noqa: BLE001 - smp raises KeyError/ValueError for unknown encoders
        raise UserError(f"{spec}: cannot build it ({first_line(exc)})") from None
    if state is not None:
        load_state_strict(model, {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, weights)
    model.eval()
    info = resolve_info(label=spec, kind="smp", source=spec, num_classes=num_classes, meta={}, inputs=inputs)
    info.weights = weights
    multiple = int(getattr(model.encoder, "output_stride", 32) or 32)
    info.notes.append(f"{spec}: inputs padded to a multiple of {multiple} px (smp's rule), logits cropped back")
    return Padded(model, multiple), info


class Padded(nn.Module):
    """A network that needs input sides divisible by ``multiple``: the input is zero-padded at the bottom and
    right (zero = the mean colour after normalisation) and the logits are cropped back to the input size."""

    def __init__(self, net: nn.Module, multiple: int) -> None:
        super().__init__()
        self.net = net
        self.multiple = multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        logits = self.net(F.pad(x, (0, pw, 0, ph)) if ph or pw else x)
        return logits[..., :h, :w]


