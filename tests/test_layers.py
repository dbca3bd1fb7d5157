"""The layer rule of the package, enforced on the source: each package imports only from the layers below
it (at top level or inside a function alike), no two modules import each other through any chain, only the
report layer imports matplotlib, and ``import segbench.models`` loads a network and nothing else.

Layers, low to high: errors -> files, options (the table of option ranges) -> the other leaves (registry, config,
classes, specs, preprocessing) -> models, data, metrics, losses -> engine, export -> external (models segbench did
not build) -> bench -> report -> compare -> cli.
Packages of one layer do not import each other.
"""

import ast
import subprocess
import sys
from pathlib import Path

import segbench

PACKAGE = Path(segbench.__file__).parent
LAYERS = [
    {"errors"},
    {"files", "options"},
    {"registry", "config", "classes", "specs", "preprocessing"},
    {"models", "data", "metrics", "losses"},
    {"engine", "export"},
    {"external"},
    {"bench"},
    {"report"},
    {"compare"},
    {"cli", "__main__"},
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}



def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str | None = None) -> set[str]:
    """segbench modules (with their ``segbench.`` prefix) and top-level third-party names imported anywhere
    in ``path``; ``from segbench.x import y`` counts as ``segbench.x.y`` when ``x/y.py`` (or ``x/y/``) exists,
    else as ``segbench.x``. Relative imports (``from .x import y``, ``from .. import z``) are resolved against the
    package of ``module`` (the module ``path`` is, without ``segbench.``; default: read from ``path``)."""
    module = _module_name(path) if module is None else module
    is_package = path.name == "__init__.py"
    package = ["segbench", *module.split(".")] if module else ["segbench"]
    if not is_package:
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level - 1 < len(package) else []
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            if not name:
                continue
            if name.split(".")[0] == "segbench":
                for alias in node.names:
                    sub = f"{name}.{alias.name}".replace(".", "/")
                    is_module = (PACKAGE.parent / f"{sub}.py").exists() or (PACKAGE.parent / sub).is_dir()
                    found.add(f"{name}.{alias.name}" if is_module else name)
            else:
                found.add(name)
    return found


def test_relative_imports_are_resolved_against_the_package(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("from . import peak\nfrom .select import BEST\nfrom ..export import onnx\n"
                      "from ..errors import UserError\nfrom .. import compare\n")
    assert _imports(source, "bench.runner") == {"segbench.bench.peak", "segbench.bench.select",
                                                "segbench.export.onnx", "segbench.errors", "segbench.compare"}
    init = tmp_path / "__init__.py"
    init.write_text("from .runner import run_case\nfrom ..report import write_report\n")
    assert _imports(init, "bench") == {"segbench.bench.runner", "segbench.report"}


def test_a_relative_import_against_the_layers_is_caught(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from ..compare import plan\n")
    targets = {m.removeprefix("segbench.") for m in _imports(source, "bench.select")}
    assert targets == {"compare"} and RANK[_unit("compare")] > RANK[_unit("bench.select")]


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        if not name:
            continue
        graph[name] = {m.removeprefix("segbench.") for m in _imports(path) if m.startswith("segbench.")}
    return graph


def _unit(module: str) -> str:
    return module.split(".")[0]


def test_packages_import_only_from_lower_layers():
    violations = set()
    for module, targets in _graph().items():
        for target in targets:
            a, b = _unit(module), _unit(target)
            assert a in RANK and b in RANK, f"segbench.{module} or segbench.{target} has no layer in LAYERS"
            if a != b and RANK[b] >= RANK[a]:
                violations.add((module, target))
    assert not violations, f"imports against the layer rule: {sorted(violations)}"


def _cycles(graph: dict[str, set[str]]) -> set[frozenset]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), set(), [0]

    def visit(root):
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        result.add(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result


def test_cycle_finder_on_a_known_graph():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e2"}, "e2": set()}
    assert _cycles(graph) == {frozenset({"a", "b", "c"})}


def test_no_import_cycles_between_modules():
    cycles = _cycles(_graph())
    assert not cycles, f"import cycles: {[sorted(c) for c in cycles]}"


def test_only_the_report_layer_imports_matplotlib():
    users = {m for m in _graph() if any(i.split(".")[0] == "matplotlib" for i in _imports(_path(m)))}
    outside = {m for m in users if _unit(m) != "report"}
    assert not outside, f"matplotlib imported outside report/: {sorted(outside)}"


def _path(module: str) -> Path:
    base = PACKAGE.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def test_importing_models_loads_a_network_and_nothing_else():
    code = (
        "import sys, segbench.models\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('segbench.') or m == 'matplotlib')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    units = {m.split(".")[1] for m in loaded if m.startswith("segbench.")}
    assert units <= {"models", "errors", "files", "registry", "classes", "preprocessing"}, loaded
    assert "matplotlib" not in loaded


REGISTRY_MODULE = "bench.backends"
"""The backend registry: the one module that may know what a backend's name means."""


def _backend_tokens() -> set[str]:
    """Every backend name and every run of its ``_``-separated parts (``openvino``, ``int8``, ``nncf_int8``, ...):
    the strings a rule on names would test for."""
    from segbench.bench.backends import backend_names

    tokens = set()
    for name in backend_names():
        parts = name.split("_")
        tokens |= {"_".join(parts[i:j]) for i in range(len(parts)) for j in range(i + 1, len(parts) + 1)}
    return tokens


def _strings(node) -> list[str]:
    """The str constants of ``node``: itself, or the items of a tuple/list/set literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for item in node.elts for s in _strings(item)]
    return []


def _name_rules(tree: ast.AST, tokens: set[str], names: set[str]) -> list[tuple[int, str]]:
    """``(line, what)`` of each test of a string against backend names by pattern: ``.startswith``/``.endswith``
    of a backend token (``b.endswith("_int8")``), a token ``in`` a string (``"openvino" in b``), or membership in a
    literal of two or more backend names (``b in ("eager", "onnxruntime")``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            if node.func.attr in ("startswith", "endswith"):
                hits = [s for s in _strings(node.args[0]) if s.strip("_") in tokens]
                if hits:
                    found.append((node.lineno, f".{node.func.attr}({', '.join(map(repr, hits))})"))
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            left = [s for s in _strings(node.left) if isinstance(node.left, ast.Constant) and s.strip("_") in tokens]
            if left:
                found.append((node.lineno, f"{left[0]!r} in ..."))
            for right in node.comparators:
                listed = [s for s in _strings(right) if s in names] if not isinstance(right, ast.Constant) else []
                if len(listed) >= 2:
                    found.append((node.lineno, f"in {tuple(listed)}"))
    return found


def test_name_rule_finder_on_known_code():
    from segbench.bench.backends import backend_names

    tokens, names = _backend_tokens(), set(backend_names())
    code = ("a = b.endswith('_int8')\nc = b.startswith(('openvino', 'x'))\nd = 'bf16' in b\n"
            "e = b in ('eager', 'onnxruntime')\n"
            "ok = [s.startswith('cuda'), p.endswith('.onnx'), 'AMX' in unit, amp in ('none', 'bf16', 'fp16'),"
            " x == 'int8', line.startswith('flags'), b in BACKENDS]\n")  # fmt: skip
    assert [line for line, _ in _name_rules(ast.parse(code), tokens, names)] == [1, 2, 3, 4]


def test_only_the_backend_registry_tests_backend_names_by_pattern():
    from segbench.bench.backends import backend_names

    tokens, names = _backend_tokens(), set(backend_names())
    rules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if _module_name(path) == REGISTRY_MODULE:
            continue
        found = _name_rules(ast.parse(path.read_text(), str(path)), tokens, names)
        if found:
            rules[_module_name(path)] = found
    assert not rules, f"backend names interpreted by pattern outside {REGISTRY_MODULE} (ask the registry): {rules}"
