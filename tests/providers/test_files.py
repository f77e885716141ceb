"""FileSpace under Pulumi's mock runtime: what it registers, with which options and outputs."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pulumi
import pytest
from pulumi.runtime import mocks, settings
from pulumi.runtime.stack import wait_for_rpcs

from components.files import FileSpace, FileSpaceArgs
from components.providers.ocis import space_name, space_name_problem

SPACE = "pulumi-python:dynamic/ocis:Space"
DRIVE = "storage-users-1$0b7c5d3e-4a1f-4c2e-9d8b-6f1e2a3b4c5d"


class Recorder(pulumi.runtime.Mocks):
    """Answers registrations like a provider would and keeps their inputs."""

    def __init__(self) -> None:
        self.inputs: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.inputs[args.typ] = dict(args.inputs)
        outs = dict(args.inputs)
        if args.typ == SPACE:
            outs.update(drive_id=DRIVE, web_url=f"https://files.dezky.test/f/{DRIVE}")
        return f"{args.name}_id", outs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


class Monitor(mocks.MockMonitor):
    """The mock monitor, also keeping the resource options the engine would receive."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__(recorder)
        self.options: dict[str, dict[str, Any]] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        self.options[request.type] = {
            "name": request.name,
            "parent": request.parent,
            "protect": request.protect,
            "retain_on_delete": request.retainOnDelete,
        }
        try:
            return super().RegisterResource(request)
        finally:
            _close_worker_loop()


def _close_worker_loop() -> None:
    """Close the loop the mock monitor opens in each executor thread (else: ResourceWarning)."""
    if threading.current_thread() is threading.main_thread():
        return
    try:
        loop = asyncio.get_event_loop()
    except RuntimeError:
        return
    if not loop.is_running():
        loop.close()
        asyncio.set_event_loop(None)


def render(args: FileSpaceArgs) -> tuple[Recorder, Monitor, dict[str, Any]]:
    """Build one FileSpace in a fresh mock deployment; return registrations and outputs."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # before set_mocks: its futures bind to this loop
    recorder = Recorder()
    monitor = Monitor(recorder)
    mocks.set_mocks(recorder, project="dezky-infra", stack="tenant-acme", monitor=monitor)
    settings.SETTINGS.feature_support["parameterization"] = True
    seen: dict[str, Any] = {}
    try:
        files = FileSpace("acme-files", args)
        files.drive_id.apply(lambda v: seen.setdefault("drive_id", v))
        files.web_url.apply(lambda v: seen.setdefault("web_url", v))
        loop.run_until_complete(wait_for_rpcs())
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    return recorder, monitor, seen


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
