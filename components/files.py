"""Files in OCIS: a tenant's project space, its quota and the groups that may use it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.providers import ocis
from components.providers._base import guarded_child

GB = 10**9  # plan quotas are in GB of 10^9 bytes (tenants/plans.py)


@dataclass(frozen=True)
class FileSpaceArgs:
    """Inputs of ``FileSpace``; ``protect`` guards customer files against an accidental delete."""

    tenant_slug: str
    display_name: str
    """The tenant's name; characters OCIS refuses in a space name become spaces."""
    quota_gb: int
    member_group: str
    """OCIS group (display name) of the tenant's users: Space Editor."""
    manager_group: str
    """OCIS group (display name) of the tenant's admins: Manager."""
    enabled: bool
    """False for a suspended tenant: the space is disabled, its files kept."""
    tenant_status: str
    purge: bool = False
    """With ``tenant_status == "offboarding"``: a destroy deletes the files for good."""
    protect: bool = True


class FileSpace(pulumi.ComponentResource):
    """One tenant project space in OCIS (an ``ocis:Space`` dynamic resource)."""

    space: ocis.Space
    drive_id: pulumi.Output[str]
    web_url: pulumi.Output[str]

    def __init__(
        self, name: str, args: FileSpaceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dezky:files:FileSpace", name, None, opts)
        self.space = ocis.Space(
            f"{name}-space",
            name=ocis.space_name(args.display_name),
            tenant_slug=args.tenant_slug,
            quota_bytes=args.quota_gb * GB,
            member_group=args.member_group,
            manager_group=args.manager_group,
            enabled=args.enabled,
            tenant_status=args.tenant_status,
            purge=args.purge,
            opts=guarded_child(self, args.protect),
        )
        self.drive_id = self.space.drive_id
        self.web_url = self.space.web_url
        self.register_outputs({"drive_id": self.drive_id, "web_url": self.web_url})
