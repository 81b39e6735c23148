"""The layers of docs/architecture.md, checked: below `service/api/` nothing knows HTTP."""

from __future__ import annotations

import subprocess
import sys

import pytest

# every module of these packages, imported in a fresh interpreter (TensorFlow included)
DOMAIN = ["service.dataplane", "service.inference", "service.sessions", "service.client"]
WEB = ("fastapi", "starlette", "uvicorn")


@pytest.mark.parametrize("package", DOMAIN)
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
