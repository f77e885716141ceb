"""The AX41 beyond Robot in the prod platform stack: Storage Box keys, restic repositories and
the Ansible run, with every secret marked and every source in its own repository."""

from __future__ import annotations

import json
from typing import Any

import pulumi

from stacks import platform_host
from stacks.program import StackInputs, run
from stacks.secrets import StackSecrets
from tenants.environment import load_environment
from tests.conftest import REPO
from tests.stacks import harness
from tests.stacks.harness import Secret

PROD = load_environment(REPO / "environments" / "prod.yaml")
DEV = load_environment(REPO / "environments" / "dev.yaml")
REPO_TYPE = "pulumi-python:dynamic/restic:Repository"
KEYS_TYPE = "pulumi-python:dynamic/storagebox:SubaccountAuthorizedKeys"


def _plain_secret(name: str) -> pulumi.Input[str]:
    return f"plain-text-{name}-value"


def _prod() -> harness.Recording:
    inputs = StackInputs.for_platform(PROD, StackSecrets(_plain_secret))
    return harness.run(lambda: run(inputs), "platform")


RECORDING = _prod()


def _ansible_env() -> dict[str, Any]:
    command = RECORDING.named("host-ansible")
    environment = command.inputs["environment"]
    assert isinstance(environment, Secret)  # the whole map: it carries keys and passwords
    return dict(environment.value)


def test_every_source_has_its_own_repository_on_both_boxes() -> None:
    repos = {r.name: r.inputs for r in RECORDING.of_type(REPO_TYPE)}
    assert sorted(repos) == sorted(
        f"restic-{role}-{s.name}" for role in ("backup", "dr") for s in platform_host.BACKUP_SOURCES
    )
    mongodb, postgres = repos["restic-backup-mongodb"], repos["restic-backup-postgres"]
    # Both dumps live in the databases subaccount, in two repositories.
    assert mongodb["user"] == postgres["user"] == "backup-databases-user"
    assert (mongodb["path"], postgres["path"]) == ("mongodb", "postgres")
    assert repos["restic-dr-volumes"]["user"] == "dr-files-user"
    assert repos["restic-dr-volumes"]["host"] == "dr-box.your-storagebox.de"
    for name, inputs in repos.items():
        assert inputs["password"] == Secret(f"plain-text-restic/{name.split('-')[1]}/"
                                            f"{name.split('-', 2)[2]}-value"), name  # fmt: skip
        assert inputs["identity_file"] == PROD.hetzner.automation_identity_file  # type: ignore[union-attr]


def test_each_subaccount_gets_the_host_and_automation_keys() -> None:
    keys = {r.name: r.inputs for r in RECORDING.of_type(KEYS_TYPE)}
    assert sorted(keys) == sorted(
        f"{role}-{s}-keys" for role in ("backup", "dr") for s in ("mail", "files", "databases")
    )
    hetzner = PROD.hetzner
    assert hetzner is not None
    for inputs in keys.values():
        assert inputs["keys"] == list(hetzner.backup_ssh_keys)


def test_the_playbook_gets_four_sources_and_their_passwords_only_as_secrets() -> None:
    env = _ansible_env()
    plain = json.loads(env["DEZKY_ANSIBLE_VARS"])
    secret = json.loads(env["DEZKY_ANSIBLE_SECRET_VARS"])
    assert "plain-text-" not in env["DEZKY_ANSIBLE_VARS"]
    sources = {s["name"]: s for s in plain["restic_sources"]}
    assert sorted(sources) == ["mail", "mongodb", "postgres", "volumes"]
    assert sources["mail"]["path"] == "/var/lib/stalwart"
    assert sources["mongodb"]["dump_file"] == "mongodb.archive.gz"
    assert "mongodump" in sources["mongodb"]["dump_command"]
    assert sources["postgres"]["primary"] == {
        "host": "backup-box.your-storagebox.de", "user": "backup-databases-user",
        "path": "postgres",
    }  # fmt: skip
    assert sources["postgres"]["dr"]["host"] == "dr-box.your-storagebox.de"
    assert secret["restic_passwords"]["volumes"] == {
        "primary": "plain-text-restic/backup/volumes-value",
        "dr": "plain-text-restic/dr/volumes-value",
    }
    assert secret["restic_ssh_private_key"] == "plain-text-restic-ssh-private-key-value"
    assert env["DEZKY_SSH_PRIVATE_KEY"] == "plain-text-host-ssh-private-key-value"
    hetzner = PROD.hetzner
    assert hetzner is not None
    assert plain["base_admin_networks"] == list(hetzner.admin_networks)
    assert plain["base_root_authorized_keys"] == list(hetzner.root_authorized_keys)
    assert len(plain["restic_known_hosts"]) == 2
    assert env["DEZKY_SSH_KNOWN_HOSTS"] == hetzner.host_known_hosts


def test_the_playbook_runs_after_the_repositories_exist() -> None:
    order = [r.name for r in RECORDING.resources]
    assert order.index("host-ansible") > max(
        order.index(r.name) for r in RECORDING.of_type(REPO_TYPE)
    )


def test_the_server_joins_the_configured_vswitch() -> None:
    (attachment,) = RECORDING.of_type("pulumi-python:dynamic/robot:VSwitchAttachment")
    assert (attachment.inputs["vswitch_id"], attachment.inputs["server_number"]) == (41234, 2345678)


def test_dev_has_no_host_parts() -> None:
    inputs = StackInputs.for_platform(DEV, StackSecrets(_plain_secret))
    recording = harness.run(lambda: run(inputs), "platform")
    kinds = {r.type for r in recording.resources}
    assert not {REPO_TYPE, KEYS_TYPE, "command:local:Command"} & kinds


def test_stalwart_is_configured_after_the_playbook_installed_it() -> None:
    listeners = {r.name: r.inputs for r in RECORDING.of_type("pulumi-python:dynamic/stalwart:")}
    ports = sorted(
        int(bind.rsplit(":", 1)[1])
        for inputs in listeners.values()
        for bind in inputs.get("bind", [])
    )
    assert ports == [25, 465, 587, 993, 8080]
    (certificate,) = [i for i in listeners.values() if "certificate_path" in i]
    assert certificate["certificate_path"] == "/etc/stalwart/tls/fullchain.pem"
    (settings,) = [i for i in listeners.values() if "default_hostname" in i]
    assert settings["default_hostname"] == "mail.dezky.eu"
    order = [r.name for r in RECORDING.resources]
    first_mail = min(order.index(name) for name in listeners)
    assert first_mail > order.index("host-ansible")
