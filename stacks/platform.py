"""The platform stack program: what every tenant stack builds on.

Today it declares the shared Authentik parent group ``tenants``; the server, storage boxes,
host configuration, platform services and backups join it as components.
"""

from __future__ import annotations

import pulumi

from components.identity import PlatformGroups
from tenants.environment import Environment


def build(environment: Environment) -> None:
    """Declare the platform's resources in the current Pulumi program."""
    groups = PlatformGroups("identity")
    pulumi.export("environment", environment.name)
    pulumi.export("tenants_group_id", groups.tenants.id)
