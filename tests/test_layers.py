"""The layer rule of the package, enforced on the source: each package imports only from the layers below
it (at top level or inside a function alike), no two modules import each other through any chain, only the
report layer imports matplotlib, and ``import segbench.models`` loads a network and nothing else.

Layers, low to high: errors -> files -> the other leaves (registry, config, classes) -> models, data, metrics,
losses -> engine, export -> external (models segbench did not build) -> bench -> report -> compare -> cli.
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
    {"files"},
    {"registry", "config", "classes"},
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


def _imports(path: Path) -> set[str]:
    """segbench modules (without the ``segbench.`` prefix) and top-level third-party names imported anywhere
    in ``path``; ``from segbench.x import y`` counts as ``x.y`` when ``x/y.py`` exists, else as ``x``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("segbench"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}".replace(".", "/")
                    is_module = (PACKAGE.parent / f"{sub}.py").exists() or (PACKAGE.parent / sub).is_dir()
                    found.add(f"{node.module}.{alias.name}" if is_module else node.module)
            else:
                found.add(node.module)
    return found


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
    assert units <= {"models", "errors", "files", "registry", "classes"}, loaded
    assert "matplotlib" not in loaded
