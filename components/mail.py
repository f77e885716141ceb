"""Mail in Stalwart: a tenant's mail domain, its DKIM keys and the DNS records to publish."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.providers import stalwart


@dataclass(frozen=True)
class MailDomainArgs:
    """Inputs of ``MailDomain``; ``protect`` guards customer mail against an accidental delete."""

    domain: str
    tenant_slug: str
    protect: bool = True


class MailDomain(pulumi.ComponentResource):
    """One tenant mail domain in Stalwart (a ``stalwart:Domain`` dynamic resource)."""

    domain: stalwart.Domain
    domain_name: str
    domain_id: pulumi.Output[str]
    dns_records: pulumi.Output[list[dict[str, str]]]

    def __init__(
        self, name: str, args: MailDomainArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dezky:mail:MailDomain", name, None, opts)
        self.domain_name = args.domain
        # protect stops a delete in the engine; retain_on_delete keeps the mail if someone
        # lifts protect and removes the resource anyway. Offboarding is an explicit step.
        child = (
            pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True)
            if args.protect
            else pulumi.ResourceOptions(parent=self)
        )
        self.domain = stalwart.Domain(
            f"{name}-domain", domain=args.domain, tenant_slug=args.tenant_slug, opts=child
        )
        self.domain_id = self.domain.domain_id
        self.dns_records = self.domain.dns_records
        self.register_outputs({"domain_id": self.domain_id, "dns_records": self.dns_records})
