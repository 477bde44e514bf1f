"""Dependencies run one way: kernel -> models -> operators -> state -> flows -> app.

Read from the source with :mod:`ast` (nothing is imported), so a wrong-way
import fails here before it can hide behind an import cycle. The agent service
(``gateway``), when present, may import the kernel and ``state.reader`` only.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Rank of each top-level package: a package may import only those of lower or
# equal rank (equal = itself).
RANK = {"livesignals": 0, "models": 1, "operators": 2, "state": 3, "flows": 4, "app": 5}
SERVICE = "gateway"
SERVICE_MAY_IMPORT = ("livesignals", "state.reader")
PROJECT = (*RANK, SERVICE)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every absolute module name ``path`` imports, with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            # "from state import reader" names a module too
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
        elif _is_dynamic_import(node):
            found.append((node.lineno, node.args[0].value))  # type: ignore[attr-defined]
    return found


def _is_dynamic_import(node: ast.AST) -> bool:
    """``importlib.import_module("x")`` or ``__import__("x")`` with a literal name."""
    if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
        return False
    if not isinstance(node.args[0].value, str):
        return False
    f = node.func
    return (isinstance(f, ast.Name) and f.id in {"__import__", "import_module"}) or (
        isinstance(f, ast.Attribute) and f.attr == "import_module"
    )


def _service_may_import(name: str) -> bool:
    # "from state import reader" yields both "state" and "state.reader": the
    # bare package name is judged by the dotted form that comes with it.
    return name == "state" or any(name == m or name.startswith(m + ".") for m in SERVICE_MAY_IMPORT)


def violations(package: str) -> list[str]:
    """Wrong-way imports in ``package``, as ``file:line: imports X``."""
    bad: list[str] = []
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = path.relative_to(ROOT)
        seen: set[tuple[int, str]] = set()
        for line, name in imported_modules(path):
            top = name.split(".")[0]
            if (line, top) in seen and package != SERVICE:
                continue
            seen.add((line, top))
            where = f"{rel}:{line}: imports {name}"
            if top == "bytewax" and package != "flows":
                bad.append(f"{where} (only flows/ may import bytewax)")
            elif package == SERVICE and top in PROJECT and top != SERVICE and not _service_may_import(name):
                bad.append(f"{where} (the service may import the kernel and state.reader only)")
            elif package in RANK and top in RANK and RANK[top] > RANK[package]:
                bad.append(f"{where} ({package} is below {top})")
            elif package in RANK and top == SERVICE:
                bad.append(f"{where} (nothing imports the service)")
    return bad


@pytest.mark.parametrize("package", [p for p in PROJECT if (ROOT / p).is_dir()])
def test_imports_run_one_way(package):
    assert violations(package) == []


def test_the_check_catches_a_wrong_way_import(tmp_path, monkeypatch):
    """The test above would fail: a kernel module importing operators is caught."""
    fake = tmp_path / "livesignals"
    fake.mkdir()
    (fake / "bad.py").write_text(
        "from operators.engine import Engine\n"
        "import bytewax.operators as op\n"
        "def f():\n    import importlib\n    return importlib.import_module('app.cli')\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = violations("livesignals")
    assert len(found) == 3
    assert "livesignals is below operators" in found[0]
    assert "only flows/ may import bytewax" in found[1]
    assert "livesignals is below app" in found[2]


def _installed_packages() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return list(tomllib.load(fh)["tool"]["setuptools"]["packages"])


def test_every_package_is_ranked_and_installed():
    """Every import package of the tree has a layer and is listed in pyproject (subpackages too)."""
    installed = _installed_packages()
    tops = [d for d in ROOT.iterdir() if (d / "__init__.py").exists() and d.name not in {"tests", "bench"}]
    for top in sorted(tops):
        assert top.name in PROJECT, f"top-level package {top.name!r} has no layer in tests/test_layout.py"
        for init in sorted(top.rglob("__init__.py")):
            package = ".".join(init.parent.relative_to(ROOT).parts)
            assert package in installed, f"{package} is missing from [tool.setuptools] packages"


def test_no_namespace_packages():
    """A folder of modules without ``__init__.py`` would be left out of the wheel."""
    for top in PROJECT:
        for folder in (ROOT / top).rglob("*"):
            if folder.is_dir() and folder.name != "__pycache__" and any(folder.glob("*.py")):
                assert (folder / "__init__.py").exists(), f"{folder.relative_to(ROOT)} has no __init__.py"
