"""The dependency rule parts that import-linter cannot express (see docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("package", ["tenants", "components", "stacks"])
def test_only_automation_drives_the_pulumi_engine(package: str) -> None:
    offenders = [
        str(path.relative_to(REPO))
        for path in sorted((REPO / package).rglob("*.py"))
        if any(name.startswith("pulumi.automation") for name in _imports(path))
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "line",
    [
        "import pulumi.automation as auto",
        "from pulumi import automation",
        "from pulumi.automation import LocalWorkspace",
    ],
)
def test_the_check_sees_every_import_form(tmp_path: Path, line: str) -> None:
    module = tmp_path / "m.py"
    module.write_text(line + "\n")
    assert any(name.startswith("pulumi.automation") for name in _imports(module))
