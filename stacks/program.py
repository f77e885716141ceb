"""Which program a stack runs, given its validated inputs.

The real engine (``stacks/__main__.py``) and the offline plan (automation.render) both come
through ``run``, so the plan shows exactly what an update would declare.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks import platform, tenant
from stacks.naming import PLATFORM_STACK, tenant_stack
from stacks.secrets import OFFLINE, StackSecrets
from tenants.environment import Environment
from tenants.model import Tenant


@dataclass(frozen=True)
class StackInputs:
    """Everything a stack program needs: its name, environment and, for tenants, the spec."""

    stack: str
    environment: Environment
    tenant: Tenant | None = None
    # Offline (plan, tests) every secret is a masked stand-in; the engine passes real ones.
    secrets: StackSecrets = OFFLINE

    @classmethod
    def for_tenant(
        cls, spec: Tenant, environment: Environment, secrets: StackSecrets | None = None
    ) -> StackInputs:
        return cls(tenant_stack(spec.slug), environment, spec, secrets or OFFLINE)

    @classmethod
    def for_platform(
        cls, environment: Environment, secrets: StackSecrets | None = None
    ) -> StackInputs:
        return cls(PLATFORM_STACK, environment, secrets=secrets or OFFLINE)


def run(inputs: StackInputs) -> None:
    """Declare the stack's resources in the current Pulumi program."""
    if inputs.tenant is not None:
        tenant.build(inputs.tenant, inputs.environment, inputs.secrets)
    else:
        platform.build(inputs.environment, inputs.secrets)
