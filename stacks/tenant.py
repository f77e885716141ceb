"""The tenant stack program: everything one tenant needs, declared through components.

Adding a tenant resource means adding a component and one line here.
"""

from __future__ import annotations

import pulumi

from components.files import FileSpace
from components.identity import TenantGroups, TenantLogin
from components.kubernetes import TenantNamespace
from components.mail import MailDomain
from stacks import mapping, refs
from tenants.environment import Environment
from tenants.model import Tenant


def build(tenant: Tenant, environment: Environment) -> None:
    """Declare the tenant's resources in the current Pulumi program."""
    platform = refs.read()
    groups = TenantGroups("identity", mapping.groups_args(tenant, platform))
    TenantLogin("login", mapping.login_args(tenant, environment, platform))
    namespace = TenantNamespace("k8s", mapping.namespace_args(tenant, environment))
    mail = [MailDomain(f"mail-{args.domain}", args) for args in mapping.mail_args(tenant)]
    files = FileSpace("files", mapping.files_args(tenant))
    pulumi.export("portal_domain", tenant.resolved_portal_domain(environment.base_domain))
    pulumi.export("namespace", namespace.namespace.metadata.name)
    pulumi.export("members_group_id", groups.members.id)
    pulumi.export("admins_group_id", groups.admins.id)
    pulumi.export("files_drive_id", files.drive_id)
    pulumi.export("mail_dns_records", {m.domain_name: m.dns_records for m in mail})
