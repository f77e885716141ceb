"""Identity in Authentik: a tenant's member and admin groups."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_authentik as authentik


@dataclass(frozen=True)
class TenantGroupsArgs:
    """Inputs of ``TenantGroups``; ``attributes`` feed Authentik policies downstream."""

    slug: str
    display_name: str
    plan: str
    parent_group: pulumi.Input[str] | None = None


class TenantGroups(pulumi.ComponentResource):
    """The group ``<slug>`` (the tenant's users) and ``<slug>-admins``."""

    members: authentik.Group
    admins: authentik.Group

    def __init__(
        self, name: str, args: TenantGroupsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dezky:identity:TenantGroups", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        attributes = {"tenantSlug": args.slug, "tenantName": args.display_name, "plan": args.plan}
        self.members = authentik.Group(
            f"{name}-members",
            name=args.slug,
            parent=args.parent_group,
            attributes=json.dumps(attributes, sort_keys=True),
            opts=child,
        )
        self.admins = authentik.Group(
            f"{name}-admins",
            name=f"{args.slug}-admins",
            parent=args.parent_group,
            attributes=json.dumps({**attributes, "role": "admin"}, sort_keys=True),
            opts=child,
        )
        self.register_outputs({"members_id": self.members.id, "admins_id": self.admins.id})


class PlatformGroups(pulumi.ComponentResource):
    """The parent group ``tenants`` under which every tenant's groups live."""

    tenants: authentik.Group

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("dezky:identity:PlatformGroups", name, None, opts)
        self.tenants = authentik.Group(
            f"{name}-tenants",
            name="tenants",
            attributes=json.dumps({"managedBy": "dezky-infra"}),
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        self.register_outputs({"tenants_id": self.tenants.id})
