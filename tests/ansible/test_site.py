"""site.yml against the throw-away host: converge, idempotence, then the state inside the root.

Timings measured on a 2-CPU machine: warm (cached root and .debs in .state/testhost) about 145 s
for this directory (copy 6 s, first run ~73 s, second run ~51 s); cold adds debootstrap (~50 s)
and the first downloads, 160-230 s. Assertions read the root, the namespace or the artifact server.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import re
import socket
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.ansible.conftest import RESTIC_PASSWORD, SOURCES_LIST, Converged, recap

WANTS = Path("etc/systemd/system/multi-user.target.wants")


def _read(converged: Converged, path: str) -> str:
    return (converged.host.root / path).read_text()


def test_first_run_converges(converged: Converged) -> None:
    out = converged.first.stdout + converged.first.stderr
    assert converged.first.returncode == 0, out[-6000:]
    counts = recap(converged.first.stdout)
    assert counts["failed"] == 0 and counts["unreachable"] == 0
    assert counts["changed"] > 20
    assert RESTIC_PASSWORD not in out


def test_second_run_changes_nothing(converged: Converged) -> None:
    out = converged.second.stdout + converged.second.stderr
    assert converged.second.returncode == 0, out[-6000:]
    counts = recap(converged.second.stdout)
    assert counts["changed"] == 0, out[-6000:]
    assert counts["failed"] == 0 and counts["unreachable"] == 0


def test_binaries_are_fetched_once(converged: Converged) -> None:
    assert sorted(converged.downloads_after_first) == ["k3s", "stalwart.tar.gz"]
    assert converged.downloads_after_second == converged.downloads_after_first


def test_sshd_effective_settings(converged: Converged) -> None:
    done = converged.host.chroot("/usr/sbin/sshd", "-T", "-f", "/etc/ssh/sshd_config")
    assert done.returncode == 0, done.stderr
    effective = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert effective["passwordauthentication"] == "no"  # despite the weakening drop-in
    assert effective["kbdinteractiveauthentication"] == "no"
    assert effective["permitrootlogin"] in {"prohibit-password", "without-password"}
    assert effective["pubkeyauthentication"] == "yes"
    assert effective["authenticationmethods"] == "publickey"
    keys = _read(converged, "root/.ssh/authorized_keys")
    assert keys == converged.host.key.with_suffix(".pub").read_text()
    mode = (converged.host.root / "root/.ssh/authorized_keys").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_firewall_ruleset(converged: Converged) -> None:
    host = converged.host
    checked = host.chroot("nft", "-c", "-f", "/etc/nftables.conf", netns=True)
    assert checked.returncode == 0, checked.stderr
    rules = _read(converged, "etc/nftables.conf")
    statements = [line.strip() for line in rules.splitlines() if not line.lstrip().startswith("#")]
    assert not [s for s in statements if s.startswith("flush")]  # k3s's tables survive a reload
    assert f"ip saddr {{ {host.host_ip}/32 }} tcp dport {{ 22, 6443 }} accept" in rules
    assert "ip6 saddr { 2001:db8:ad::/48 } tcp dport { 22, 6443 } accept" in rules
    assert "ip saddr { 10.42.0.0/16, 10.43.0.0/16 } accept" in rules
    assert "tcp dport { 80, 443, 25, 465, 587, 993 } accept" in rules
    live = host.chroot("nft", "list", "chain", "inet", "dezky_host", "input", netns=True)
    assert "policy drop" in live.stdout, live.stderr


def _probe(address: str, port: int) -> str:
    """ "refused" when the firewall lets the SYN through to a closed port, "dropped" otherwise."""
    try:
        with socket.create_connection((address, port), timeout=1.5):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "dropped"
    except OSError as error:
        if error.errno == errno.ETIMEDOUT:
            return "dropped"
        raise


@pytest.mark.parametrize(
    ("port", "expected"),
    [(443, "refused"), (6443, "refused"), (8080, "dropped"), (10250, "dropped")],
)
def test_firewall_filters_the_namespace(converged: Converged, port: int, expected: str) -> None:
    assert _probe(converged.host.ip, port) == expected


def test_unattended_upgrades_only_security(converged: Converged) -> None:
    done = converged.host.chroot("apt-config", "dump", "Unattended-Upgrade::Origins-Pattern")
    assert done.returncode == 0, done.stderr
    origins = [
        line
        for line in done.stdout.splitlines()
        if line.startswith("Unattended-Upgrade::Origins-Pattern:: ")
    ]
    security = "origin=Debian,codename=${distro_codename}-security,label=Debian-Security"
    assert origins == [f'Unattended-Upgrade::Origins-Pattern:: "{security}";']
    periodic = converged.host.chroot("apt-config", "dump", "APT::Periodic")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in periodic.stdout
    installed = converged.host.chroot(
        "dpkg-query", "-W", "-f", "${Status}\n", "unattended-upgrades", "nftables"
    )
    assert installed.stdout.splitlines() == ["install ok installed"] * 2


def test_security_updates_are_reachable(converged: Converged) -> None:
    sources = _read(converged, "etc/apt/sources.list.d/debian-security.sources")
    assert "Types: deb\nURIs: http://security.debian.org/debian-security\n" in sources
    assert "Suites: bookworm-security\n" in sources
    assert "Components: main contrib non-free non-free-firmware\n" in sources
    assert "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n" in sources
    # The image's active entry is gone (apt would read the archive twice); the rest is kept.
    kept = [
        line for line in SOURCES_LIST.splitlines(keepends=True) if "-security main " not in line
    ]
    assert _read(converged, "etc/apt/sources.list") == "".join(kept)
    assert len(kept) == 2 and kept[1].startswith("# deb http://security")
    # The index came through (the test proxy), and its Release has what the origin pattern of
    # unattended-upgrades asks for: o=Debian, n=<codename>-security, l=Debian-Security.
    policy = converged.host.chroot("apt-cache", "policy")
    assert policy.returncode == 0 and not policy.stderr, policy.stderr
    repo = "http://security.debian.org/debian-security bookworm-security/main"
    release = re.search(
        rf"^ +\d+ {re.escape(repo)} \S+ Packages\n +release (\S+)$", policy.stdout, re.M
    )
    assert release, policy.stdout
    fields = dict(field.split("=", 1) for field in release.group(1).split(","))
    assert (fields["o"], fields["n"], fields["l"]) == (
        "Debian",
        "bookworm-security",
        "Debian-Security",
    )
    assert policy.stdout.count(repo) == 1


def test_restic_key_and_passwords(converged: Converged) -> None:
    root = converged.host.root
    key = root / "root/.ssh/restic_ed25519"
    private = converged.restic_key.read_text()
    assert key.read_text() == private
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.stat().st_uid == 0
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    public = converged.restic_key.with_suffix(".pub").read_text().split()[:2]
    assert (root / "root/.ssh/restic_ed25519.pub").read_text().split()[:2] == public
    for name in ("mail", "postgres"):
        for box in ("primary", "dr"):
            password = root / f"etc/restic/{name}-{box}.password"
            assert password.read_text() == f"{RESTIC_PASSWORD}-{name}-{box}\n"
            assert stat.S_IMODE(password.stat().st_mode) == 0o600
    ssh = _read(converged, "etc/ssh/ssh_config.d/restic.conf")
    assert ssh.count("IdentityFile /root/.ssh/restic_ed25519\n") == 4
    body = [line for line in private.splitlines() if "PRIVATE KEY" not in line]
    for run in (converged.first, converged.second):
        out = run.stdout + run.stderr
        assert RESTIC_PASSWORD not in out
        assert body and not [line for line in body if line in out]


def test_k3s_installed(converged: Converged) -> None:
    root = converged.host.root
    binary = root / "usr/local/bin/k3s"
    assert (
        hashlib.sha256(binary.read_bytes()).digest()
        == hashlib.sha256(converged.k3s_binary).digest()
    )
    assert stat.S_IMODE(binary.stat().st_mode) == 0o755
    assert os.readlink(root / "usr/local/bin/kubectl") == "/usr/local/bin/k3s"
    config_path = root / "etc/rancher/k3s/config.yaml"
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    config = yaml.safe_load(config_path.read_text())
    assert config["node-ip"] == converged.host.ip  # from the facts' default route
    assert config["write-kubeconfig-mode"] == "0600"
    assert config["tls-san"] == ["k8s.test.dezky.invalid"]
    assert config["cluster-cidr"] == "10.42.0.0/16" and config["service-cidr"] == "10.43.0.0/16"
    assert config["disable"] == []  # the platform routes through k3s's Traefik
    unit = _read(converged, "etc/systemd/system/k3s.service")
    assert "ExecStart=/usr/local/bin/k3s server\n" in unit and "Type=notify" in unit


def test_stalwart_installed(converged: Converged) -> None:
    host = converged.host
    root = host.root
    user = host.chroot("getent", "passwd", "stalwart")
    assert user.returncode == 0
    fields = user.stdout.strip().split(":")
    assert fields[5:] == ["/var/lib/stalwart", "/usr/sbin/nologin"]
    data = (root / "var/lib/stalwart").stat()
    assert stat.S_IMODE(data.st_mode) == 0o750 and data.st_uid == int(fields[2])
    target = os.readlink(root / "usr/local/bin/stalwart")
    assert target.startswith("/opt/stalwart/v")
    assert (root / target.lstrip("/")).read_bytes() == converged.stalwart_binary
    assert json.loads(_read(converged, "etc/stalwart/config.json")) == {
        "@type": "RocksDb",
        "path": "/var/lib/stalwart/",
    }
    env = _read(converged, "etc/stalwart/stalwart.env")
    assert "STALWART_HOSTNAME=mail.test.dezky.invalid\n" in env
    assert "STALWART_RECOVERY_ADMIN" not in env
    plan = [json.loads(line) for line in _read(converged, "etc/stalwart/plan.ndjson").splitlines()]
    listeners = {
        name: value
        for op in plan
        if op["object"] == "NetworkListener"
        for name, value in op["value"].items()
    }
    assert {n: next(iter(v["bind"])) for n, v in listeners.items()} == {
        "smtp": "[::]:25",
        "submissions": "[::]:465",
        "submission": "[::]:587",
        "imaptls": "[::]:993",
        "http": "[::]:8080",
    }
    assert plan[-1]["value"]["defaultHostname"] == "mail.test.dezky.invalid"
    unit = _read(converged, "etc/systemd/system/stalwart.service")
    for line in (
        "User=stalwart",
        "NoNewPrivileges=true",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/stalwart",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "ExecStart=/usr/local/bin/stalwart --config=/etc/stalwart/config.json",
    ):
        assert f"\n{line}\n" in unit


def _tls_pair(work: Path) -> tuple[bytes, bytes]:
    work.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        + ["-nodes", "-keyout", "k.pem", "-out", "c.pem", "-days", "90"]
        + ["-subj", "/CN=mail.test.dezky.invalid"],
        cwd=work,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return (work / "c.pem").read_bytes(), (work / "k.pem").read_bytes()


def test_stalwart_tls_sync(converged: Converged, tmp_path: Path) -> None:
    """The certificate sync on the host: script, units and the enabled timer; then the script
    runs in the root (Debian's bash and openssl) against the stand-in k3s. systemctl cannot
    reach a manager in the root: SYSTEMD_OFFLINE=1 makes it say so instead of failing."""
    host = converged.host
    root = host.root
    script = root / "usr/local/sbin/stalwart-tls-sync"
    assert stat.S_IMODE(script.stat().st_mode) == 0o755 and script.stat().st_uid == 0
    text = script.read_text()
    for line in ("set -euo pipefail", "namespace=mail", "secret=mail-tls", "key_group=stalwart"):
        assert f"\n{line}\n" in text
    gid = int(host.chroot("getent", "group", "stalwart").stdout.split(":")[2])
    tls = root / "etc/stalwart/tls"
    assert stat.S_IMODE(tls.stat().st_mode) == 0o750 and tls.stat().st_gid == gid
    service = _read(converged, "etc/systemd/system/stalwart-tls-sync.service")
    assert "\nExecStart=/usr/local/sbin/stalwart-tls-sync\n" in service
    assert "\nReadWritePaths=/etc/stalwart/tls\n" in service
    assert "\nOnCalendar=hourly\n" in _read(converged, "etc/systemd/system/stalwart-tls-sync.timer")
    timer = root / "etc/systemd/system/timers.target.wants/stalwart-tls-sync.timer"
    assert os.readlink(timer) == "/etc/systemd/system/stalwart-tls-sync.timer"
    installed = host.chroot("dpkg-query", "-W", "-f", "${Status}", "openssl")
    assert installed.stdout == "install ok installed"

    def sync() -> str:
        done = host.chroot(
            "/usr/bin/env",
            "SYSTEMD_OFFLINE=1",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "/usr/local/sbin/stalwart-tls-sync",
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    assert "Secret mail/mail-tls has no tls.crt and tls.key yet" in sync()
    assert list(tls.iterdir()) == []
    cert, key = _tls_pair(tmp_path / "pair")
    served = root / "var/lib/k3s-stand-in/mail/mail-tls"
    served.parent.mkdir(parents=True)
    served.write_bytes(base64.b64encode(cert) + b" " + base64.b64encode(key))
    first, second = sync(), sync()
    assert "Running in chroot, ignoring command 'try-reload-or-restart'" in first
    assert "up to date" in second and "try-reload-or-restart" not in second
    assert (tls / "fullchain.pem").read_bytes() == cert
    assert (tls / "privkey.pem").read_bytes() == key
    assert sorted(p.name for p in tls.iterdir()) == ["fullchain.pem", "privkey.pem"]
    written = (tls / "privkey.pem").stat()
    assert (stat.S_IMODE(written.st_mode), written.st_uid, written.st_gid) == (0o640, 0, gid)
    assert stat.S_IMODE((tls / "fullchain.pem").stat().st_mode) == 0o644
    body = [line for line in key.decode().splitlines() if "PRIVATE KEY" not in line]
    assert not [line for line in body if line in first + second]


def test_units_verify(converged: Converged) -> None:
    done = converged.host.chroot(
        "systemd-analyze",
        "verify",
        "--man=no",
        "/etc/systemd/system/k3s.service",
        "/etc/systemd/system/stalwart.service",
        "/etc/systemd/system/stalwart-tls-sync.service",
        "/etc/systemd/system/stalwart-tls-sync.timer",
        *(f"/etc/systemd/system/restic-{unit}-{source}.service"
          for unit in ("backup", "copy", "check") for source in ("mail", "postgres")),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "escape" not in done.stdout + done.stderr  # systemd took the dump command as written


def test_services_enabled(converged: Converged) -> None:
    root = converged.host.root
    # nftables.service is WantedBy=sysinit.target, the others multi-user.target.
    wanted = {p.name for p in (root / "etc/systemd/system").glob("*.target.wants/*")}
    assert {
        "ssh.service",
        "nftables.service",
        "unattended-upgrades.service",
        "k3s.service",
        "stalwart.service",
    } <= wanted
    assert {
        "restic-backup-mail.timer",
        "restic-copy-mail.timer",
        "restic-check-mail.timer",
    } <= wanted
    assert os.readlink(root / WANTS / "stalwart.service") == "/etc/systemd/system/stalwart.service"


def test_journald_and_sysctl(converged: Converged) -> None:
    assert "Storage=persistent\n" in _read(converged, "etc/systemd/journald.conf.d/50-dezky.conf")
    assert "kernel.kptr_restrict = 2\n" in _read(converged, "etc/sysctl.d/90-dezky.conf")
