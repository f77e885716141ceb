"""The converged throw-away host, shared by the tests of this directory (see harness.py)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.ansible import harness

VENV_BIN = Path(sys.executable).parent
ROLES = harness.REPO / "ansible" / "roles"
RESTIC_PASSWORD = "restic-pw-from-pulumi-31"  # noqa: S105 - test repository password
LOG = logging.getLogger(__name__)
RECAP = re.compile(r"^testhost\s*:\s*(.*)$", re.M)


SOURCES_LIST = (
    "deb http://deb.debian.org/debian bookworm main\n"
    "# deb http://security.debian.org/debian-security bookworm-security main\n"
    "deb http://security.debian.org/debian-security bookworm-security main contrib non-free"
    " non-free-firmware\n"
)
POSTGRES_DUMP = (
    "k3s kubectl -n authentik exec statefulset/authentik-postgresql -- sh -c "
    "'PGPASSWORD=\"$POSTGRES_PASSWORD\" pg_dump -U authentik --clean --if-exists authentik'"
)


def _restic_source(name: str, **what: str) -> dict[str, object]:
    """A source as stacks/platform_host.py builds it: plain, the passwords elsewhere."""
    return {
        "name": name,
        **what,
        "primary": {"host": "u1.your-storagebox.de", "user": "u1-sub1", "path": name},
        "dr": {"host": "u2.your-storagebox.de", "user": "u2-sub1", "path": name},
    }


def _keypair(path: Path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "restic", "-f", str(path)],
        check=True,
    )
    return path.read_text()


def role_default(role: str, name: str) -> object:
    return yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())[name]


def recap(output: str) -> dict[str, int]:
    found = RECAP.findall(output)
    assert len(found) == 1, output[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", found[0])}


@dataclass(frozen=True)
class Converged:
    host: harness.TestHost
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    restic_key: Path
    k3s_binary: bytes
    stalwart_binary: bytes
    downloads_after_first: list[str]
    downloads_after_second: list[str]
    seconds: dict[str, float]


def _require_tools() -> None:
    if os.geteuid() != 0:
        pytest.fail("the Ansible host tests need root (netns, chroot, mount)", pytrace=False)
    missing = [t for t in ("debootstrap", "ip", "ssh", "ssh-keygen") if not shutil.which(t)]
    if not (VENV_BIN / "ansible-playbook").exists():
        missing.append(str(VENV_BIN / "ansible-playbook"))
    if missing:
        pytest.fail(
            f"missing {', '.join(missing)}: install the Debian packages in .ci/apt-packages",
            pytrace=False,
        )


def _stand_ins() -> tuple[bytes, bytes, bytes]:
    """Stand-ins for the release artifacts (GitHub is out of reach): k3s and a Stalwart archive."""
    # `k3s kubectl -n NS get secret NAME ...` prints /var/lib/k3s-stand-in/NS/NAME, the output of
    # stalwart-tls-sync's jsonpath, when a test put it there; a missing Secret as kubectl does.
    k3s = b"""#!/bin/sh
if [ "$1 $2 $4 $5" = "kubectl -n get secret" ]; then
    if [ -f "/var/lib/k3s-stand-in/$3/$6" ]; then exec cat "/var/lib/k3s-stand-in/$3/$6"; fi
    if [ "$7" = --ignore-not-found ]; then exit 0; fi
    echo "Error from server (NotFound): secrets \\"$6\\" not found" >&2
    exit 1
fi
echo 'k3s stand-in for the ansible tests' "$@"
"""
    stalwart = b"#!/bin/sh\necho 'stalwart stand-in for the ansible tests' \"$@\"\n"
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        member = tarfile.TarInfo("stalwart")
        member.size, member.mode = len(stalwart), 0o755
        tar.addfile(member, io.BytesIO(stalwart))
    return k3s, stalwart, archive.getvalue()


def _playbook(
    host: harness.TestHost, variables: Path, *, documented_env: bool
) -> subprocess.CompletedProcess[str]:
    """site.yml as the Pulumi stack runs it: from the repository root with ANSIBLE_CONFIG; the
    second run goes from / without it, which shows the roles resolve independently of cwd."""
    (host.work / "home").mkdir(exist_ok=True)
    inventory = host.work / "inventory.ini"
    inventory.write_text(host.inventory())
    env = {
        "PATH": f"{VENV_BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(host.work / "home"),
        "ANSIBLE_LOCAL_TEMP": str(host.work / "ansible-tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(host.work / "cp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "LC_ALL": "C.UTF-8",
    }
    if documented_env:
        env["ANSIBLE_CONFIG"] = "ansible/ansible.cfg"
    playbook = (
        "ansible/playbooks/site.yml"
        if documented_env
        else str(harness.REPO / "ansible" / "playbooks" / "site.yml")
    )
    return subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), playbook]
        + ["--extra-vars", f"@{variables}"],
        cwd=harness.REPO if documented_env else "/",
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="session")
def converged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Converged]:
    _require_tools()
    k3s, stalwart, archive = _stand_ins()
    k3s_version = str(role_default("k3s", "k3s_version"))
    stalwart_version = str(role_default("stalwart", "stalwart_version"))
    arch = platform.machine()
    k3s_arch = {"x86_64": "amd64", "aarch64": "arm64"}[arch]
    work = tmp_path_factory.mktemp("testhost")
    artifacts = {"k3s": k3s, "stalwart.tar.gz": archive}
    seconds: dict[str, float] = {}
    started = time.monotonic()
    with harness.running_host(work, artifacts) as host:
        seconds["host up (cached root copied, netns, sshd)"] = time.monotonic() - started
        depot = host.depot.url
        restic_key = _keypair(work / "restic_ed25519")
        postgres = _restic_source(
            "postgres", dump_command=POSTGRES_DUMP, dump_file="postgres.sql", schedule="*-*-* 02:50"
        )
        variables = {
            "base_root_authorized_keys": [host.key.with_suffix(".pub").read_text()],
            "base_admin_networks": [f"{host.host_ip}/32", "2001:db8:ad::/48"],
            "k3s_download_url": f"{depot}/artifacts/k3s",
            "k3s_checksums": {k3s_version: {k3s_arch: hashlib.sha256(k3s).hexdigest()}},
            "k3s_tls_san": ["k8s.test.dezky.invalid"],
            "stalwart_download_url": f"{depot}/artifacts/stalwart.tar.gz",
            "stalwart_checksums": {stalwart_version: {arch: hashlib.sha256(archive).hexdigest()}},
            "stalwart_hostname": "mail.test.dezky.invalid",
            "restic_known_hosts": ["[u1-sub1.your-storagebox.de]:23 ssh-ed25519 AAAAC3Nz"],
            "restic_sources": [_restic_source("mail", path="/var/lib/stalwart"), postgres],
            # The secrets, apart from the plain variables as HostConfiguration passes them.
            "restic_passwords": {
                name: {box: f"{RESTIC_PASSWORD}-{name}-{box}" for box in ("primary", "dr")}
                for name in ("mail", "postgres")
            },
            "restic_ssh_private_key": restic_key,
        }
        extra = work / "vars.json"
        extra.write_text(json.dumps(variables))
        # As on Hetzner's images: the security archive already in sources.list, once active.
        (host.root / "etc" / "apt" / "sources.list").write_text(SOURCES_LIST)

        started = time.monotonic()
        first = _playbook(host, extra, documented_env=True)
        seconds["first run"] = time.monotonic() - started
        after_first = list(host.depot.requests)
        if recap(first.stdout).get("failed", 1) == 0:
            # A drop-in that tries to weaken sshd (as cloud-init's does): the role's values win.
            weak = host.root / "etc" / "ssh" / "sshd_config.d" / "50-weak.conf"
            weak.write_text("PasswordAuthentication yes\nPermitRootLogin yes\n")
            # Load the role's firewall into the namespace: the second run must get through it.
            loaded = host.chroot("nft", "-f", "/etc/nftables.conf", netns=True)
            assert loaded.returncode == 0, loaded.stderr
        started = time.monotonic()
        second = _playbook(host, extra, documented_env=False)
        seconds["second run"] = time.monotonic() - started
        LOG.info("ansible test host timings: %s", seconds)
        yield Converged(
            host=host,
            first=first,
            second=second,
            restic_key=work / "restic_ed25519",
            k3s_binary=k3s,
            stalwart_binary=stalwart,
            downloads_after_first=after_first,
            downloads_after_second=list(host.depot.requests),
            seconds=seconds,
        )
