"""A throw-away Debian 12 host for the Ansible roles: a debootstrap root in its own network
namespace, reached over real SSH through the root's own sshd.

Why this shape:

* debootstrap runs once into ``.state/testhost/<suite>-<key>/root`` (the key hashes the suite,
  mirror, package list and recipe); every session works on a fresh ``cp -a --reflink=auto`` of it.
* The copy sits in a network namespace joined to the test machine by a veth pair whose names
  and /30 come from the pid, so parallel runs do not clash. The root's sshd listens on the
  namespace address; Ansible logs in as root with a generated key and a pinned host key.
* The namespace cannot reach the internet. apt in the root goes through a small HTTP proxy on
  the host end of the veth (``Acquire::http::Proxy``) that forwards to deb.debian.org and keeps
  ``.deb`` files in ``.state/testhost/apt-cache``, so warm runs fetch only index updates. NAT
  would change the test machine's forwarding and firewall; a local repository would have to know
  the roles' packages in advance. The same server hands out the stand-in k3s and Stalwart
  artifacts under ``/artifacts/`` and records every request, so a test can see re-downloads.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE = REPO / ".state" / "testhost"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# What every Debian 12 server has and what reaching it takes: systemd is its init, python3 and
# openssh-server let Ansible in. Everything else the roles must install themselves.
# iproute2 (Priority: important, on every server) is how Ansible's facts see the network.
INCLUDE = ("python3", "openssh-server", "systemd", "systemd-sysv", "iproute2")
RECIPE = 1  # bump when _build changes what ends up in the root
PROXY_HOSTS = frozenset({"deb.debian.org", "security.debian.org"})


def base_root() -> Path:
    """The cached root, built on first use; a lock keeps parallel sessions from building twice."""
    key = hashlib.sha256(f"{RECIPE}|{SUITE}|{MIRROR}|{','.join(INCLUDE)}".encode()).hexdigest()
    base = STATE / f"{SUITE}-{key[:12]}"
    if (base / "ready").exists():
        return base / "root"
    STATE.mkdir(parents=True, exist_ok=True)
    with (STATE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (base / "ready").exists():
            _build(base)
    return base / "root"


def _build(base: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix=f"{SUITE}-build-", dir=STATE))
    try:
        root = work / "root"
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}", SUITE]
            + [str(root), MIRROR],
            check=True,
            capture_output=True,
            text=True,
            timeout=900,
        )
        # As in any chroot build: package scripts must not start daemons on the test machine.
        policy = root / "usr" / "sbin" / "policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        remove_tree(base)
        work.rename(base)
        (base / "ready").touch()
    finally:
        remove_tree(work)


def mounts_under(path: Path) -> list[Path]:
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = Path(line.split()[1].replace("\\040", " "))
        if target == path or path in target.parents:
            found.append(target)
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def remove_tree(path: Path) -> None:
    """rm -rf that unmounts first and never descends into a mount (a chroot's /proc)."""
    if not path.exists():
        return
    for target in mounts_under(path):
        subprocess.run(["umount", "-l", str(target)], check=False)
    if mounts_under(path):
        raise RuntimeError(f"still mounted below {path}: {mounts_under(path)}")
    shutil.rmtree(path)


@dataclass
class Depot:
    """The HTTP server on the host end of the veth: apt proxy plus stand-in release artifacts."""

    address: str
    cache: Path
    artifacts: dict[str, bytes]
    requests: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://{self.address}:{self.server.server_address[1]}"

    def start(self) -> None:
        depot = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                depot.handle(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((self.address, 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        if request.path.startswith("/artifacts/"):
            name = request.path.removeprefix("/artifacts/")
            self.requests.append(name)
            body = self.artifacts.get(name)
            _reply(request, 200 if body is not None else 404, body or b"", {})
            return
        url = urllib.parse.urlsplit(request.path)
        if url.scheme != "http" or url.hostname not in PROXY_HOSTS:
            _reply(request, 403, b"not proxied\n", {})
            return
        # Pool files never change under a name, so they are safe to keep across sessions.
        cached = self.cache / url.hostname / url.path.lstrip("/")
        cacheable = url.path.endswith(".deb") and "/pool/" in url.path
        if cacheable and cached.is_file():
            _reply(request, 200, cached.read_bytes(), {})
            return
        passed = ("If-Modified-Since", "If-None-Match", "Range", "If-Range")
        headers = {k: v for k in passed if (v := request.headers.get(k)) is not None}
        upstream = urllib.request.Request(request.path, headers=headers)  # noqa: S310
        try:
            # Only http://deb.debian.org and security.debian.org reach here (checked above).
            with urllib.request.urlopen(upstream, timeout=120) as answer:  # noqa: S310
                status, body, got = answer.status, answer.read(), answer.headers
        except urllib.error.HTTPError as error:
            status, body, got = error.code, error.read(), error.headers
        except OSError as error:
            _reply(request, 502, f"{error}\n".encode(), {})
            return
        if cacheable and status == 200:
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_name(cached.name + f".{os.getpid()}.part")
            partial.write_bytes(body)
            partial.rename(cached)
        kept = ("Last-Modified", "ETag", "Content-Type", "Content-Range", "Accept-Ranges")
        _reply(request, status, body, {k: v for k in kept if (v := got.get(k)) is not None})


def _reply(
    request: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]
) -> None:
    request.send_response(status)
    for key, value in headers.items():
        request.send_header(key, value)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    if status != 304:
        request.wfile.write(body)


@dataclass
class TestHost:
    """A running host: the root, its namespace and address, and how to reach it."""

    root: Path
    work: Path
    netns: str
    host_ip: str
    ip: str
    key: Path
    known_hosts: Path
    depot: Depot

    def chroot(self, *argv: str, netns: bool = False) -> subprocess.CompletedProcess[str]:
        prefix = ["ip", "netns", "exec", self.netns] if netns else []
        return subprocess.run(
            [*prefix, "chroot", str(self.root), *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"},
        )

    def inventory(self) -> str:
        ssh_args = (
            f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes"
            " -o IdentitiesOnly=yes -o BatchMode=yes"
        )
        return (
            "[platform]\n"
            f"testhost ansible_host={self.ip} ansible_user=root"
            f" ansible_ssh_private_key_file={self.key}"
            f" ansible_ssh_common_args='{ssh_args}'"
            " ansible_python_interpreter=/usr/bin/python3\n"
        )


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def running_host(work: Path, artifacts: dict[str, bytes]) -> Iterator[TestHost]:
    """Copy the cached root, wire it into a fresh namespace, start its sshd; undo all on exit."""
    pid = os.getpid()
    subnet = ipaddress.IPv4Address("10.231.0.0") + (pid % 16384) * 4
    host_ip, ns_ip = str(subnet + 1), str(subnet + 2)
    netns, veth_host, veth_ns = f"dezky-test-{pid}", f"dzk{pid}h", f"dzk{pid}n"
    root = work / "root"
    sshd: subprocess.Popen[bytes] | None = None
    depot = Depot(address=host_ip, cache=STATE / "apt-cache", artifacts=artifacts)
    try:
        subprocess.run(
            ["cp", "-a", "--reflink=auto", str(base_root()), str(root)], check=True, timeout=300
        )
        subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
        _ip("netns", "add", netns)
        _ip("link", "add", veth_host, "type", "veth", "peer", "name", veth_ns)
        _ip("link", "set", veth_ns, "netns", netns)
        _ip("addr", "add", f"{host_ip}/30", "dev", veth_host)
        _ip("link", "set", veth_host, "up")
        _ip("-n", netns, "addr", "add", f"{ns_ip}/30", "dev", veth_ns)
        _ip("-n", netns, "link", "set", veth_ns, "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        # A default route as on a real server: the roles read the node address from it.
        _ip("-n", netns, "route", "add", "default", "via", host_ip)
        depot.start()
        apt_proxy = root / "etc" / "apt" / "apt.conf.d" / "00test-proxy"
        apt_proxy.write_text(f'Acquire::http::Proxy "{depot.url}/";\n')

        key = work / "client_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        dot_ssh = root / "root" / ".ssh"
        dot_ssh.mkdir(mode=0o700, exist_ok=True)
        (dot_ssh / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
        host_key = (root / "etc" / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()
        known_hosts = work / "known_hosts"
        known_hosts.write_text(f"{ns_ip} {host_key[0]} {host_key[1]}\n")
        # The harness's sshd has its own config: the role's sshd_config is what the tests check.
        (root / "etc" / "ssh" / "test_sshd_config").write_text(
            f"ListenAddress {ns_ip}\nPort 22\nHostKey /etc/ssh/ssh_host_ed25519_key\n"
            "PidFile /run/sshd-test.pid\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "Subsystem sftp internal-sftp\n"
        )
        (root / "run" / "sshd").mkdir(mode=0o755, exist_ok=True)
        with (work / "sshd.log").open("wb") as log:
            sshd = subprocess.Popen(
                ["ip", "netns", "exec", netns, "chroot", str(root)]
                + ["/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/test_sshd_config"],
                stderr=log,
            )
        _wait_listening(ns_ip, sshd, work / "sshd.log")
        yield TestHost(root, work, netns, host_ip, ns_ip, key, known_hosts, depot)
    finally:
        depot.stop()
        if sshd is not None:
            sshd.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                sshd.wait(timeout=5)
        _kill_rooted_in(root)
        if sshd is not None and sshd.poll() is None:
            sshd.kill()
            sshd.wait()
        subprocess.run(["ip", "netns", "del", netns], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", veth_host], check=False, capture_output=True)
        remove_tree(root)


def _kill_rooted_in(root: Path) -> None:
    """Stop what still runs inside the root (sshd's session children), found by their /proc root."""
    for attempt in (signal.SIGTERM, signal.SIGKILL):
        victims = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if Path(os.readlink(entry / "root")) == root:
                        victims.append(int(entry.name))
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, attempt)
        if not victims:
            return
        time.sleep(0.5)


def _wait_listening(address: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection((address, 22), timeout=0.3):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"sshd did not listen on {address}:22: {log.read_text()[-2000:]}")
