"""The platform stack program: what every tenant stack builds on.

Declares the shared Authentik objects (parent group, login stages, recovery flow) and, where
the environment has Hetzner parts (prod): the adopted AX41 (reverse DNS and the Robot
firewall; never ordered or cancelled from here) and the backup Storage Boxes, a BX in fsn1 for
the restic repositories and one in hel1 for disaster recovery, each with a subaccount per
backup source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pulumi

from components.identity_platform import PlatformIdentity
from components.server import DedicatedServer, DedicatedServerArgs
from components.storage import BackupStorageBox, StorageBoxArgs
from stacks import refs
from tenants.environment import Environment, StorageBox


@dataclass(frozen=True)
class PlatformSecrets:
    """Secrets the platform program needs, looked up by name (stack config holds them)."""

    lookup: Callable[[str], pulumi.Input[str]]


def offline_secret(name: str) -> pulumi.Input[str]:
    """Stand-in for a secret when rendering offline (a module function: workers pickle it)."""
    return pulumi.Output.secret(f"offline:{name}")


def build(environment: Environment, secrets: PlatformSecrets) -> None:
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
    hetzner = environment.hetzner
    if hetzner is None:
        return
    server = DedicatedServer(
        "ax41",
        DedicatedServerArgs(
            server_number=hetzner.server_number,
            ipv4=hetzner.ipv4,
            ipv6=hetzner.ipv6,
            hostname=hetzner.hostname,
            admin_networks=list(hetzner.admin_networks),
            mail=True,
        ),
    )
    pulumi.export("server_ip", server.server_ip)
    for role, box in (("backup", hetzner.backup_box), ("dr", hetzner.dr_box)):
        storage = BackupStorageBox(role, _box_args(box, hetzner.backup_sources, secrets))
        pulumi.export(f"{role}_storage_box_server", storage.box.server)


def _box_args(
    box: StorageBox, sources: tuple[str, ...], secrets: PlatformSecrets
) -> StorageBoxArgs:
    return StorageBoxArgs(
        name=box.name,
        location=box.location,
        box_type=box.type,
        ssh_keys=box.ssh_keys,
        password=secrets.lookup(box.name),
        subaccounts={source: secrets.lookup(f"{box.name}/{source}") for source in sources},
    )
