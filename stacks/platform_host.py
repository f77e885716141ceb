"""The AX41 beyond Robot: its Storage Box keys, restic repositories and Ansible configuration.

Backups: four restic sources (``BACKUP_SOURCES``) on the three subaccounts of each box; the two
database dumps share the ``databases`` subaccount, each in its own repository. The repositories
are Pulumi resources (initialised or adopted by the automation); the host's timers back up into
them with the host's own restic key, which every subaccount accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from components.backups import BackupRepositories, BackupRepositoriesArgs, BoxRepositoriesArgs
from components.host import HostConfiguration, HostConfigurationArgs
from components.storage import BackupStorageBox
from stacks import secrets as names
from stacks.secrets import StackSecrets
from tenants.environment import Environment, Hetzner


@dataclass(frozen=True)
class BackupSource:
    """One restic source on the host: a directory, or a dump written by a command."""

    name: str
    subaccount: str  # one of Hetzner.backup_sources
    schedule: str  # systemd OnCalendar
    path: str | None = None
    dump_command: str | None = None
    dump_file: str | None = None

    def role_entry(self) -> dict[str, str]:
        what = {"path": self.path} if self.path else {}
        if self.dump_command and self.dump_file:
            what = {"dump_command": self.dump_command, "dump_file": self.dump_file}
        return {"name": self.name, "schedule": self.schedule, **what}


# The namespaces and workloads named here are the platform services' (components/
# platform_services.py); the dumps run inside their containers, with their own credentials.
BACKUP_SOURCES = (
    BackupSource("mail", "mail", "*-*-* 02:00:00", path="/var/lib/stalwart"),
    BackupSource("volumes", "files", "*-*-* 02:20:00", path="/var/lib/rancher/k3s/storage"),
    BackupSource(
        "mongodb",
        "databases",
        "*-*-* 02:40:00",
        dump_command=(
            "k3s kubectl -n platform exec statefulset/mongodb -- sh -c 'mongodump --archive "
            '--gzip --username "$MONGO_INITDB_ROOT_USERNAME" --password '
            '"$MONGO_INITDB_ROOT_PASSWORD" --authenticationDatabase admin\''
        ),
        dump_file="mongodb.archive.gz",
    ),
    BackupSource(
        "postgres",
        "databases",
        "*-*-* 02:50:00",
        dump_command=(
            "k3s kubectl -n authentik exec statefulset/authentik-postgresql -- sh -c "
            "'PGPASSWORD=\"$POSTGRES_PASSWORD\" pg_dump -U authentik --clean --if-exists authentik'"
        ),
        dump_file="postgres.sql",
    ),
)
ROLE_OF_BOX = {"backup": "primary", "dr": "dr"}  # the restic role's names for the two boxes


def restic_password_name(role: str, source: str) -> str:
    """The platform secret holding one repository's password."""
    return f"{names.RESTIC_PASSWORD_PREFIX}{role}/{source}"


def backup_repositories(
    hetzner: Hetzner, boxes: dict[str, BackupStorageBox], secrets: StackSecrets
) -> BackupRepositories:
    """One repository per box and source, in the source's subaccount."""
    sources = [source.name for source in BACKUP_SOURCES]
    return BackupRepositories(
        "restic",
        BackupRepositoriesArgs(
            sources=sources,
            boxes={
                role: BoxRepositoriesArgs(
                    host=box.box.server,
                    users={s.name: box.subaccounts[s.subaccount].username for s in BACKUP_SOURCES},
                    passwords={s: secrets.lookup(restic_password_name(role, s)) for s in sources},
                    known_hosts=hetzner.boxes[role].known_hosts,
                )
                for role, box in boxes.items()
            },
            identity_file=hetzner.automation_identity_file,
        ),
        opts=pulumi.ResourceOptions(
            depends_on=[keys for box in boxes.values() for keys in box.authorized_keys.values()]
        ),
    )


def host_configuration(
    environment: Environment,
    hetzner: Hetzner,
    boxes: dict[str, BackupStorageBox],
    secrets: StackSecrets,
    depends_on: list[pulumi.Resource],
) -> HostConfiguration:
    """``ansible/playbooks/site.yml`` on the AX41: hardening, k3s, Stalwart, restic timers."""
    hosts = environment.hostnames
    sources: list[dict[str, Any]] = []
    for source in BACKUP_SOURCES:
        entry: dict[str, Any] = source.role_entry()
        for role, box in boxes.items():
            entry[ROLE_OF_BOX[role]] = {
                "host": box.box.server,
                "user": box.subaccounts[source.subaccount].username,
                "path": source.name,
            }
        sources.append(entry)
    variables: dict[str, Any] = {
        "site_target": "all",
        "base_root_authorized_keys": list(hetzner.root_authorized_keys),
        "base_admin_networks": list(hetzner.admin_networks),
        "k3s_tls_san": [hetzner.hostname, hetzner.ipv4],
        "stalwart_hostname": hosts.mail,
        "restic_sources": sources,
        "restic_known_hosts": [
            line for box in hetzner.boxes.values() for line in box.known_hosts.splitlines() if line
        ],
    }
    secret_variables: dict[str, Any] = {
        "restic_ssh_private_key": secrets.lookup(names.RESTIC_SSH_PRIVATE_KEY),
        "restic_passwords": {
            source.name: {
                ROLE_OF_BOX[role]: secrets.lookup(restic_password_name(role, source.name))
                for role in boxes
            }
            for source in BACKUP_SOURCES
        },
    }
    return HostConfiguration(
        "host",
        HostConfigurationArgs(
            host=hetzner.ipv4,
            ssh_private_key=secrets.lookup(names.HOST_SSH_PRIVATE_KEY),
            known_hosts=hetzner.host_known_hosts,
            variables=variables,
            secret_variables=secret_variables,
        ),
        opts=pulumi.ResourceOptions(depends_on=depends_on),
    )
