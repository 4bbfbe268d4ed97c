"""The layers of docs/ARCHITECTURE.md hold: dependencies point one way (web → oauth → store/crypto),
records.py imports nothing of ours, and chalicelib/wiring.py is the one composition root: no route
builds a service, and importing the app builds none."""

from __future__ import annotations

import ast
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from chalicelib import wiring

ROOT = Path(__file__).resolve().parent.parent
# a package -> what it must never import (the layers above it, and the composition root)
FORBIDDEN = {
    "chalicelib/oauth": ("chalicelib.web", "chalicelib.wiring"),
    "chalicelib/store": ("chalicelib.oauth", "chalicelib.web", "chalicelib.wiring"),
    "chalicelib/crypto": ("chalicelib.oauth", "chalicelib.web", "chalicelib.wiring"),
    "chalicelib/api": ("chalicelib.web", "chalicelib.wiring"),
}
ROUTE_MODULES = [ROOT / "app.py", *sorted((ROOT / "chalicelib" / "web").glob("*.py"))]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).glob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_point_one_way(package):
    crossing = sorted(f"{path.name} imports {module}" for path in _modules(package) for module in _imports(path)
                      if module.startswith(FORBIDDEN[package]))
    assert crossing == []


def test_the_record_types_import_nothing_of_ours():
    assert sorted(m for m in _imports(ROOT / "chalicelib" / "records.py") if m.startswith("chalicelib")) == []


def _service_classes() -> set[str]:
    """The classes of everything the composition root builds (the fields of wiring.Services)."""
    hints = typing.get_type_hints(wiring.Services)
    return {hint.__name__ for hint in hints.values() if isinstance(hint, type) and hint.__module__ != "builtins"}


def _constructed(path: Path, classes: set[str]) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name in classes:
                names.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}(...)")
    return names


def test_routes_construct_no_service_they_ask_the_wiring():
    classes = _service_classes()
    assert {"TokenEndpoint", "AuthorizationFlow", "Revoker", "Introspector", "Registrar", "Developer",
            "ResourceGuard", "ApiStore", "DynamoStore", "KeyRing", "Logout"} <= classes
    assert [site for path in ROUTE_MODULES for site in _constructed(path, classes)] == []


def test_importing_the_app_builds_no_service():
    code = "import app; from chalicelib import wiring; assert wiring._services is None, 'services built at import'"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "AWS_REGION": "us-east-1"})
    assert result.returncode == 0, result.stderr[-2000:]
