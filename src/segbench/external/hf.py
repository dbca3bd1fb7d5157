"""Hugging Face transformers semantic-segmentation models, from a local folder or the local cache only
(``hf:PATH_OR_ID``; the ``hf`` extra).

Per-pixel models (SegFormer, UperNet, DPT, BEiT, MobileViT, ... : ``AutoModelForSemanticSegmentation``) give
``logits``; mask-classification models (Mask2Former, "Masked-attention Mask Transformer for Universal Image
Segmentation", arXiv 2112.01527; MaskFormer, "Per-Pixel Classification is Not All You Need for Semantic
Segmentation", arXiv 2107.06278) give per-query class logits ``(N, Q, C + 1)`` and mask logits
``(N, Q, h, w)``, combined as their semantic inference does: ``sum_q softmax(class)[..., :C] * sigmoid(mask)``,
whose logarithm serves as logits. Either way the logits are resized bilinearly to the input size.

Preprocessing follows the model's ``preprocessor_config.json``, read into one
:class:`~segbench.preprocessing.Preprocessing` (:meth:`~segbench.preprocessing.Preprocessing.from_hf`:
``image_mean``/``image_std`` with ``do_rescale``/``rescale_factor``/``do_normalize`` become the normalisation);
``size`` (``height``/``width`` or ``shortest_edge``) resizes the normalised input (with the processor's
``resample``, bilinear by default, which commutes with the per-channel normalisation); ``size_divisor`` pads it.
Class names come from ``config.id2label``. Nothing is downloaded.

The trust rule: a folder whose ``config.json`` has an ``auto_map`` ships its own modeling code, which
transformers would import and run. Such a folder is refused in one line unless the user passes
``--trust-remote-code`` (``ModelInputs.trust_remote_code``); transformers is always called with
``trust_remote_code`` given explicitly, so it never asks on stdin.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from segbench.errors import UserError, first_line, require
from segbench.external.inputs import ExternalInfo, ModelInputs, resolve_info
from segbench.preprocessing import Preprocessing

__all__ = ["HFSegmenter", "load_hf"]

MASK_CLASSIFICATION = ("mask2former", "maskformer")


class HFSegmenter(nn.Module):
    """A transformers model as a segbench network: ``(N, 3, H, W)`` normalised images -> logits ``(N, C, H, W)``.

    Args:
        model: the transformers model (``pixel_values`` in).
        preprocessing: the processor's :class:`~segbench.preprocessing.Preprocessing`
            (:meth:`~segbench.preprocessing.Preprocessing.from_hf`): its resize rule (``resize``, ``size``, with
            its ``interpolation``) and ``size_divisor`` (pad height and width to a multiple of it) are applied
            to the normalised input (:meth:`~segbench.preprocessing.Preprocessing.run_resized`).
        mask_classification: combine class and mask logits (Mask2Former, MaskFormer).
    """

    def __init__(self, model: nn.Module, preprocessing: Preprocessing, mask_classification: bool) -> None:
        super().__init__()
        self.model = model
        self.preprocessing = preprocessing
        self.mask_classification = mask_classification

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.preprocessing.run_resized(self._logits, x)

    def _logits(self, inp: torch.Tensor) -> torch.Tensor:
        """Logits for the resized and padded input ``inp`` (mask-classification logits at its size)."""
        out = self.model(pixel_values=inp)
        if not self.mask_classification:
            return out.logits
        probs = out.class_queries_logits.softmax(-1)[..., :-1]
        masks = F.interpolate(out.masks_queries_logits.sigmoid(), size=inp.shape[-2:], mode="bilinear",
                              align_corners=False)  # fmt: skip
        return torch.einsum("nqc,nqhw->nchw", probs, masks).clamp_min(1e-6).log()


def _local_file(source: str, name: str) -> Path | None:
    """``name`` inside the folder ``source``, or in the Hugging Face cache for the id ``source``; None if absent."""
    folder = Path(source)
    if folder.is_dir():
        path = folder / name
        return path if path.is_file() else None
    hub = require("huggingface_hub", "hf", "hf: models from the Hugging Face cache")
    try:
        found = hub.try_to_load_from_cache(source, name)
    except Exception:  # noqa: BLE001 - an id that is not a valid repository name
        return None
    return Path(found) if isinstance(found, str) else None


def _processor(source: str) -> dict:
    path = _local_file(source, "preprocessor_config.json")
    if path is None:
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read the image processor config ({exc})") from None


def _custom_code(source: str) -> Path | None:
    """The ``config.json`` of ``source`` when it names modeling code of its own (``auto_map``), else None."""
    path = _local_file(source, "config.json")
    if path is None:
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read the model config ({exc})") from None
    return path if isinstance(config, dict) and config.get("auto_map") else None


def load_hf(spec: str, inputs: ModelInputs | None = None) -> tuple[nn.Module, ExternalInfo]:
    """The transformers model of ``hf:PATH_OR_ID`` from a local folder or the local cache (never downloaded).

    Raises:
        UserError: transformers missing; nothing at that path or in the cache; a folder with its own modeling
            code (``auto_map``) without ``inputs.trust_remote_code``; a model that is not a semantic or
            mask-classification segmentation model; a config or weights that cannot be read.
    """
    source = spec[len("hf:") :]
    if not source:
        raise UserError(f"{spec}: expected hf:FOLDER or hf:ORGANISATION/NAME (a model in the local cache)")
    transformers = require("transformers", "hf", spec)
    if not Path(source).is_dir() and _local_file(source, "config.json") is None:
        home = os.environ.get("HF_HOME", "~/.cache/huggingface")
        raise UserError(f"{spec}: not a folder and not in the local Hugging Face cache ({home}); segbench never "
                        f"downloads: fetch it where there is a network (huggingface-cli download {source}) "
                        "or pass its folder")  # fmt: skip
    trust = bool(inputs is not None and inputs.trust_remote_code)
    custom = _custom_code(source)
    if custom is not None and not trust:
        raise UserError(f"{spec}: refused: {custom} names modeling code of its own (auto_map), which loading would "
                        "run; pass --trust-remote-code if you trust its maker")  # fmt: skip
    try:
        config = transformers.AutoConfig.from_pretrained(source, local_files_only=True, trust_remote_code=trust)
        kind = config.model_type
        auto = (transformers.AutoModelForUniversalSegmentation if kind in MASK_CLASSIFICATION
                else transformers.AutoModelForSemanticSegmentation)  # fmt: skip
        model = auto.from_pretrained(source, local_files_only=True, trust_remote_code=trust)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types (ValueError for other tasks)
        raise UserError(f"{spec}: cannot load it as a semantic segmentation model ({first_line(exc)})") from None
    model.eval()
    proc = _processor(source)
    id2label = {int(k): v for k, v in (config.id2label or {}).items()}
    meta = {"classes": [id2label[i] for i in sorted(id2label)]} if id2label else {}
    stated = {k: list(proc[k])[:3] for k in ("image_mean", "image_std") if proc.get(k)}  # before from_hf's checks
    preprocessing = Preprocessing.from_hf({**proc, **stated}, f"{spec}: preprocessor_config.json")
    processed = preprocessing.to_dict()
    if proc.get("do_normalize", True) and len(stated) < 2:  # the processor's normalisation is not stated
        del processed["mean"], processed["std"]
    meta.update(processed)
    module = HFSegmenter(model, preprocessing, kind in MASK_CLASSIFICATION)
    info = resolve_info(label=spec, kind="hf", source=spec, num_classes=int(config.num_labels),
                        meta=meta, inputs=inputs)  # fmt: skip
    info.meta["hf_model_type"] = kind
    return module, info
