"""The tenant stack program: everything one tenant needs, declared through components.

Adding a tenant resource means adding a component and one line here. The tenant's Kubernetes
and Authentik resources go through explicit providers built from the platform stack's
outputs (its kubeconfig and Authentik URL), so a tenant lands in the cluster and the Authentik
the platform stack runs, whatever default provider config a machine has.
"""

from __future__ import annotations

import pulumi
import pulumi_authentik as authentik

from components.cluster import cluster_provider
from components.files import FileSpace
from components.identity import TenantGroups, TenantLogin
from components.kubernetes import TenantNamespace
from components.mail import MailDomain
from stacks import mapping, refs
from stacks import secrets as names
from stacks.secrets import StackSecrets
from tenants.environment import Environment
from tenants.model import Tenant


def build(tenant: Tenant, environment: Environment, secrets: StackSecrets) -> None:
    """Declare the tenant's resources in the current Pulumi program."""
    platform = refs.read()
    cluster = cluster_provider("platform-k3s", platform.kubeconfig)
    identity_api = authentik.Provider(
        "platform-authentik",
        url=platform.authentik_url,
        token=secrets.lookup(names.AUTHENTIK_TOKEN),
    )
    on_authentik = pulumi.ResourceOptions(providers=[identity_api])
    groups = TenantGroups("identity", mapping.groups_args(tenant, platform), opts=on_authentik)
    TenantLogin("login", mapping.login_args(tenant, environment, platform), opts=on_authentik)
    namespace = TenantNamespace(
        "k8s",
        mapping.namespace_args(tenant, environment),
        opts=pulumi.ResourceOptions(providers=[cluster]),
    )
    mail = [MailDomain(f"mail-{args.domain}", args) for args in mapping.mail_args(tenant)]
    files = FileSpace("files", mapping.files_args(tenant))
    pulumi.export("portal_domain", tenant.resolved_portal_domain(environment.base_domain))
    pulumi.export("namespace", namespace.namespace.metadata.name)
    pulumi.export("members_group_id", groups.members.id)
    pulumi.export("admins_group_id", groups.admins.id)
    pulumi.export("files_drive_id", files.drive_id)
    pulumi.export("mail_dns_records", {m.domain_name: m.dns_records for m in mail})
