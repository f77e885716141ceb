"""Shared fixtures: the repository root and a CLI runner over the real command."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A throw-away repository layout with the real environments and no tenants."""
    shutil.copytree(REPO / "environments", tmp_path / "environments")
    (tmp_path / "tenants").mkdir()
    return tmp_path


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()
