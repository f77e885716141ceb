"""FileSpace under Pulumi's mock runtime: what it registers, with which options and outputs."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from components.files import FileSpace, FileSpaceArgs
from components.providers.ocis import space_name, space_name_problem
from tests.providers.conftest import Monitor, Recorder, render_component

SPACE = "pulumi-python:dynamic/ocis:Space"
DRIVE = "storage-users-1$0b7c5d3e-4a1f-4c2e-9d8b-6f1e2a3b4c5d"
SPACE_OUTS = {"drive_id": DRIVE, "web_url": f"https://files.dezky.test/f/{DRIVE}"}


def render(args: FileSpaceArgs) -> tuple[Recorder, Monitor, dict[str, Any]]:
    """Build one FileSpace in a fresh mock deployment; return registrations and outputs."""
    build = functools.partial(FileSpace, "acme-files", args)
    return render_component(build, ("drive_id", "web_url"), {SPACE: SPACE_OUTS})


def args_for(**overrides: Any) -> FileSpaceArgs:
    base: dict[str, Any] = {
        "tenant_slug": "acme",
        "display_name": "Acme GmbH",
        "quota_gb": 250,
        "member_group": "acme",
        "manager_group": "acme-admins",
        "enabled": True,
        "tenant_status": "active",
    }
    return FileSpaceArgs(**{**base, **overrides})


@pytest.mark.parametrize("protect", [True, False])
def test_file_space_registers_a_protected_ocis_space_child(protect: bool) -> None:
    recorder, monitor, seen = render(args_for(protect=protect))

    child = monitor.options[SPACE]
    assert child["name"] == "acme-files-space"
    assert child["parent"].endswith("$dezky:files:FileSpace::acme-files")
    assert (child["protect"], child["retain_on_delete"]) == (protect, protect)
    inputs = recorder.inputs[SPACE]
    assert {k: inputs[k] for k in inputs if k != "__provider"} == {
        "name": "Acme GmbH",
        "tenant_slug": "acme",
        "quota_bytes": 250_000_000_000,
        "member_group": "acme",
        "manager_group": "acme-admins",
        "enabled": True,
        "tenant_status": "active",
        "purge": False,
    }
    assert "__provider" in inputs
    assert seen == {"drive_id": DRIVE, "web_url": f"https://files.dezky.test/f/{DRIVE}"}


def test_a_suspended_offboarding_tenant_passes_its_lifecycle_through() -> None:
    args = args_for(enabled=False, tenant_status="offboarding", purge=True, protect=False)
    recorder, _, _ = render(args)
    inputs = recorder.inputs[SPACE]
    assert (inputs["enabled"], inputs["tenant_status"], inputs["purge"]) == (
        False,
        "offboarding",
        True,
    )


@pytest.mark.parametrize(
    ("display", "expected"),
    [
        ("Acme GmbH", "Acme GmbH"),
        ("Müller & Co. KG", "Müller & Co KG"),
        ('a/b\\c:d?e*f"g<h>i|j.', "a b c d e f g h i j"),
        ("  spaced   out  ", "spaced out"),
    ],
)
def test_space_names_are_made_acceptable_to_ocis(display: str, expected: str) -> None:
    assert space_name(display) == expected
    assert space_name_problem(expected) is None
