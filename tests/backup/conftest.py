"""A throw-away SFTP "storage box": OpenSSH's sshd on 127.0.0.1 with its own host key,
authorized_keys and port, key-only, stopped by its PID. restic and sshd come from the Debian
packages in ``.ci/apt-packages``; when they are missing the tests fail and say so.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from automation import backup

SSHD = Path("/usr/sbin/sshd")
PASSWORD = "correct horse battery staple 7"  # noqa: S105 - test repository password


@dataclass(frozen=True)
class StorageBox:
    """The running sshd: ``sftp:storagebox:<home>/<name>`` URLs through ``ssh_config``."""

    home: Path
    ssh_config: Path
    port: int
    root: Path

    def repository(self, name: str, password: str = PASSWORD) -> backup.Repository:
        password_file = self.root / f"{name}.password"
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        return backup.Repository(
            url=f"sftp:storagebox:{self.home}/{name}",
            password_file=password_file,
            ssh_config=self.ssh_config,
            cache_dir=self.root / "cache",
        )


def _require_tools() -> None:
    missing = [name for name in ("restic", "ssh", "ssh-keygen") if shutil.which(name) is None]
    if not SSHD.exists():
        missing.append(str(SSHD))
    if missing:
        pytest.fail(
            f"backup tests need {', '.join(missing)}: install the Debian packages in "
            ".ci/apt-packages (restic, openssh-server, openssh-client)",
            pytrace=False,
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited: {log.read_text()[-2000:]}", pytrace=False)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"sshd did not listen on {port}: {log.read_text()[-2000:]}", pytrace=False)


@pytest.fixture(scope="session")
def storagebox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageBox]:
    _require_tools()
    root = tmp_path_factory.mktemp("storagebox")
    sshd_dir = root / "sshd"
    sshd_dir.mkdir()
    home = root / "box"
    home.mkdir()
    for key in ("host_ed25519", "client_ed25519"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(sshd_dir / key)],
            check=True,
        )
    user = getpass.getuser()
    keys = sshd_dir / "keys"
    keys.mkdir()
    shutil.copy(sshd_dir / "client_ed25519.pub", keys / user)
    port = _free_port()
    config = sshd_dir / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {sshd_dir / 'host_ed25519'}\n"
        f"PidFile {sshd_dir / 'sshd.pid'}\nAuthorizedKeysFile {keys}/%u\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
        "Subsystem sftp internal-sftp\nForceCommand internal-sftp\nAllowTcpForwarding no\n"
        "LogLevel VERBOSE\n"
    )
    ssh_config = sshd_dir / "ssh_config"
    ssh_config.write_text(
        f"Host storagebox\n    HostName 127.0.0.1\n    Port {port}\n    User {user}\n"
        f"    IdentityFile {sshd_dir / 'client_ed25519'}\n    IdentitiesOnly yes\n"
        "    StrictHostKeyChecking accept-new\n"
        f"    UserKnownHostsFile {sshd_dir / 'known_hosts'}\n    BatchMode yes\n"
        "    ServerAliveInterval 60\n    ServerAliveCountMax 240\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = sshd_dir / "sshd.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stderr=stderr)
    try:
        _wait_listening(port, proc, log)
        yield StorageBox(home=home, ssh_config=ssh_config, port=port, root=root)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small source tree: text, binary, nested, empty files."""
    src = tmp_path_factory.mktemp("sample") / "stalwart-data"
    (src / "nested" / "deeper").mkdir(parents=True)
    (src / "config.toml").write_text("[server]\nhostname = 'mail.dezky.local'\n")
    (src / "nested" / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (src / "nested" / "deeper" / "empty").write_bytes(b"")
    for i in range(20):
        (src / f"msg-{i:02d}.eml").write_text(f"Subject: {i}\n\n" + "body " * (i * 50))
    return src


@dataclass(frozen=True)
class SubaccountSshd:
    """A second sshd with the storage box's host key, for what one user cannot show alone.

    ``port`` plays a subaccount's login: it accepts only the keys in
    ``home/.ssh/authorized_keys`` (``home`` is a folder of the box, as a subaccount's home is a
    folder of the main account's). ``legacy_port`` accepts the main account's key on an SFTP
    server that refuses ``posix-rename@openssh.com``, so only the plain SFTP rename works."""

    home: Path
    port: int
    legacy_port: int


@pytest.fixture(scope="session")
def subaccount_sshd(storagebox: StorageBox) -> Iterator[SubaccountSshd]:
    sshd_dir = storagebox.root / "subaccount-sshd"
    sshd_dir.mkdir()
    home = storagebox.home / "subaccount-login"
    home.mkdir()
    port, legacy_port = _free_port(), _free_port()
    while legacy_port == port:
        legacy_port = _free_port()
    config = sshd_dir / "sshd_config"
    config.write_text(
        f"Port {port}\nPort {legacy_port}\nListenAddress 127.0.0.1\n"
        f"HostKey {storagebox.root / 'sshd' / 'host_ed25519'}\n"
        f"PidFile {sshd_dir / 'sshd.pid'}\nAuthorizedKeysFile {home}/.ssh/authorized_keys\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
        "Subsystem sftp internal-sftp\nForceCommand internal-sftp\nAllowTcpForwarding no\n"
        f"LogLevel VERBOSE\nMatch LocalPort {legacy_port}\n"
        f"    AuthorizedKeysFile {storagebox.root / 'sshd' / 'keys'}/%u\n"
        "    ForceCommand internal-sftp -P posix-rename\n"
    )
    log = sshd_dir / "sshd.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stderr=stderr)
    try:
        _wait_listening(port, proc, log)
        _wait_listening(legacy_port, proc, log)
        yield SubaccountSshd(home=home, port=port, legacy_port=legacy_port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
