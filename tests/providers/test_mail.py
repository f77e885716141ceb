"""MailDomain under Pulumi's mock runtime: what it registers, with which options and outputs."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pulumi
import pytest
from pulumi.runtime import mocks, settings
from pulumi.runtime.stack import wait_for_rpcs

from components.mail import MailDomain, MailDomainArgs

RECORDS = [{"kind": "mx", "name": "acme.example.", "type": "MX", "value": "10 mail.dezky.test."}]


class Recorder(pulumi.runtime.Mocks):
    """Answers registrations like a provider would and keeps their inputs."""

    def __init__(self) -> None:
        self.inputs: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.inputs[args.typ] = dict(args.inputs)
        outs = dict(args.inputs)
        if args.typ == "pulumi-python:dynamic/stalwart:Domain":
            outs.update(domain_id="b42", dkim_selectors=["v1-rsa-20261123"], dns_records=RECORDS)
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
            return super().RegisterResource(request)  # type: ignore[no-untyped-call]
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


def render(args: MailDomainArgs) -> tuple[Recorder, Monitor, dict[str, Any]]:
    """Build one MailDomain in a fresh mock deployment; return registrations and outputs."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # before set_mocks: its futures bind to this loop
    recorder = Recorder()
    monitor = Monitor(recorder)
    mocks.set_mocks(recorder, project="dezky-infra", stack="tenant-acme", monitor=monitor)
    settings.SETTINGS.feature_support["parameterization"] = True
    seen: dict[str, Any] = {}
    try:
        mail = MailDomain("acme-mail", args)
        mail.domain_id.apply(lambda v: seen.setdefault("domain_id", v))
        mail.dns_records.apply(lambda v: seen.setdefault("dns_records", v))
        loop.run_until_complete(wait_for_rpcs())
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    return recorder, monitor, seen


@pytest.mark.parametrize("protect", [True, False])
def test_mail_domain_registers_a_stalwart_domain_child(protect: bool) -> None:
    recorder, monitor, seen = render(MailDomainArgs("acme.example", "acme", protect=protect))

    child = monitor.options["pulumi-python:dynamic/stalwart:Domain"]
    assert child["name"] == "acme-mail-domain"
    assert child["parent"].endswith("$dezky:mail:MailDomain::acme-mail")
    assert (child["protect"], child["retain_on_delete"]) == (protect, protect)
    inputs = recorder.inputs["pulumi-python:dynamic/stalwart:Domain"]
    assert (inputs["domain"], inputs["tenant_slug"]) == ("acme.example", "acme")
    assert "__provider" in inputs
    assert seen == {"domain_id": "b42", "dns_records": RECORDS}
