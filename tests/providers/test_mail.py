"""MailDomain under Pulumi's mock runtime: what it registers, with which options and outputs."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from components.mail import MailDomain, MailDomainArgs
from tests.providers.conftest import Monitor, Recorder, render_component

DOMAIN = "pulumi-python:dynamic/stalwart:Domain"
RECORDS = [{"kind": "mx", "name": "acme.example.", "type": "MX", "value": "10 mail.dezky.test."}]
DOMAIN_OUTS = {"domain_id": "b42", "dkim_selectors": ["v1-rsa-20261123"], "dns_records": RECORDS}


def render(args: MailDomainArgs) -> tuple[Recorder, Monitor, dict[str, Any]]:
    """Build one MailDomain in a fresh mock deployment; return registrations and outputs."""
    build = functools.partial(MailDomain, "acme-mail", args)
    return render_component(build, ("domain_id", "dns_records"), {DOMAIN: DOMAIN_OUTS})


@pytest.mark.parametrize("protect", [True, False])
def test_mail_domain_registers_a_stalwart_domain_child(protect: bool) -> None:
    recorder, monitor, seen = render(MailDomainArgs("acme.example", "acme", protect=protect))

    child = monitor.options[DOMAIN]
    assert child["name"] == "acme-mail-domain"
    assert child["parent"].endswith("$dezky:mail:MailDomain::acme-mail")
    assert (child["protect"], child["retain_on_delete"]) == (protect, protect)
    inputs = recorder.inputs[DOMAIN]
    assert (inputs["domain"], inputs["tenant_slug"]) == ("acme.example", "acme")
    assert "__provider" in inputs
    assert seen == {"domain_id": "b42", "dns_records": RECORDS}
