"""The layering rule of docs/architecture.md, checked on the source (AST, no imports).

Layers, lowest first: models (the contract) → data → training → index (bundle/index)
→ service → the ``seislens`` package (CLI and pipelines). A module may import
``seislens.*`` modules of its own layer or a lower one only — at module level or inside
a function alike. Serving layers (index, service) never import torch, deepwave or onnx:
the serving install has none of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS: dict[str, int] = {
    "models": 0,
    "data": 1,
    "training": 2,
    "index": 3,
    "service": 4,
    "seislens": 5,
}
"""Import name of each package below ``seislens`` (and the top package) → its layer."""

FOLDERS: dict[str, str] = {
    "models": "models",
    "data": "data",
    "training": "training",
    "index": "index",
    "service": "service",
    "seislens": "seislens",
}
"""Layer name → the repository folder holding its modules."""

TRAINING_ONLY = ("torch", "deepwave", "onnx", "onnxscript")
"""Top-level packages the serving layers must not import (onnxruntime is fine)."""


def _layer_of_import(name: str) -> str | None:
    """The layer of an imported ``seislens.<pkg>...`` module, None for others."""
    parts = name.split(".")
    if parts[0] != "seislens" or len(parts) == 1:
        return None  # the bare package holds only the version: importable from anywhere
    if parts[1] not in LAYERS:
        return "seislens"
    return parts[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, at any depth."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "seislens":
                found.extend(
                    (node.lineno, f"seislens.{a.name}")
                    for a in node.names
                    if a.name in LAYERS or (ROOT / "seislens" / f"{a.name}.py").exists()
                )
    return found


def _sources() -> list[tuple[str, Path]]:
    return [
        (layer, path)
        for layer, folder in FOLDERS.items()
        for path in sorted((ROOT / folder).glob("*.py"))
    ]


def test_every_package_folder_is_known():
    pyproject = (ROOT / "pyproject.toml").read_text()
    for layer, folder in FOLDERS.items():
        assert (ROOT / folder / "__init__.py").exists(), folder
        assert f'"{folder}"' in pyproject, f"{folder} is not mapped in pyproject.toml"
        assert layer in LAYERS


def _violations() -> list[str]:
    bad: list[str] = []
    for layer, path in _sources():
        rel = path.relative_to(ROOT)
        for line, module in _imports(path):
            target = _layer_of_import(module)
            if target is not None and LAYERS[target] > LAYERS[layer]:
                bad.append(f"{rel}:{line} ({layer}) imports {module} ({target}, higher)")
            top = module.split(".")[0]
            if layer in ("index", "service") and top in TRAINING_ONLY:
                bad.append(f"{rel}:{line} ({layer}) imports {module} (training only)")
    return bad


def test_no_module_imports_a_higher_layer():
    assert _violations() == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from seislens.index.bundle import read_manifest\n", "imports seislens.index.bundle"),
        ("def f():\n    import torch\n", "imports torch"),
    ],
)
def test_the_check_catches_upward_imports(tmp_path, monkeypatch, source, expected):
    """The checker itself: an upward import in a lower layer is reported."""
    fake = tmp_path / "data"
    for folder in FOLDERS.values():
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "__init__.py").write_text("")
    (fake / "bad.py").write_text(source)
    (tmp_path / "service" / "bad.py").write_text(source)
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    bad = _violations()
    assert any(expected in b for b in bad), bad
