"""What tenant stacks read from the platform stack: one dataclass, both sides.

The platform stack exports every field under its own name; a tenant stack reads the same
names through a stack reference, so the two cannot drift apart. The fields in
``SECRET_OUTPUTS`` are exported as secrets and stay secrets when read.
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
    # Where the tenant stack's providers reach the platform's services.
    authentik_url: pulumi.Input[str]
    stalwart_jmap_url: pulumi.Input[str]
    """Base URL of Stalwart's JMAP API (its client reads ``/jmap/session`` under it)."""
    ocis_url: pulumi.Input[str]
    kubeconfig: pulumi.Input[str]
    """The k3s kubeconfig (admin credentials): a secret output."""


OUTPUT_NAMES = tuple(f.name for f in fields(PlatformRefs))
SECRET_OUTPUTS = frozenset({"kubeconfig"})


def export(refs: PlatformRefs) -> None:
    """Platform side: export every reference under its field name."""
    for name in OUTPUT_NAMES:
        value = getattr(refs, name)
        pulumi.export(name, pulumi.Output.secret(value) if name in SECRET_OUTPUTS else value)


def read() -> PlatformRefs:
    """Tenant side: read every reference from the platform stack of this backend."""
    # Self-managed backends name stacks organization/<project>/<stack>.
    stack = pulumi.StackReference(f"organization/{PROJECT}/{PLATFORM_STACK}")
    values: dict[str, Any] = {}
    for name in OUTPUT_NAMES:
        output = stack.require_output(name)
        values[name] = pulumi.Output.secret(output) if name in SECRET_OUTPUTS else output
    return PlatformRefs(**values)
