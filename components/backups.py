"""The restic repositories of the backup sources: one per source on the primary Storage Box
(its subaccount for that source) and one on the disaster-recovery box.

Repositories hold customer data: each one is protected in Pulumi and retained when it leaves
the program, and its provider never deletes anything (``providers.restic``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi

from components.providers import restic

ROLES = ("backup", "dr")
"""The primary box (``backup``, fsn1) and the disaster-recovery box (``dr``, hel1)."""


@dataclass(frozen=True)
class BoxRepositoriesArgs:
    """One Storage Box's side of the repositories.

    ``host`` is the box's SFTP server name (``StorageBox.server``), ``users`` the subaccount
    user name per source (``StorageBoxSubaccount.username``), ``passwords`` the restic
    repository password per source (secrets) and ``known_hosts`` the box's pinned host keys
    (``[uXXXXX.your-storagebox.de]:23 ssh-ed25519 AAAA...`` lines).
    """

    host: pulumi.Input[str]
    users: Mapping[str, pulumi.Input[str]]
    passwords: Mapping[str, pulumi.Input[str]]
    known_hosts: pulumi.Input[str]


@dataclass(frozen=True)
class BackupRepositoriesArgs:
    """Inputs of ``BackupRepositories``.

    ``boxes`` maps each role of ``ROLES`` to its box; ``identity_file`` is the SSH private key
    (a path on the machine that runs Pulumi) the subaccounts accept; ``path`` is the
    repository inside the subaccount's home directory, ``{source}`` replaced by the source's
    name, so sources that share a subaccount (a MongoDB and a PostgreSQL dump) never share a
    repository.
    """

    sources: Sequence[str]
    boxes: Mapping[str, BoxRepositoriesArgs]
    identity_file: pulumi.Input[str]
    port: int = restic.SFTP_PORT
    path: str = "{source}"


def _check(args: BackupRepositoriesArgs) -> None:
    if sorted(args.boxes) != sorted(ROLES):
        raise ValueError(f"boxes: expected the roles {list(ROLES)}, got {sorted(args.boxes)}")
    if not args.sources or len(set(args.sources)) != len(args.sources):
        raise ValueError(f"sources: expected distinct backup sources, got {list(args.sources)}")
    for role, box in sorted(args.boxes.items()):
        for what, values in (("users", box.users), ("passwords", box.passwords)):
            if sorted(values) != sorted(args.sources):
                raise ValueError(
                    f"boxes[{role}].{what}: expected one per source {sorted(args.sources)}, "
                    f"got {sorted(values)}"
                )


class BackupRepositories(pulumi.ComponentResource):
    """A ``ResticRepository`` per (role, source), adopted or initialised, never deleted."""

    repositories: dict[tuple[str, str], restic.ResticRepository]
    urls: pulumi.Output[dict[str, str]]

    def __init__(
        self, name: str, args: BackupRepositoriesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        _check(args)  # fail before registering anything
        super().__init__("dezky:backup:BackupRepositories", name, None, opts)
        keep = pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True)
        self.repositories = {
            (role, source): restic.ResticRepository(
                f"{name}-{role}-{source}",
                host=args.boxes[role].host,
                port=args.port,
                user=args.boxes[role].users[source],
                path=args.path.format(source=source),
                password=args.boxes[role].passwords[source],
                identity_file=args.identity_file,
                known_hosts=args.boxes[role].known_hosts,
                opts=keep,
            )
            for role in ROLES
            for source in sorted(args.sources)
        }
        self.urls = pulumi.Output.all(
            **{f"{role}/{source}": repo.url for (role, source), repo in self.repositories.items()}
        )
        self.register_outputs({"urls": self.urls})
