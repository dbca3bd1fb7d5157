"""``torch.export`` programs (``.pt2``) as segbench models, and the check that one runs no code of its maker's.

torch would unpickle parts of the archive with ``weights_only=False`` and evaluate its symbolic sizes with
``sympy.sympify`` (Python ``eval``), and its graph may name any ``torch.*`` function. So the file is read once
into memory and checked before torch sees it (:func:`load_exported_program`); a file that fails the check is
refused in one line unless ``--trust-remote-code`` (:data:`TRUST_FLAG`) is given. The other model files are in
:mod:`segbench.external.files`.
"""

from __future__ import annotations

import ast
import io
import json
import logging
import operator
import re
import zipfile
from pathlib import Path

import torch

from segbench.errors import UserError, first_line
from segbench.external.files import _check_file, _extra_meta
from segbench.external.inputs import METADATA_FILE, ModelInputs, resolve_info
from segbench.preprocessing import Resized

__all__ = ["TRUST_FLAG", "ExportedModule", "load_exported_program"]

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


class ExportedModule(Resized):
    """A ``torch.export`` program's module (``ExportedProgram.module()``) run under its resize rule, logits at the
    input size (:class:`~segbench.preprocessing.Resized`).

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
    return ExportedModule(module, info.preprocessing), info
