"""Hetzner Storage Boxes for backups, with one subaccount per backup source.

Backups are customer data: every box and subaccount is protected in Pulumi, has Hetzner's
own delete protection, and is retained (never deleted) when it leaves the program.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_hcloud as hcloud

# Daily at 02:30 UTC, a week of snapshots: a second line of defence behind restic's history.
SNAPSHOT_PLAN = hcloud.StorageBoxSnapshotPlanArgs(max_snapshots=7, hour=2, minute=30)


@dataclass(frozen=True)
class StorageBoxArgs:
    """Inputs of ``BackupStorageBox``: where it is and who may log in."""

    name: str
    location: str
    box_type: str
    ssh_keys: Sequence[str]
    password: pulumi.Input[str]
    # Backup source (mail, files, databases) -> the subaccount's password.
    subaccounts: Mapping[str, pulumi.Input[str]]


class BackupStorageBox(pulumi.ComponentResource):
    """A Storage Box with SSH only (SFTP on port 23) and a subaccount per source."""

    box: hcloud.StorageBox
    subaccounts: dict[str, hcloud.StorageBoxSubaccount]

    def __init__(
        self, name: str, args: StorageBoxArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dezky:hetzner:BackupStorageBox", name, None, opts)
        keep = pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True)
        self.box = hcloud.StorageBox(
            f"{name}-box",
            name=args.name,
            location=args.location,
            storage_box_type=args.box_type,
            password=args.password,
            ssh_keys=list(args.ssh_keys),
            delete_protection=True,
            snapshot_plan=SNAPSHOT_PLAN,
            access_settings=hcloud.StorageBoxAccessSettingsArgs(
                ssh_enabled=True,
                reachable_externally=True,
                samba_enabled=False,
                webdav_enabled=False,
            ),
            labels={"managed-by": "dezky-infra", "purpose": "backup"},
            opts=keep,
        )
        box_id = self.box.id.apply(int)
        self.subaccounts = {
            source: hcloud.StorageBoxSubaccount(
                f"{name}-{source}",
                storage_box_id=box_id,
                home_directory=f"restic/{source}",
                password=password,
                description=f"restic repository for {source}",
                access_settings=hcloud.StorageBoxSubaccountAccessSettingsArgs(
                    ssh_enabled=True,
                    reachable_externally=True,
                    samba_enabled=False,
                    webdav_enabled=False,
                    readonly=False,
                ),  # fmt: skip
                labels={"managed-by": "dezky-infra", "source": source},
                opts=keep,
            )
            for source, password in sorted(args.subaccounts.items())
        }
        usernames = {source: account.username for source, account in self.subaccounts.items()}
        self.register_outputs({"server": self.box.server, "subaccounts": usernames})
