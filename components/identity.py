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


@dataclass(frozen=True)
class TenantLoginArgs:
    """Inputs of ``TenantLogin``: the brand's domain and the shared stages to bind."""

    slug: str
    display_name: str
    portal_domain: str
    suspended: bool
    identification_stage: pulumi.Input[str]
    second_factor_stage: pulumi.Input[str]
    login_stage: pulumi.Input[str]
    deny_policy: pulumi.Input[str]
    recovery_flow: pulumi.Input[str]


class TenantLogin(pulumi.ComponentResource):
    """The tenant's brand on its portal domain, with its own authentication flow.

    The flow binds the shared identification, second-factor and login stages; a suspended
    tenant's flow also binds the deny policy, so nobody can log in through its brand while
    every account and all data stay as they are.
    """

    flow: authentik.Flow
    brand: authentik.Brand

    def __init__(
        self, name: str, args: TenantLoginArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dezky:identity:TenantLogin", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.flow = authentik.Flow(
            f"{name}-flow",
            slug=f"{args.slug}-authentication",
            name=f"{args.display_name} sign-in",
            title=f"Sign in to {args.display_name}",
            designation="authentication",
            opts=child,
        )
        stages = (
            (10, args.identification_stage),
            (20, args.second_factor_stage),
            (100, args.login_stage),
        )
        for order, stage in stages:
            authentik.FlowStageBinding(
                f"{name}-binding-{order}",
                target=self.flow.uuid,
                stage=stage,
                order=order,
                opts=child,
            )
        if args.suspended:
            authentik.PolicyBinding(
                f"{name}-suspended",
                target=self.flow.uuid,
                policy=args.deny_policy,
                order=0,
                opts=child,
            )
        self.brand = authentik.Brand(
            f"{name}-brand",
            domain=args.portal_domain,
            branding_title=args.display_name,
            flow_authentication=self.flow.uuid,
            flow_recovery=args.recovery_flow,
            attributes=json.dumps({"tenantSlug": args.slug}),
            opts=child,
        )
        self.register_outputs({"flow": self.flow.uuid, "brand": self.brand.id})
