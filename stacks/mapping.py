"""Tenant spec -> component arguments: the only place that translates between the two."""

from __future__ import annotations

from components.files import FileSpaceArgs
from components.identity import TenantGroupsArgs, TenantLoginArgs
from components.kubernetes import TenantNamespaceArgs
from components.mail import MailDomainArgs
from stacks import naming
from stacks.refs import PlatformRefs
from tenants.environment import Environment
from tenants.model import Status, Tenant
from tenants.plans import PLANS, Mfa


def tenant_labels(tenant: Tenant) -> dict[str, str]:
    return {
        "dezky.eu/tenant": tenant.slug,
        "dezky.eu/plan": tenant.plan.value,
        "dezky.eu/status": tenant.status.value,
    }


def groups_args(tenant: Tenant, refs: PlatformRefs) -> TenantGroupsArgs:
    return TenantGroupsArgs(
        slug=tenant.slug,
        display_name=tenant.name,
        plan=tenant.plan.value,
        parent_group=refs.tenants_group_id,
    )


def login_args(tenant: Tenant, environment: Environment, refs: PlatformRefs) -> TenantLoginArgs:
    required = tenant.effective_mfa is Mfa.REQUIRED
    return TenantLoginArgs(
        slug=tenant.slug,
        display_name=tenant.name,
        portal_domain=tenant.resolved_portal_domain(environment.base_domain),
        suspended=tenant.status is Status.SUSPENDED,
        identification_stage=refs.identification_stage_id,
        second_factor_stage=refs.mfa_required_stage_id if required else refs.mfa_optional_stage_id,
        login_stage=refs.login_stage_id,
        deny_policy=refs.deny_policy_id,
        recovery_flow=refs.recovery_flow_id,
    )


def namespace_args(tenant: Tenant, environment: Environment) -> TenantNamespaceArgs:
    plan = PLANS[tenant.plan]
    return TenantNamespaceArgs(
        namespace=naming.tenant_namespace(tenant.slug),
        cpu_cores=plan.cpu_cores,
        memory_gib=plan.memory_gib,
        max_pods=plan.max_pods,
        ingress_namespace=environment.ingress_namespace,
        labels=tenant_labels(tenant),
    )


def mail_args(tenant: Tenant) -> list[MailDomainArgs]:
    # Customer mail stays protected until the tenant is offboarding; only then may an
    # explicit destroy remove a domain.
    protect = tenant.status is not Status.OFFBOARDING
    return [MailDomainArgs(d, tenant.slug, protect=protect) for d in tenant.mail_domains]


def files_args(tenant: Tenant) -> FileSpaceArgs:
    # The OCIS groups carry the Authentik group names: members edit, admins manage.
    return FileSpaceArgs(
        tenant_slug=tenant.slug,
        display_name=tenant.name,
        quota_gb=tenant.files_gb,
        member_group=tenant.slug,
        manager_group=f"{tenant.slug}-admins",
        enabled=tenant.status is Status.ACTIVE,
        tenant_status=tenant.status.value,
        purge=tenant.purge_files_on_destroy,
        protect=tenant.status is not Status.OFFBOARDING,
    )
