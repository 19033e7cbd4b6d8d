"""The package's layers, held against its imports (every import statement, also those
inside functions), so that a change cannot quietly make data flow backwards.

    native  <-  models, processing  <-  engines (models only)  <-  enhancer  <-  ros
    adapters  <-  front ends (cli, kernel_picture, ros.node, ros.bag, ros.live_demo)

``native`` (the cache folder and the C kernels compiled on first use) is below all.

``support`` (images on disk, pictures, synthetic and bundled data, the demo's frames)
sits beside processing. Nothing imports a front end but the CLI, which dispatches to
them; the package never imports ``training``; and there are no import circles.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "dkn_ros"

LAYERS = {  # module name prefix -> layer
    "dkn_ros.native": "native",
    "dkn_ros.models": "models",
    "dkn_ros.processing": "processing",
    "dkn_ros.engines": "engines",
    "dkn_ros.enhancer": "enhancer",
    "dkn_ros.quality": "enhancer",  # the candidates and the rule the Enhancer applies
    "dkn_ros.imageio": "support",
    "dkn_ros.visualise": "support",
    "dkn_ros.synthetic": "support",
    "dkn_ros.sample_data": "support",
    "dkn_ros.demo": "support",
    "dkn_ros.ros.image_codec": "ros",
    "dkn_ros.ros.sync": "ros",
    "dkn_ros.ros.frame_step": "ros",
    "dkn_ros.ros.compressed": "ros",
    "dkn_ros.ros.node": "front end",
    "dkn_ros.ros.bag": "front end",
    "dkn_ros.ros.live_demo": "front end",
    "dkn_ros.kernel_picture": "front end",
    "dkn_ros.cli": "cli",
    "dkn_ros.ros": "ros",  # the subpackage's own __init__
}
ROOT_LAYER = "package"  # dkn_ros/__init__.py: the lazy ``Enhancer``
MAY_IMPORT = {  # layer -> the layers it may import (its own included)
    "native": {"native"},
    "models": {"models", "native"},
    "processing": {"processing", "native"},
    "support": {"support", "processing", "models", "native"},
    "engines": {"engines", "models", "native"},
    "enhancer": {"enhancer", "engines", "processing", "models", "native"},
    "ros": {"ros", "enhancer", "engines", "processing", "models", "support", "native"},
    "front end": {"ros", "enhancer", "engines", "processing", "models", "support", "native"},
    "cli": {"front end", "ros", "enhancer", "engines", "processing", "models", "support", "native"},
    "package": {"enhancer"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(path): path for path in sorted(package.rglob("*.py"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """The package modules (and ``training...``) that ``path`` imports anywhere in it;
    ``from a import b`` counts as ``a.b`` when that is a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in known else node.module)
    return {name for name in found if name.split(".")[0] in ("dkn_ros", "training")}


def layer(name: str) -> str:
    if name == "dkn_ros":
        return ROOT_LAYER
    matches = [prefix for prefix in LAYERS if name == prefix or name.startswith(prefix + ".")]
    if not matches:
        raise AssertionError(f"{name} has no layer: add it to LAYERS in {__file__}")
    return LAYERS[max(matches, key=len)]


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    found = modules(package)
    return {name: imports(path, set(found)) for name, path in found.items()}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_every_module_has_a_layer(graph):
    for name in graph:
        layer(name)


def test_the_package_never_imports_training(graph):
    offenders = {
        name: sorted(i for i in deps if i.startswith("training")) for name, deps in graph.items()
    }
    assert {name: deps for name, deps in offenders.items() if deps} == {}


def test_imports_follow_the_layers(graph):
    wrong = [
        f"{name} ({layer(name)}) imports {dep} ({layer(dep)})"
        for name, deps in sorted(graph.items())
        for dep in sorted(deps)
        if dep.startswith("dkn_ros") and layer(dep) not in MAY_IMPORT[layer(name)]
    ]
    assert wrong == []


@pytest.mark.parametrize("package", ["dkn_ros", "training"])
def test_no_import_circles(package):
    """Tarjan's strongly connected components over module -> imported module (a
    package counts through its ``__init__``), in the package and in ``training``."""
    graph = import_graph(REPO / package)
    edges = {name: {d for d in deps if d in graph and d != name} for name, deps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert circles == []


def test_the_rules_catch_a_backward_import(tmp_path):
    """The checker itself: an engine that imports the Enhancer is reported."""
    path = tmp_path / "bad.py"
    path.write_text("def f():\n    from dkn_ros.enhancer import Enhancer\n")
    deps = imports(path, set(modules()))
    assert deps == {"dkn_ros.enhancer"}
    assert layer("dkn_ros.enhancer") not in MAY_IMPORT[layer("dkn_ros.engines.tensorrt")]
