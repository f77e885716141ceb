"""The variables the platform stack hands the playbook, fed to the real restic role: what
stacks/platform_host.py builds is what the role accepts (a renamed key fails here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.backup.test_ansible import _keypair, _render
from tests.stacks.test_platform_host import _ansible_env


def test_the_stack_variables_render_the_four_sources(tmp_path: Path) -> None:
    env = _ansible_env()
    plain: dict[str, Any] = json.loads(env["DEZKY_ANSIBLE_VARS"])
    secret: dict[str, Any] = json.loads(env["DEZKY_ANSIBLE_SECRET_VARS"])
    # The offline stand-in for the key is no key: a real one, as the secret would hold.
    secret["restic_ssh_private_key"], public = _keypair(tmp_path)
    restic = {k: v for k, v in {**plain, **secret}.items() if k.startswith("restic_")}
    done = _render(tmp_path, **restic)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]

    etc = tmp_path / "root" / "etc"
    units = {p.name for p in (etc / "systemd" / "system").iterdir()}
    for source in ("mail", "volumes", "mongodb", "postgres"):
        assert f"restic-backup-{source}.timer" in units
        env_file = (etc / "restic" / f"{source}-backup.env").read_text()
        assert f"RESTIC_REPOSITORY=sftp:restic-{source}-primary:{source}\n" in env_file
    aliases = (etc / "ssh" / "ssh_config.d" / "restic.conf").read_text()
    assert "Host restic-postgres-dr\n    HostName dr-box.your-storagebox.de\n" in aliases
    assert "    User dr-databases-user\n" in aliases
    password = etc / "restic" / "volumes-dr.password"
    assert password.read_text() == "plain-text-restic/dr/volumes-value\n"
    known = (etc / "restic" / "known_hosts").read_text()
    assert known.count("[*.your-storagebox.de]:23 ssh-ed25519 ") == 2
    assert (tmp_path / "root" / "root" / ".ssh" / "restic_ed25519.pub").read_text() == public
