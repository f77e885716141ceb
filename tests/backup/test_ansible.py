"""The restic role: syntax check, and a real connection=local run rendering into a temp root.

The idempotence run (a second converge reports no changes) belongs to the converge test against
a throw-away host; here one run keeps the suite fast (~15 s for the run).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ANSIBLE = Path(__file__).resolve().parents[2] / "ansible"
PLAYBOOK = ANSIBLE / "playbooks" / "backups.yml"
SECRET = "pw-from-pulumi-secret-93"  # noqa: S105 - test repository password


def _playbook_bin() -> str:
    found = Path(sys.executable).parent / "ansible-playbook"
    if not found.exists():
        pytest.fail(
            "ansible-playbook is not installed in the venv: add ansible-core==2.19.14",
            pytrace=False,
        )
    return str(found)


def _run(*args: str, root: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(root),
        "ANSIBLE_ROLES_PATH": str(ANSIBLE / "roles"),
        "ANSIBLE_LOCAL_TEMP": str(root / ".ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "LC_ALL": "C.UTF-8",
    }
    return subprocess.run(
        [_playbook_bin(), *args, str(PLAYBOOK)],
        env=env,
        cwd=ANSIBLE,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _source(name: str, **what: str) -> dict[str, object]:
    box = {"host": "u1-sub1.your-storagebox.de", "user": "u1-sub1", "path": f"restic/{name}"}
    dr = {"host": "u2-sub1.your-storagebox.de", "user": "u2-sub1", "path": f"restic/{name}"}
    return {
        "name": name,
        "schedule": "*-*-* 02:00:00",
        "primary": {**box, "password": f"{SECRET}-{name}-primary"},
        "dr": {**dr, "password": f"{SECRET}-{name}-dr"},
        **what,
    }


def test_syntax_check(tmp_path: Path) -> None:
    done = _run("--syntax-check", "-i", "localhost,", root=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_renders_units_into_a_root(tmp_path: Path) -> None:
    if shutil.which("python3") is None:
        pytest.fail("python3 is needed on PATH for a connection=local run", pytrace=False)
    root = tmp_path / "root"
    root.mkdir()
    variables = {
        "restic_target": "all",
        "restic_become": False,
        "restic_root_dir": str(root),
        "restic_manage_packages": False,
        "restic_manage_systemd": False,
        "restic_owner": str(os.getuid()),
        "restic_group": str(os.getgid()),
        "restic_known_hosts": ["[u1-sub1.your-storagebox.de]:23 ssh-ed25519 AAAAC3Nz"],
        "restic_sources": [
            _source("mail", path="/var/lib/stalwart"),
            _source(
                "postgres",
                dump_command="runuser -u postgres -- pg_dumpall --clean",
                dump_file="postgres.sql",
            ),
        ],
    }
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps(variables))
    args = (
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"@{extra}",
        "-e",
        "ansible_python_interpreter=" + sys.executable,
    )

    first = _run(*args, root=tmp_path)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert SECRET not in first.stdout + first.stderr  # no_log on the password files

    etc = root / "etc"
    password = etc / "restic" / "postgres-dr.password"
    assert password.read_text() == f"{SECRET}-postgres-dr\n"
    assert password.stat().st_mode & 0o777 == 0o600
    units = sorted(p.name for p in (etc / "systemd" / "system").iterdir())
    assert len(units) == 2 * 3 * 2
    assert "restic-backup-mail.timer" in units and "restic-check-postgres.service" in units

    mail = (etc / "systemd" / "system" / "restic-backup-mail.service").read_text()
    assert "ExecStart=/usr/bin/restic backup --tag mail /var/lib/stalwart\n" in mail
    assert "forget --tag mail --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --prune" in mail
    assert "EnvironmentFile=/etc/restic/mail-backup.env" in mail
    assert SECRET not in mail
    pg = (etc / "systemd" / "system" / "restic-backup-postgres.service").read_text()
    assert "pg_dumpall --clean > /var/backups/restic/postgres/postgres.sql.tmp" in pg
    assert "ExecStart=/usr/bin/restic backup --tag postgres /var/backups/restic/postgres" in pg
    check = (etc / "systemd" / "system" / "restic-check-mail.service").read_text()
    assert check.count("check --read-data-subset=10%%") == 2
    timer = (etc / "systemd" / "system" / "restic-check-mail.timer").read_text()
    assert re.search(r"^OnCalendar=Sun \*-\*-\* 04:30:00$", timer, re.M)
    copy_env = (etc / "restic" / "mail-copy.env").read_text()
    assert "RESTIC_REPOSITORY=sftp:restic-mail-dr:restic/mail\n" in copy_env
    assert "RESTIC_FROM_REPOSITORY=sftp:restic-mail-primary:restic/mail\n" in copy_env
    ssh = (etc / "ssh" / "ssh_config.d" / "restic.conf").read_text()
    assert "Host restic-mail-dr\n    HostName u2-sub1.your-storagebox.de\n" in ssh
    assert "Port 23\n" in ssh and "StrictHostKeyChecking yes" in ssh
