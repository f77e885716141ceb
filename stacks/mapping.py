"""Tenant spec -> component arguments: the only place that translates between the two."""

from __future__ import annotations

from components.identity import TenantGroupsArgs
from components.kubernetes import TenantNamespaceArgs
from stacks import naming
from tenants.model import Tenant
from tenants.plans import PLANS


def tenant_labels(tenant: Tenant) -> dict[str, str]:
    return {
        "dezky.eu/tenant": tenant.slug,
        "dezky.eu/plan": tenant.plan.value,
        "dezky.eu/status": tenant.status.value,
    }


def groups_args(tenant: Tenant, parent_group: str | None = None) -> TenantGroupsArgs:
    return TenantGroupsArgs(
        slug=tenant.slug,
        display_name=tenant.name,
        plan=tenant.plan.value,
        parent_group=parent_group,
    )


def namespace_args(tenant: Tenant) -> TenantNamespaceArgs:
    plan = PLANS[tenant.plan]
    return TenantNamespaceArgs(
        namespace=naming.tenant_namespace(tenant.slug),
        cpu_cores=plan.cpu_cores,
        memory_gib=plan.memory_gib,
        max_pods=plan.max_pods,
        labels=tenant_labels(tenant),
    )
