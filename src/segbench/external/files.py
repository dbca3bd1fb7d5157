"""Model files segbench did not write as weights: ONNX (``.onnx``), TorchScript (``.pt``/``.pth`` archives of
``torch.jit.save``) and ``torch.export`` programs (``.pt2``).

Each becomes an ``nn.Module`` mapping ``(N, 3, H, W)`` to logits ``(N, C, H, W)`` at the input size, so every
part of segbench (evaluation, sliding windows, TTA, benchmarks) runs it unchanged.

- ONNX runs in ONNX Runtime (:class:`OnnxModule`); ``--backend openvino`` compiles the same file with OpenVINO
  (the backends find it through the module's ``onnx_file``). The input layout is read from the file's input
  shape (``(N, 3, H, W)`` or ``(N, H, W, 3)``; metadata ``layout`` = ``NCHW`` or ``NHWC`` overrides it); an input
  of fixed height and width is resized to it, and logits smaller than the input are upsampled bilinearly.
- What a file can execute (the trust rule: nothing from a file someone else made runs code unless the user says
  so with ``--trust-remote-code``, :data:`TRUST_FLAG`):

  - ONNX: operators of the ONNX standard (and any registered in ONNX Runtime), run by ONNX Runtime; no Python.
  - TorchScript: ``torch.jit.load`` reads the archive with TorchScript's own unpickler (no Python imports, no
    ``pickle``) and runs its code in TorchScript's interpreter, which can call any operator registered in torch
    (tensor maths; no Python function, no ``import``). It is loaded as it is.
  - ``torch.export``: torch would unpickle parts of the archive with ``weights_only=False`` and evaluate its
    symbolic sizes with ``sympy.sympify`` (Python ``eval``), and its graph may name any ``torch.*`` function.
    So the file is read once into memory and checked before torch sees it (:func:`load_exported_program`);
    a file that fails the check is refused in one line unless ``--trust-remote-code`` is given.
"""

from __future__ import annotations

import ast
import copy
import io
import json
import logging
import operator
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segbench.errors import BackendUnavailable, UserError, first_line, require
from segbench.export import onnx_session, read_metadata
from segbench.external.inputs import METADATA_FILE, ModelInputs, resolve_info

__all__ = ["TRUST_FLAG", "ExportedModule", "OnnxModule", "is_torchscript", "load_exported_program", "load_onnx",
           "load_torchscript"]

FLOPS_NOT_COUNTED = "GFLOPs: not countable ({}: torch's FlopCounterMode counts PyTorch operators only)"


def _check_file(path: Path, what: str) -> None:
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a model file ({what})")
    if not path.is_file():
        raise UserError(f"{path}: no such {what} file")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise UserError(f"{path}: cannot read {what} file ({exc.strerror or exc})") from None


class OnnxModule(nn.Module):
    """An ONNX file run by ONNX Runtime, as a module: float32 ``(N, 3, H, W)`` in, logits ``(N, C, H, W)`` out.

    Attributes:
        onnx_file: the file (the ONNX backends run it instead of exporting the module).
        runs_as: one line saying what runs it, for the report.
        layout: ``NCHW`` or ``NHWC`` of the file's input (and output).
        fixed_size: ``(H, W)`` when the file's input has a fixed size, else None.
    """

    def __init__(self, path: Path, session, layout: str, fixed_size: tuple[int, int] | None) -> None:
        super().__init__()
        self.onnx_file = path
        self.session = session
        self.layout = layout
        self.fixed_size = fixed_size
        self.input_name = session.get_inputs()[0].name
        self.output_name = session.get_outputs()[0].name
        ort = require("onnxruntime", "onnx", "ONNX Runtime")
        self.runs_as = f"ONNX Runtime {ort.__version__} on {path.name} (the file itself), {layout} input"
        self._run = lambda array: self.session.run([self.output_name], {self.input_name: array})[0]

    def for_runtime(self, runtime: str, precision: str = "fp32", device: str = "cpu") -> OnnxModule:
        """This file run by ``runtime``: itself (ONNX Runtime) for ``onnxruntime``, OpenVINO's CPU plugin at
        ``precision`` (``fp32`` or ``bf16`` inference precision) for ``openvino``. Which backend runs a file with
        which runtime is the backend registry's fact (:attr:`segbench.bench.backends.Backend.onnx_file_runtime`).

        Raises:
            BackendUnavailable: another runtime or precision, OpenVINO missing, or OpenVINO asked for on CUDA.
        """
        if runtime == "onnxruntime" and precision == "fp32":
            return self
        if runtime != "openvino" or precision not in ("fp32", "bf16"):
            raise BackendUnavailable(f"{self.onnx_file.name}: an ONNX file runs with ONNX Runtime (fp32) or OpenVINO "
                                     f"(fp32, bf16), not {runtime} {precision}")  # fmt: skip
        if not str(device).startswith("cpu"):
            raise BackendUnavailable(f"{self.onnx_file.name}: OpenVINO runs on the CPU only here; use --device cpu")
        ov = require("openvino", "openvino", f"OpenVINO on {self.onnx_file.name}")
        hint = "bf16" if precision == "bf16" else "f32"
        config = {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "INFERENCE_PRECISION_HINT": hint,
                  "PERFORMANCE_HINT": "LATENCY"}  # fmt: skip
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(self.onnx_file)), "CPU", config)
        clone = copy.copy(self)
        clone._run = lambda array: np.asarray(compiled({0: array})[0])
        clone.runs_as = (f"OpenVINO {ov.get_version().split('-')[0]} CPU, {hint}, on {self.onnx_file.name} "
                         f"(the file itself), {self.layout} input")  # fmt: skip
        return clone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = tuple(x.shape[-2:])
        inp = x.detach().float()
        if self.fixed_size is not None and size != self.fixed_size:
            inp = F.interpolate(inp, size=self.fixed_size, mode="bilinear", align_corners=False)
        if self.layout == "NHWC":
            inp = inp.permute(0, 2, 3, 1)
        out = self._run(inp.cpu().contiguous().numpy())
        logits = torch.from_numpy(out)
        if logits.ndim != 4:
            raise UserError(f"{self.onnx_file}: output {self.output_name!r} has shape {tuple(logits.shape)}; "
                            "expected logits (N, C, H, W)")  # fmt: skip
        if self.layout == "NHWC":
            logits = logits.permute(0, 3, 1, 2)
        if tuple(logits.shape[-2:]) != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits.to(x.device)

    def size_measures(self) -> dict:
        """Parameters (elements of the file's initializers) and the file's size in MB (10**6 bytes)."""
        onnx = require("onnx", "onnx", "ONNX model size")
        graph = onnx.load(str(self.onnx_file), load_external_data=False).graph
        params = 0
        for init in graph.initializer:
            count = 1
            for d in init.dims:
                count *= int(d)
            params += count
        return {"params": params, "size_mb": self.onnx_file.stat().st_size / 1e6, "size_mb_fp16": None}


def _layout(path: Path, session, meta: dict) -> tuple[str, tuple[int, int] | None]:
    """``(layout, fixed (H, W) or None)`` of the file's first input."""
    shape = list(session.get_inputs()[0].shape)
    if len(shape) != 4:
        raise UserError(f"{path}: input {session.get_inputs()[0].name!r} has shape {shape}; expected 4 dimensions "
                        "(N, 3, H, W) or (N, H, W, 3)")  # fmt: skip
    layout = str(meta.get("layout", "")).upper() or ("NHWC" if shape[3] == 3 and shape[1] != 3 else "NCHW")
    if layout not in ("NCHW", "NHWC"):
        raise UserError(f"{path}: metadata layout {meta['layout']!r}: expected NCHW or NHWC")
    h, w = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
    fixed = (h, w) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else None
    return layout, fixed


def _onnx_classes(session, module: OnnxModule, layout: str, fixed) -> int:
    """Output channels: from the output shape when it is fixed, else from one small forward."""
    shape = list(session.get_outputs()[0].shape)
    if len(shape) == 4:
        c = shape[1] if layout == "NCHW" else shape[3]
        if isinstance(c, int) and c > 0:
            return c
    with torch.no_grad():
        return int(module(torch.zeros(1, 3, *(fixed or (64, 64)))).shape[1])


def load_onnx(path: str | Path, inputs: ModelInputs | None = None, device: str = "cpu"):
    """An ONNX file as :class:`OnnxModule` with its :class:`ExternalInfo`.

    Raises:
        UserError: missing, unreadable or invalid file; onnxruntime missing; an input that is not an image.
    """
    path = Path(path)
    _check_file(path, "ONNX")
    try:
        meta = read_metadata(path)
        session = onnx_session(path, device=device)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - onnx and onnxruntime raise many types for a bad file
        raise UserError(f"{path}: cannot read ONNX file ({first_line(exc)})") from None
    layout, fixed = _layout(path, session, meta)
    module = OnnxModule(path, session, layout, fixed)
    try:
        num_classes = _onnx_classes(session, module, layout, fixed)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path}: the model does not run on a (1, 3, H, W) image ({first_line(exc)})") from None
    info = resolve_info(label=path.name, kind="onnx", source=str(path), num_classes=num_classes, meta=meta,
                        inputs=inputs)  # fmt: skip
    info.notes.append(FLOPS_NOT_COUNTED.format("an ONNX Runtime model"))
    if fixed is not None:
        info.notes.append(f"{path.name} takes a fixed {fixed[0]} x {fixed[1]} input: images are resized to it and "
                          "the logits back")  # fmt: skip
    return module, info


def is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``: a zip with a ``code/`` folder)."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in n or n.endswith("constants.pkl") for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _extra_meta(text, path: Path) -> dict:
    if not text:
        return {}
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path}: its {METADATA_FILE} is not JSON") from None
    return meta if isinstance(meta, dict) else {}


def _num_classes(module: nn.Module, path: Path) -> int:
    try:
        with torch.no_grad():
            out = module(torch.zeros(1, 3, 64, 64))
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path}: the model does not run on a (1, 3, 64, 64) image ({first_line(exc)})") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 4:
        raise UserError(f"{path}: the model returns {type(out).__name__}, not logits (N, C, H, W)")
    return int(out.shape[1])


class Upsampled(nn.Module):
    """A network whose logits come out smaller than its input, with them resized bilinearly to the input."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        if tuple(logits.shape[-2:]) != tuple(x.shape[-2:]):
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits


def load_torchscript(path: str | Path, inputs: ModelInputs | None = None):
    """A TorchScript archive as a module with its :class:`ExternalInfo` (metadata from ``segbench.json``).

    Raises:
        UserError: missing, unreadable or corrupt file, or a model that does not map an image to logits.
    """
    path = Path(path)
    _check_file(path, "TorchScript")
    extra = {METADATA_FILE: ""}
    try:
        with warnings.catch_warnings():  # torch 2.10+ calls torch.jit.load deprecated: a user's file, not theirs
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path}: cannot read TorchScript file ({first_line(exc)})") from None
    module.eval()
    meta = _extra_meta(extra[METADATA_FILE], path)
    info = resolve_info(label=path.name, kind="torchscript", source=str(path), num_classes=_num_classes(module, path),
                        meta=meta, inputs=inputs)  # fmt: skip
    return Upsampled(module), info


TRUST_FLAG = "--trust-remote-code"

PT2_SYMPY_NAMES = frozenset(
    "Symbol Integer Float Rational Mul Add Pow Max Min Mod Abs floor ceiling sqrt Eq Ne Lt Le Gt Ge And Or Not "
    "Equality Unequality StrictLessThan StrictGreaterThan LessThan GreaterThan Piecewise ExprCondPair Tuple true "
    "false oo zoo nan Infinity NegativeInfinity BooleanTrue BooleanFalse FloorDiv ModularIndexing Where PythonMod "
    "CleanDiv CeilToInt FloorToInt CeilDiv LShift RShift PowByNatural FloatPow FloatTrueDiv IntTrueDiv "
    "IsNonOverlappingAndDenseIndicator TruncToFloat TruncToInt RoundToInt RoundDecimal ToFloat Identity".split()
)
"""The names a ``torch.export`` file's symbolic sizes may use (and symbol names such as ``s16``, ``u0``): torch
hands each ``expr_str`` to ``sympy.sympify``, which evaluates it as Python, so anything else (a builtin, an
attribute, a string given to a function other than ``Symbol``) is refused before torch reads the file."""

_AST_OK = (ast.Expression, ast.Call, ast.Name, ast.Load, ast.Constant, ast.keyword, ast.UnaryOp, ast.BinOp,
           ast.Compare, ast.BoolOp, ast.Tuple, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)  # fmt: skip


def _safe_sym_expr(text) -> bool:
    """Whether ``text`` is a sympy expression that ``sympy.sympify`` can evaluate without running other code."""
    if not isinstance(text, str):
        return False
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if not isinstance(node, _AST_OK):
            return False
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, str, type(None))):
            return False
        if isinstance(node, ast.Name) and not (node.id in PT2_SYMPY_NAMES or re.fullmatch(r"[a-z]+[0-9]+", node.id)):
            return False
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                return False
            strings = [a for a in (*node.args, *(k.value for k in node.keywords))
                       if isinstance(a, ast.Constant) and isinstance(a.value, str)]  # fmt: skip
            if strings and (node.func.id != "Symbol" or strings != node.args[:1]):
                return False
    for node in ast.walk(tree):  # a string anywhere but as the name of a Symbol
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if not any(isinstance(c, ast.Call) and c.func.id == "Symbol" and c.args[:1] == [node]
                       for c in ast.walk(tree)):  # fmt: skip
                return False
    return True


def _expr_strs(value):
    """Every ``expr_str`` in a serialized program (JSON)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "expr_str":
                yield v
            else:
                yield from _expr_strs(v)
    elif isinstance(value, list):
        for v in value:
            yield from _expr_strs(v)


def _weights_only(data: bytes) -> str | None:
    """None when ``torch.load(weights_only=True)`` reads ``data``, else why not (one line)."""
    try:
        torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - the weights-only unpickler raises many types
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        return f"it unpickles {found.group(1)}" if found else re.sub(r"\x1b\[[0-9;]*m", "", first_line(exc))
    return None


def _check_pt2_archive(path: Path, data: bytes) -> None:
    """Refuse a ``.pt2`` archive that torch could not read without running code from it: a pickled part
    (weights, constants, sample inputs) that ``torch.load(weights_only=True)`` cannot read, a pickled Python or
    TorchScript object, or a symbolic size that is not a plain sympy expression.

    Raises:
        UserError: one line naming the file, the part and :data:`TRUST_FLAG`.
    """
    trust = f"reading it could run code; pass {TRUST_FLAG} if you trust its maker"
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        raise UserError(f"{path}: cannot read torch.export file (not a zip archive)") from None
    pickled = {n for n in names if n.endswith((".pt", ".pkl"))}
    for n in names:
        if n.endswith(("_weights_config.json", "_constants_config.json")):
            try:
                config = json.loads(z.read(n)).get("config", {})
            except (ValueError, AttributeError):
                raise UserError(f"{path}: cannot read torch.export file ({n} is not JSON)") from None
            folder = n.rsplit("/", 1)[0]
            for item in config.values():
                name = str(item.get("path_name", "")) if isinstance(item, dict) else ""
                if name.startswith(("custom_obj", "opaque_obj")):
                    raise UserError(f"{path}: refused: {folder}/{name} is a pickled object; {trust}")
                if isinstance(item, dict) and item.get("use_pickle"):
                    pickled.add(f"{folder}/{name}")
        elif n.endswith(".json"):
            try:
                program = json.loads(z.read(n))
            except ValueError:
                raise UserError(f"{path}: cannot read torch.export file ({n} is not JSON)") from None
            bad = next((e for e in _expr_strs(program) if not _safe_sym_expr(e)), None)
            if bad is not None:
                raise UserError(f"{path}: refused: {n} has a symbolic size that is Python code, not a sympy "
                                f"expression ({str(bad)[:60]!r}); {trust}")  # fmt: skip
    for n in sorted(pickled):
        if n not in names:
            raise UserError(f"{path}: cannot read torch.export file (its config names {n}, which is not there)")
        why = _weights_only(z.read(n))
        if why is not None:
            raise UserError(f"{path}: refused: {n} does not load with weights_only=True ({why}); {trust}")


ALLOWED_TARGETS = frozenset({operator.getitem})


def _check_targets(path: Path, program) -> None:
    """Refuse a program whose graph calls a Python function rather than a torch operator (torch resolves any
    ``torch.*``, ``math.*`` or ``operator.*`` name a file gives, ``torch.os.system`` included).

    Raises:
        UserError: one line naming the file, the call and :data:`TRUST_FLAG`.
    """
    from torch._export.serde.serialize import _SYM_OPS

    for gm in program.graph_module.modules():
        graph = getattr(gm, "graph", None)
        for node in graph.nodes if isinstance(graph, torch.fx.Graph) else ():
            t = node.target
            if node.op == "call_function" and not (
                isinstance(t, (torch._ops.OpOverload, torch._ops.HigherOrderOperator)) or t in _SYM_OPS
                or t in ALLOWED_TARGETS
            ):  # fmt: skip
                name = getattr(t, "__qualname__", None) or repr(t)
                raise UserError(f"{path}: refused: its graph calls the Python function {name}, not a torch "
                                f"operator; pass {TRUST_FLAG} if you trust its maker")  # fmt: skip


class ExportedModule(Upsampled):
    """A ``torch.export`` program's module (``ExportedProgram.module()``), logits resized to the input.

    ``train()``/``eval()`` set this wrapper's flag only: torch refuses both on the program's module
    (``NotImplementedError``), and an exported graph has its training or inference behaviour fixed already.

    Attributes:
        no_train_step: why the benchmark measures no training step for it.
    """

    no_train_step = "a torch.export program's graph is fixed as it was exported: no training step to measure"

    def train(self, mode: bool = True) -> ExportedModule:
        self.training = mode
        return self


def load_exported_program(path: str | Path, inputs: ModelInputs | None = None):
    """A ``torch.export`` program (``.pt2``) as a module with its :class:`ExternalInfo`.

    The program must have been exported with dynamic height and width to take images of other sizes than the
    example it was traced on. Without ``inputs.trust_remote_code`` nothing in the file may run code: every
    pickled part must load with ``torch.load(weights_only=True)``, no pickled object may be in it, its symbolic
    sizes must be plain sympy expressions and its graph may call torch operators only; else it is refused.
    The file's ``guards_code`` (Python source that ``ExportedProgram.module()`` would ``exec``) is then not
    used: torch checks the input sizes with its forward pre-hook instead.

    Raises:
        UserError: missing, unreadable or corrupt file, a file refused by the rule above, or a model that does
            not map an image to logits.
    """
    path = Path(path)
    _check_file(path, "torch.export")
    trusted = bool(inputs is not None and inputs.trust_remote_code)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read torch.export file ({exc.strerror or exc})") from None
    if not trusted:
        _check_pt2_archive(path, data)
    extra = {METADATA_FILE: ""}
    quiet = logging.getLogger("torch.export")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # torch logs a traceback as a warning before raising its own error
    try:
        program = torch.export.load(io.BytesIO(data), extra_files=extra)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path}: cannot read torch.export file ({first_line(exc)})") from None
    finally:
        quiet.setLevel(level)
    if not trusted:
        _check_targets(path, program)
    try:  # untrusted: no guard function, which torch builds by exec() of the file's guards_code
        module = program.module(check_guards=trusted)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path}: cannot build the program's module ({first_line(exc)})") from None
    meta = _extra_meta(extra.get(METADATA_FILE, ""), path)
    shape = next((tuple(n.meta["val"].shape) for n in program.graph.nodes if n.op == "placeholder"
                  and n.name not in program.graph_signature.inputs_to_parameters
                  and n.name not in program.graph_signature.inputs_to_buffers and "val" in n.meta), None)  # fmt: skip
    # a symbolic size's hint, not int(): that would specialise the symbol, and the program then takes that size only
    size = [s if isinstance(s, int) else getattr(s.node, "hint", None) or 64 for s in shape or ()]
    probe = torch.zeros(*(size if len(size) == 4 else (1, 3, 64, 64)))
    try:
        with torch.no_grad():
            num_classes = int(module(probe).shape[1])
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path}: the program does not run on a {tuple(probe.shape)} image ({first_line(exc)})") from None
    info = resolve_info(label=path.name, kind="torch.export", source=str(path), num_classes=num_classes, meta=meta,
                        inputs=inputs)  # fmt: skip
    return ExportedModule(module), info
