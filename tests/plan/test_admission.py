"""Admission in the offline plan: EU locations only; quotas within capacity and headroom."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from automation.cli import app
from tests.conftest import REPO


def repo(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "environments", tmp_path / "environments")
    shutil.copytree(
        REPO / "tenants", tmp_path / "tenants", ignore=shutil.ignore_patterns("*.py", "__pycache__")
    )
    return tmp_path


def test_a_storage_box_outside_the_eu_fails_the_plan(tmp_path: Path) -> None:
    root = repo(tmp_path)
    env = root / "environments" / "prod.yaml"
    env.write_text(env.read_text().replace("location: hel1", "location: ash"))
    result = CliRunner().invoke(app, ["plan", "--repo", str(root)])
    assert result.exit_code == 2
    assert result.output == (
        "admission: platform: hcloud:index/storageBox:StorageBox dr-box is in 'ash'; "
        "Hetzner resources must be in an EU location (fsn1, hel1, nbg1)\n"
    )


def test_quotas_beyond_capacity_fail_with_the_numbers(tmp_path: Path) -> None:
    root = repo(tmp_path)
    path = root / "tenants" / "acme.yaml"
    path.write_text(path.read_text() + "quota:\n  mail_gb: 150\n")
    result = CliRunner().invoke(app, ["plan", "--repo", str(root)])
    assert result.exit_code == 2
    assert result.output == (
        "admission: tenants' mail quotas add up to 350 GB; prod holds 400 GB and keeps 20% "
        "headroom, so at most 320 GB may be promised (30 GB too many)\n"
    )
    fits = path.read_text().replace("mail_gb: 150", "mail_gb: 120")
    path.write_text(fits)
    assert CliRunner().invoke(app, ["plan", "--repo", str(root)]).exit_code == 0
