"""Stack names: ``platform`` and ``tenant-<slug>``, and back."""

from __future__ import annotations

PLATFORM_STACK = "platform"
TENANT_PREFIX = "tenant-"


def tenant_stack(slug: str) -> str:
    return f"{TENANT_PREFIX}{slug}"


def tenant_slug(stack: str) -> str | None:
    """The tenant slug of a tenant stack name, or None for any other stack."""
    return stack.removeprefix(TENANT_PREFIX) if stack.startswith(TENANT_PREFIX) else None


def tenant_namespace(slug: str) -> str:
    return f"tenant-{slug}"
