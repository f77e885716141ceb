"""``dezky-infra restore`` end to end: the restic role writes the host's files (environment files,
password files, the Storage Box key, ssh aliases, pinned host key) for two boxes served by a
real sshd on loopback, real restic backs up and copies, and the command restores either box and
verifies the bytes."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from automation import backup
from tests.backup.conftest import StorageBox

ANSIBLE = Path(__file__).resolve().parents[2] / "ansible"
BIN = Path(sys.executable).parent
SECRET = "restore-secret-5519"  # noqa: S105 - test repository password


@dataclass(frozen=True)
class Host:
    """What the restic role wrote, as on the platform host (/etc/restic, ssh aliases)."""

    config_dir: Path
    ssh_config: Path


def _role_vars(storagebox: StorageBox, etc: Path) -> dict[str, object]:
    host_key = (storagebox.root / "sshd" / "host_ed25519.pub").read_text().split()
    user = getpass.getuser()  # the sshd fixture authorizes the current user

    def box(role: str) -> dict[str, object]:
        path = f"{storagebox.home}/mail-{role}"
        return {"host": "127.0.0.1", "port": storagebox.port, "user": user, "path": path}

    return {
        "restic_target": "all",
        "restic_become": False,
        "restic_manage_packages": False,
        "restic_manage_systemd": False,
        "restic_owner": str(os.getuid()),
        "restic_group": str(os.getgid()),
        "restic_config_dir": str(etc / "restic"),
        "restic_cache_dir": str(etc / "restic" / "cache"),
        "restic_systemd_dir": str(etc / "systemd"),
        "restic_ssh_config": str(etc / "ssh_config"),
        # The key the box accepts, handed over as the Pulumi secret is: the role writes it.
        "restic_ssh_key": str(etc / "ssh" / "restic_ed25519"),
        "restic_ssh_private_key": (storagebox.root / "sshd" / "client_ed25519").read_text(),
        "restic_known_hosts": [f"[127.0.0.1]:{storagebox.port} {host_key[0]} {host_key[1]}"],
        "restic_sources": [
            {
                "name": "mail",
                "path": "/var/lib/stalwart",
                "primary": box("primary"),
                "dr": box("dr"),
            },
        ],  # fmt: skip
        "restic_passwords": {"mail": {"primary": f"{SECRET}-primary", "dr": f"{SECRET}-dr"}},
    }


@pytest.fixture(scope="module")
def host(storagebox: StorageBox, sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Host:
    """The role run for real, then a backup to the primary box and a copy to the DR box."""
    root = tmp_path_factory.mktemp("host")
    etc = root / "etc"
    (etc / "restic").mkdir(parents=True)
    (etc / "systemd").mkdir()
    extra = root / "vars.json"
    extra.write_text(json.dumps(_role_vars(storagebox, etc)))
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(root), "LC_ALL": "C.UTF-8",
           "ANSIBLE_ROLES_PATH": str(ANSIBLE / "roles"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCAL_TEMP": str(root / ".ansible-tmp")}  # fmt: skip
    done = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", f"@{extra}",
         "-e", f"ansible_python_interpreter={sys.executable}",
         str(ANSIBLE / "playbooks" / "backups.yml")],
        env=env, cwd=ANSIBLE, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert SECRET not in done.stdout + done.stderr
    key = etc / "ssh" / "restic_ed25519"
    assert key.stat().st_mode & 0o777 == 0o600 and key.with_suffix(".pub").exists()
    assert f"IdentityFile {key}\n" in (etc / "ssh_config").read_text()
    made = Host(config_dir=etc / "restic", ssh_config=etc / "ssh_config")
    # The role's aliases point at <home>/mail-<box>; the Repository above must say the same.
    assert f"{storagebox.home}/mail-primary" in (etc / "restic" / "mail-backup.env").read_text()
    primary = backup.Repository(
        url=f"sftp:restic-mail-primary:{storagebox.home}/mail-primary",
        password_file=made.config_dir / "mail-primary.password",
        ssh_config=made.ssh_config,
    )
    dr = backup.Repository(
        url=f"sftp:restic-mail-dr:{storagebox.home}/mail-dr",
        password_file=made.config_dir / "mail-dr.password",
        ssh_config=made.ssh_config,
    )
    backup.init(primary)
    backup.init(dr, chunker_params_from=primary)
    backup.backup(primary, sample, tags=["mail"])
    backup.copy(primary, dr, tags=["mail"])
    return made


def restore(host: Host, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "dezky-infra"), "restore", *args, "--config-dir", str(host.config_dir),
         "--ssh-config", str(host.ssh_config)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("box", ["primary", "dr"])
def test_restores_a_source_from_either_box_byte_for_byte(
    host: Host, sample: Path, tmp_path: Path, box: str
) -> None:
    target = tmp_path / "restored"
    done = restore(host, "mail", str(target), "--from", box)
    assert done.returncode == 0, done.stderr
    assert "restored mail snapshot" in done.stdout and f"from the {box} box" in done.stdout
    assert done.stdout.rstrip().endswith("verified")
    restored = target / str(sample).lstrip("/")
    assert backup.tree_digest(restored) == backup.tree_digest(sample)
    assert SECRET not in done.stdout + done.stderr


def test_a_wrong_password_fails_loudly_and_restores_nothing(host: Host, tmp_path: Path) -> None:
    password = host.config_dir / "mail-dr.password"
    kept = password.read_text()
    password.write_text("not-the-password\n")
    try:
        target = tmp_path / "restored"
        done = restore(host, "mail", str(target), "--from", "dr")
    finally:
        password.write_text(kept)
    assert done.returncode == 11
    assert "wrong password" in done.stderr.lower() or "no key" in done.stderr.lower()
    assert not target.exists() or not any(target.iterdir())


def test_an_unreachable_box_says_try_again(host: Host, tmp_path: Path) -> None:
    ssh_config = tmp_path / "ssh_config"
    text = host.ssh_config.read_text()
    ssh_config.write_text("\n".join(
        "    Port 9" if line.strip().startswith("Port ") else line for line in text.splitlines()
    ) + "\n")  # fmt: skip
    done = subprocess.run(
        [str(BIN / "dezky-infra"), "restore", "mail", str(tmp_path / "t"), "--config-dir",
         str(host.config_dir), "--ssh-config", str(ssh_config)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "try again" in done.stderr


def test_an_unknown_source_names_the_known_ones(host: Host, tmp_path: Path) -> None:
    done = restore(host, "postgres", str(tmp_path / "t"))
    assert done.returncode == 2
    assert "no backup source 'postgres'" in done.stderr and "sources here: mail" in done.stderr


def test_a_non_empty_target_is_left_alone(host: Host, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("operator's notes")
    done = restore(host, "mail", str(tmp_path))
    assert done.returncode == 2
    assert "not an empty directory" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
