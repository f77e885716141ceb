"""Mail in Stalwart: a tenant's mail domain, its DKIM keys and the DNS records to publish."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.providers import stalwart
from components.providers._base import guarded_child


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
        self.domain = stalwart.Domain(
            f"{name}-domain",
            domain=args.domain,
            tenant_slug=args.tenant_slug,
            opts=guarded_child(self, args.protect),
        )
        self.domain_id = self.domain.domain_id
        self.dns_records = self.domain.dns_records
        self.register_outputs({"domain_id": self.domain_id, "dns_records": self.dns_records})
