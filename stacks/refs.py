"""What tenant stacks read from the platform stack: one dataclass, both sides.

The platform stack exports every field under its own name; a tenant stack reads the same
names through a stack reference, so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import pulumi

from stacks.naming import PLATFORM_STACK

PROJECT = "dezky-infra"


@dataclass(frozen=True)
class PlatformRefs:
    """Platform stack outputs a tenant stack builds on."""

    tenants_group_id: pulumi.Input[str]
    recovery_flow_id: pulumi.Input[str]
    identification_stage_id: pulumi.Input[str]
    mfa_required_stage_id: pulumi.Input[str]
    mfa_optional_stage_id: pulumi.Input[str]
    login_stage_id: pulumi.Input[str]
    deny_policy_id: pulumi.Input[str]


OUTPUT_NAMES = tuple(f.name for f in fields(PlatformRefs))


def export(refs: PlatformRefs) -> None:
    """Platform side: export every reference under its field name."""
    for name in OUTPUT_NAMES:
        pulumi.export(name, getattr(refs, name))


def read() -> PlatformRefs:
    """Tenant side: read every reference from the platform stack of this backend."""
    # Self-managed backends name stacks organization/<project>/<stack>.
    stack = pulumi.StackReference(f"organization/{PROJECT}/{PLATFORM_STACK}")
    values: dict[str, Any] = {name: stack.require_output(name) for name in OUTPUT_NAMES}
    return PlatformRefs(**values)
