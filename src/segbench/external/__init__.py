"""Models segbench did not build, as spec strings accepted wherever a MODEL is (evaluate, predict, compare,
benchmark, export), and scoring models whose classes differ from the data's.

=============================== =================================================================================
spec                            what is loaded
=============================== =================================================================================
``model.onnx``                  ONNX file, run by ONNX Runtime (``--backend openvino``: by OpenVINO)
``model.pt`` / ``model.pth``    a TorchScript archive (``torch.jit.save``); other ``.pt`` files stay segbench
                                checkpoints
``model.pt2``                   a ``torch.export`` program (``torch.export.save``)
``py:package.module:function``  ``function()`` returning an ``nn.Module`` that maps ``(N, 3, H, W)`` to logits
``smp:ARCH:ENCODER[:CLASSES]``  a segmentation_models_pytorch network (``--weights none`` or a local file)
``hf:FOLDER`` / ``hf:ORG/NAME`` a Hugging Face transformers segmentation model, local folder or local cache
=============================== =================================================================================

Anything else goes to :func:`segbench.models.load_model` (tags, architectures, segbench weights files).
Classes, palette and normalisation come from the model's metadata, else from ``--classes``/``--mean``/``--std``
(:class:`ModelInputs`); :attr:`ExternalInfo.missing` says what was missing.

The trust rule: no file someone else made runs code of its own unless the user says so with
``--trust-remote-code`` (:attr:`ModelInputs.trust_remote_code`). An ``hf:`` folder naming its own modeling code
(``auto_map``) and a ``.pt2`` that torch could not read without running code (a pickled part that does not load
``weights_only=True``, a pickled object, a symbolic size that is Python code, a graph calling a Python function)
are refused in one line without it; nothing ever reads an answer from stdin. ONNX and TorchScript files run
operators in their own runtimes, not Python (:mod:`segbench.external.files`). ``py:`` names the user's own
Python code, which runs by design: naming it is the user's statement, so it needs no flag.
"""

from __future__ import annotations

from pathlib import Path

from segbench.errors import UserError
from segbench.external.classmap import SYNONYMS, ClassMapping, class_mapping, read_class_map, read_class_map_file
from segbench.external.inputs import ExternalInfo, ModelInputs, read_class_file
from segbench.models import LoadedModel, load_model

__all__ = [
    "SYNONYMS",
    "ClassMapping",
    "ExternalInfo",
    "ModelInputs",
    "check_spec",
    "class_mapping",
    "external_kind",
    "load_any",
    "read_class_file",
    "read_class_map",
    "read_class_map_file",
]

PREFIXES = {"py:": "py", "smp:": "smp", "hf:": "hf"}
SUFFIXES = {".onnx": "onnx", ".pt2": "torch.export"}


def external_kind(spec: str) -> str | None:
    """The loader of ``spec`` (``onnx``, ``torchscript``, ``torch.export``, ``py``, ``smp``, ``hf``), or None for
    a segbench spec (tag, architecture, segbench weights file)."""
    for prefix, kind in PREFIXES.items():
        if spec.startswith(prefix):
            return kind
    suffix = Path(spec).suffix.lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    if suffix in (".pt", ".pth") and Path(spec).is_file():
        from segbench.external.files import is_torchscript

        return "torchscript" if is_torchscript(Path(spec)) else None
    return None


def check_spec(spec: str) -> None:
    """Check an external spec without loading it: its form, and that a named file exists and can be read.

    Raises:
        UserError: a malformed spec or a missing or unreadable file (one line).
    """
    kind = external_kind(spec)
    if kind in ("onnx", "torch.export", "torchscript"):
        from segbench.external.files import _check_file

        _check_file(Path(spec), {"onnx": "ONNX"}.get(kind, kind))
    elif kind == "py":
        module, _, func = spec[3:].partition(":")
        if not module or not func or not all(p.isidentifier() for p in module.split(".")) or not func.isidentifier():
            raise UserError(f"{spec}: expected py:package.module:function")
    elif kind == "smp" and (len(spec.split(":")) not in (3, 4) or not all(spec.split(":")[1:3])):
        raise UserError(f"{spec}: expected smp:ARCH:ENCODER or smp:ARCH:ENCODER:CLASSES (e.g. smp:Unet:resnet34:11)")
    elif kind == "hf" and not spec[3:]:
        raise UserError(f"{spec}: expected hf:FOLDER or hf:ORGANISATION/NAME")


def load_any(spec: str, weights: str | None = None, inputs: ModelInputs | None = None,
             device: str = "cpu") -> LoadedModel:  # fmt: skip
    """Load any MODEL spec: an external one (see the table above) or a segbench one.

    Args:
        spec: the model spec.
        weights: ``--weights``: for segbench architectures and ``smp:`` (``none`` or a local file).
        inputs: ``--classes``/``--mean``/``--std`` for external models (ignored for segbench's own).
        device: where an ONNX file runs (``cpu`` or ``cuda``).

    Returns:
        The model (an ``nn.Module`` mapping ``(N, 3, H, W)`` to logits ``(N, C, H, W)``) and its info
        (an :class:`ExternalInfo` for external models).

    Raises:
        UserError: a bad spec, a missing, unreadable or invalid file, a missing optional package (named), or a
            model that does not map an image to logits; always one line.
    """
    kind = external_kind(spec)
    if kind is None:
        return load_model(spec, weights=weights)
    check_spec(spec)
    if kind == "onnx":
        from segbench.external.files import load_onnx

        model, info = load_onnx(spec, inputs, device)
    elif kind == "torchscript":
        from segbench.external.files import load_torchscript

        model, info = load_torchscript(spec, inputs)
    elif kind == "torch.export":
        from segbench.external.pt2 import load_exported_program

        model, info = load_exported_program(spec, inputs)
    elif kind == "py":
        from segbench.external.code import load_py

        model, info = load_py(spec, inputs)
    elif kind == "smp":
        from segbench.external.code import load_smp

        model, info = load_smp(spec, weights, inputs)
    else:
        from segbench.external.hf import load_hf

        model, info = load_hf(spec, inputs)
    return LoadedModel(model, info)
