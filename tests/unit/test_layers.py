"""The layers of docs/architecture.md, checked: below `service/api/` nothing knows HTTP."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

# every module of these packages, imported in a fresh interpreter (TensorFlow included)
DOMAIN = ["service.dataplane", "service.inference", "service.sessions", "service.client"]
WEB = ("fastapi", "starlette", "uvicorn")


@pytest.mark.parametrize(
    "package",
    # service.inference imports TensorFlow (seconds): not in make check
    [pytest.param(p, marks=pytest.mark.slow) if p == "service.inference" else p for p in DOMAIN],
)
def test_importing_the_domain_loads_no_web_framework(package: str) -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        f"package = importlib.import_module({package!r})\n"
        "prefix = package.__name__ + '.'\n"
        "names = [m.name for m in pkgutil.walk_packages(package.__path__, prefix)]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        f"web = sorted(m for m in sys.modules if m.split('.')[0] in {WEB!r})\n"
        "print(len(names), ' '.join(web))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, _, web = out.stdout.strip().partition(" ")
    assert int(count) >= 5, f"{package}: only {count} modules found"
    assert web == "", f"importing {package} loads {' '.join(web.split()[:5])} ..."


SERVICE = Path(__file__).resolve().parents[2] / "service"
# what every server layer may use: the domain's errors, settings, wire models, logs/metrics
COMMON = {"service", "service.errors", "service.config", "service.digits", "service.wire"}
COMMON |= {"service.observability", "service.progress"}
INFERENCE = {f"service.inference.{p}" for p in ("model", "compiled", "reference", "serving")}
# layer -> the other layers it may import (docs/architecture.md, "Who may import whom")
ALLOWED: dict[str, set[str]] = {
    "service.api": COMMON
    | {"service.dataplane", "service.runtime", "service.sessions"}
    | {"service.inference.model"},
    "service.dataplane": COMMON
    | {"service.sessions", "service.inference.model"}
    | {"service.inference.serving", "service.inference.reference"},
    "service.inference.serving": COMMON | {"service.inference.model", "service.inference.compiled"},
    "service.inference.compiled": COMMON
    | {"service.inference.model", "service.inference.reference"},
    "service.inference.reference": COMMON | {"service.inference.model"},
    "service.inference.model": COMMON,
    "service.sessions": COMMON,
    "service.observability": {"service.config", "service.observability"},
    "service.wire": set(),
    "service.client": {"service", "service.wire"},
    "service.cli": {"service", "service.wire", "service.client"},
    "service.tools": COMMON | {"service.dataplane"} | INFERENCE,
    "service.training": COMMON | INFERENCE,
}


def _layer(module: str) -> str:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return module  # a top-level module (app, runtime, server, ...): not a layer


def _imports(path: Path) -> set[str]:
    """The service modules `path` imports, at run time (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for stmt in block.body
        for node in ast.walk(stmt)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("service"):
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("service")}
    return found


def _known(module: str) -> bool:
    path = SERVICE.parent / module.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def test_each_layer_imports_only_the_layers_below_it() -> None:
    wrong = []
    for path in sorted(SERVICE.rglob("*.py")):
        module = ".".join(path.relative_to(SERVICE.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        layer = _layer(module)
        if layer not in ALLOWED:
            continue
        for name in _imports(path):
            if not _known(name):  # `from package import name`: the name is not a module
                continue
            target = _layer(name)
            if target != layer and target not in ALLOWED[layer]:
                wrong.append(f"{module} imports {name}")
    assert wrong == []
