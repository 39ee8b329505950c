"""Code-shape rules the project holds itself to: one-directional layers (spec -> model -> engine -> aws;
renderers and doctor never call the engine), every module documented and under ~500 lines, ruff and mypy
clean."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "kubeaws"
MODULES = sorted(p for p in SRC.rglob("*.py"))

# layer -> kubeaws packages it may import (besides itself and kubeaws.errors).
ALLOWED = {
    "spec": set(),
    "aws": set(),
    "resources": {"aws", "pki", "kube_client", "eks_auth"},
    "model": {"spec", "resources", "aws", "bootstrap", "addons"},
    "engine": {"model", "resources", "aws", "spec"},
    "local": set(),
    "addons": {"spec"},
    "bootstrap": {"spec", "addons"},
    "api": {"spec", "model", "engine", "aws", "resources", "bootstrap", "addons"},
    "cli": {"spec", "model", "engine", "aws", "resources", "api", "local", "bootstrap", "addons", "access", "pki",
            "eks_auth", "doctor"},
    "doctor": {"spec", "model", "resources", "aws", "kube_client", "eks_auth", "access"},
}


def layer_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 or rel.stem == "api" else "root"


def kubeaws_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "kubeaws" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_layers_are_one_directional(path: Path) -> None:
    layer = layer_of(path)
    if layer not in ALLOWED:
        return  # kubeaws/__init__.py re-exports the API lazily
    extra = kubeaws_imports(path) - ALLOWED[layer] - {layer, "errors", "cache"}  # leaf modules
    assert not extra, f"{path.relative_to(SRC)} ({layer}) imports {sorted(extra)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_modules_are_documented_and_small(path: Path) -> None:
    text = path.read_text()
    assert ast.get_docstring(ast.parse(text)), f"{path} has no module docstring"
    assert len(text.splitlines()) <= 500, f"{path} has more than 500 lines"


def _tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return found


def test_ruff_clean() -> None:
    root = SRC.parent.parent
    proc = subprocess.run([_tool("ruff"), "check", "src", "tests", "bench"], cwd=root, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_clean() -> None:
    root = SRC.parent.parent
    proc = subprocess.run([_tool("mypy")], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
