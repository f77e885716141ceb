"""The platform stack program: what every tenant stack builds on.

Today: the shared Authentik objects (parent group, login stages, recovery flow). The server,
Storage Boxes, host configuration, platform services and backups join as components.
"""

from __future__ import annotations

import pulumi

from components.identity_platform import PlatformIdentity
from stacks import refs
from tenants.environment import Environment


def build(environment: Environment) -> None:
    """Declare the platform's resources in the current Pulumi program."""
    identity = PlatformIdentity("identity")
    pulumi.export("environment", environment.name)
    refs.export(
        refs.PlatformRefs(
            tenants_group_id=identity.tenants.id,
            recovery_flow_id=identity.recovery_flow.uuid,
            identification_stage_id=identity.stages.identification,
            mfa_required_stage_id=identity.stages.mfa_required,
            mfa_optional_stage_id=identity.stages.mfa_optional,
            login_stage_id=identity.stages.login,
            deny_policy_id=identity.stages.deny_policy,
        )
    )
