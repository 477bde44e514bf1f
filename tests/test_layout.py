"""Dependencies run one way: kernel -> models -> operators -> state -> flows -> app.

Read from the source with :mod:`ast` (nothing is imported), so a wrong-way
import fails here before it can hide behind an import cycle. The agent service
(``gateway``), when present, may import the kernel and ``state.reader`` only.
"""

from __future__ import annotations

import ast
import sys
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
    return found


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
    (fake / "bad.py").write_text("from operators.engine import Engine\nimport bytewax.operators as op\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = violations("livesignals")
    assert len(found) == 2
    assert "livesignals is below operators" in found[0]
    assert "only flows/ may import bytewax" in found[1]


def test_every_package_is_installed():
    """pyproject lists every import package of the tree, subpackages included."""
    text = (ROOT / "pyproject.toml").read_text()
    for init in ROOT.glob("*/**/__init__.py"):
        package = ".".join(init.parent.relative_to(ROOT).parts)
        if package.split(".")[0] in PROJECT:
            assert f'"{package}"' in text, f"{package} is missing from [tool.setuptools] packages"
