"""Hetzner Storage Boxes for backups, with one subaccount per backup source.

Backups are customer data: every box and subaccount is protected in Pulumi, has Hetzner's
own delete protection, and is retained (never deleted) when it leaves the program.

Hetzner sets SSH keys only on the main account (``ssh_keys``, at creation). With
``authorized_keys``, each subaccount also gets a ``SubaccountAuthorizedKeys`` that writes them
into its home's ``.ssh/authorized_keys``, logged in over SFTP as the main account.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_hcloud as hcloud

from components.providers import boxkeys

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
    # Public keys (OpenSSH lines) every subaccount accepts, e.g. the platform host's restic key.
    # When given, the main account's private key (identity_file, a path on the machine that
    # runs Pulumi; its public key is among ssh_keys) and the box's pinned host keys
    # (known_hosts: "[uXXXXX.your-storagebox.de]:23 ssh-ed25519 AAAA..." lines) are required.
    authorized_keys: Sequence[str] = ()
    identity_file: str | None = None
    known_hosts: pulumi.Input[str] | None = None
    sftp_port: int = boxkeys.SFTP_PORT


def _check(args: StorageBoxArgs) -> None:
    if not args.authorized_keys:
        return
    problems = boxkeys.public_key_problems(list(args.authorized_keys))
    if problems:
        raise ValueError(f"{args.name}: authorized_keys: {'; '.join(problems)}")
    if not args.identity_file or args.known_hosts is None:
        raise ValueError(
            f"{args.name}: authorized_keys needs identity_file (the main account's SSH key) "
            "and known_hosts (the box's pinned host keys)"
        )


class BackupStorageBox(pulumi.ComponentResource):
    """A Storage Box with SSH only (SFTP on port 23) and a subaccount per source."""

    box: hcloud.StorageBox
    subaccounts: dict[str, hcloud.StorageBoxSubaccount]
    authorized_keys: dict[str, boxkeys.SubaccountAuthorizedKeys]

    def __init__(
        self, name: str, args: StorageBoxArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        _check(args)  # fail before registering anything
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
        self.authorized_keys = {
            source: self._keys(f"{name}-{source}", account, args)
            for source, account in self.subaccounts.items()
            if args.authorized_keys
        }
        usernames = {source: account.username for source, account in self.subaccounts.items()}
        self.register_outputs({"server": self.box.server, "subaccounts": usernames})

    def _keys(
        self, name: str, account: hcloud.StorageBoxSubaccount, args: StorageBoxArgs
    ) -> boxkeys.SubaccountAuthorizedKeys:
        """The subaccount's authorized_keys, written as the main account. Not protected (the
        subaccount it inherits from is): it holds no data, and removing it revokes the keys."""
        return boxkeys.SubaccountAuthorizedKeys(
            f"{name}-keys",
            host=self.box.server,
            port=args.sftp_port,
            user=self.box.username,
            home_directory=account.home_directory,
            keys=list(args.authorized_keys),
            identity_file=str(args.identity_file),
            known_hosts=args.known_hosts or "",
            opts=pulumi.ResourceOptions(parent=account, depends_on=[account], protect=False),
        )
