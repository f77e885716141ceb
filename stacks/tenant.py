"""The tenant stack program: everything one tenant needs, declared through components.

Adding a tenant resource means adding a component and one line here.
"""

from __future__ import annotations

import pulumi

from components.identity import TenantGroups, TenantLogin
from components.kubernetes import TenantNamespace
from stacks import mapping, refs
from tenants.environment import Environment
from tenants.model import Tenant


def build(tenant: Tenant, environment: Environment) -> None:
    """Declare the tenant's resources in the current Pulumi program."""
    platform = refs.read()
    groups = TenantGroups("identity", mapping.groups_args(tenant, platform))
    TenantLogin("login", mapping.login_args(tenant, environment, platform))
    namespace = TenantNamespace("k8s", mapping.namespace_args(tenant, environment))
    pulumi.export("portal_domain", tenant.resolved_portal_domain(environment.base_domain))
    pulumi.export("namespace", namespace.namespace.metadata.name)
    pulumi.export("members_group_id", groups.members.id)
    pulumi.export("admins_group_id", groups.admins.id)
