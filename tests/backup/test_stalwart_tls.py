"""stalwart-tls-sync (ansible/roles/stalwart): the mail certificate from the cluster to the host.

The role's script and units are rendered by Ansible's template module (the role's defaults, the
paths pointed into a temp directory) and the script runs for real, with bash, base64 and the
test machine's openssl, against certificate pairs openssl makes here. Stand-ins on PATH: ``k3s``
answers ``kubectl get secret`` from Secret objects in a directory (evaluating the ``{.a.b}``
subset of jsonpath the script uses) and ``systemctl`` records its arguments.

The files get root as owner, so this needs root like tests/ansible. On a 2-CPU machine: the
render ~3.5 s, the key pairs ~0.2 s, each test 0.1-0.8 s; the file ~8 s.
"""

from __future__ import annotations

import base64
import grp
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ANSIBLE = Path(__file__).resolve().parents[2] / "ansible"
ROLE = ANSIBLE / "roles" / "stalwart"
NAMESPACE, SECRET = "mail", "mail-tls"
HOSTNAME = "mail.test.dezky.invalid"
RELOAD = "try-reload-or-restart stalwart.service"

K3S = """#!{python}
# Stand-in for `k3s kubectl -n NS get secret NAME [--ignore-not-found] -o jsonpath=TEMPLATE`.
import json, pathlib, re, sys

API = pathlib.Path({api!r})
args = sys.argv[1:]
with (API / "calls").open("a") as log:
    log.write(json.dumps(args) + "\\n")
if (API / "down").exists():
    sys.exit("The connection to the server 127.0.0.1:6443 was refused")
if args[:2] != ["kubectl", "-n"] or args[3:5] != ["get", "secret"]:
    sys.exit(f"stand-in: unexpected arguments {{args}}")
namespace, name, rest = args[2], args[5], args[6:]
ignore = "--ignore-not-found" in rest
rest = [a for a in rest if a != "--ignore-not-found"]
if len(rest) != 2 or rest[0] != "-o" or not rest[1].startswith("jsonpath="):
    sys.exit(f"stand-in: unexpected arguments {{args}}")
found = API / namespace / f"{{name}}.json"
if not found.exists():
    if ignore:
        sys.exit(0)
    sys.exit(f'Error from server (NotFound): secrets "{{name}}" not found')
secret = json.loads(found.read_text())
if (API / "broken-template").exists():  # as kubectl does: the template, then the whole object
    sys.exit(f"error: error executing jsonpath {{rest[1]!r}}: boom\\n\\tobject: {{secret}}")


def field(expression):
    value = secret
    for part in re.split(r"(?<!\\\\)\\.", expression.strip("{{}}").lstrip(".")):
        value = value.get(part.replace("\\\\.", "."), "") if isinstance(value, dict) else ""
    return value


sys.stdout.write(re.sub(r"{{[^}}]*}}", lambda m: str(field(m.group(0))), rest[1][9:]))
"""
SYSTEMCTL = '#!/bin/sh\necho "$*" >> {calls}\n'
CA_CONFIG = """[ca]
default_ca = old
[old]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any
[any]
commonName = supplied
"""


@dataclass(frozen=True)
class Pair:
    cert: bytes
    key: bytes


def _openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pair(work: Path, *, expired: bool = False) -> Pair:
    """A self-signed P-256 pair for the mail host; an expired one through `openssl ca`, the only
    way OpenSSL 3.0 sets dates in the past."""
    work.mkdir(parents=True)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "k.pem"]
    subject = ["-subj", f"/CN={HOSTNAME}"]
    if expired:
        _openssl(work, "req", "-new", *key, "-out", "r.csr", *subject)
        (work / "ca.cnf").write_text(CA_CONFIG)
        (work / "index.txt").write_text("")
        (work / "serial").write_text("01\n")
        _openssl(
            work,
            *("ca", "-batch", "-config", "ca.cnf", "-selfsign", "-keyfile", "k.pem", "-notext"),
            *("-in", "r.csr", "-out", "c.pem", "-startdate", "20200101000000Z"),
            *("-enddate", "20200201000000Z"),
        )
    else:
        _openssl(work, "req", "-x509", *key, "-out", "c.pem", "-days", "90", *subject)
    return Pair(cert=(work / "c.pem").read_bytes(), key=(work / "k.pem").read_bytes())


@dataclass(frozen=True)
class Rendered:
    script: Path
    service: Path
    timer: Path
    tls: Path
    bin: Path
    api: Path
    group: grp.struct_group


def _render(work: Path, group: str) -> Rendered:
    """The three templates with Ansible, the role's defaults loaded as the role would."""
    tls, bin_dir, units = work / "etc" / "tls", work / "bin", work / "units"
    for folder in (tls, bin_dir, units, work / "api", work / "home"):
        folder.mkdir(parents=True)
    script = work / "sbin" / "stalwart-tls-sync"
    script.parent.mkdir()
    items = [
        {"src": "stalwart-tls-sync.j2", "dest": str(script), "mode": "0755"},
        {"src": "stalwart-tls-sync.service.j2", "dest": str(units / "stalwart-tls-sync.service")},
        {"src": "stalwart-tls-sync.timer.j2", "dest": str(units / "stalwart-tls-sync.timer")},
    ]
    play = [
        {
            "name": "Render the certificate sync of the stalwart role",
            "hosts": "localhost",
            "gather_facts": False,
            "vars_files": [str(ROLE / "defaults" / "main.yml")],
            "tasks": [
                {
                    "name": "Render",
                    "ansible.builtin.template": {
                        "src": f"{ROLE}/templates/{{{{ item.src }}}}",
                        "dest": "{{ item.dest }}",
                        "mode": "{{ item.mode | default('0644') }}",
                    },
                    "loop": items,
                }
            ],
        }
    ]
    playbook = work / "render.yml"
    playbook.write_text(json.dumps(play))
    variables = {
        "stalwart_tls_certificate": str(tls / "fullchain.pem"),
        "stalwart_tls_private_key": str(tls / "privkey.pem"),
        "stalwart_tls_key_group": group,
        "stalwart_tls_sync_script": str(script),
        "ansible_python_interpreter": sys.executable,
    }
    (work / "vars.json").write_text(json.dumps(variables))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local"]
        + ["-e", f"@{work / 'vars.json'}", str(playbook)],
        env={
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": str(work / "home"),
            "ANSIBLE_LOCAL_TEMP": str(work / "home" / "tmp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "LC_ALL": "C.UTF-8",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (bin_dir / "k3s").write_text(K3S.format(python=sys.executable, api=str(work / "api")))
    (bin_dir / "systemctl").write_text(SYSTEMCTL.format(calls=work / "api" / "systemctl"))
    for stand_in in ("k3s", "systemctl"):
        (bin_dir / stand_in).chmod(0o755)
    return Rendered(
        script=script,
        service=units / "stalwart-tls-sync.service",
        timer=units / "stalwart-tls-sync.timer",
        tls=tls,
        bin=bin_dir,
        api=work / "api",
        group=grp.getgrnam(group),
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    if os.geteuid() != 0:
        pytest.fail("stalwart-tls-sync gives its files to root: run as root", pytrace=False)
    missing = [t for t in ("openssl", "base64", "systemd-analyze") if not shutil.which(t)]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: see .ci/apt-packages", pytrace=False)
    # A group other than root's, so the key's group is seen to be set.
    return _render(tmp_path_factory.mktemp("tls-sync"), grp.getgrgid(65534).gr_name)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pair]:
    work = tmp_path_factory.mktemp("pairs")
    made = {name: make_pair(work / name) for name in ("current", "rotated")}
    made["expired"] = make_pair(work / "expired", expired=True)
    made["mismatched"] = Pair(cert=made["current"].cert, key=made["rotated"].key)
    return made


class Host:
    """The rendered script against a fresh API directory and an empty certificate directory."""

    def __init__(self, rendered: Rendered) -> None:
        self.rendered = rendered
        for stale in rendered.tls.iterdir():
            stale.unlink()
        shutil.rmtree(rendered.api)
        rendered.api.mkdir()
        self.outputs: list[str] = []

    @property
    def cert(self) -> Path:
        return self.rendered.tls / "fullchain.pem"

    @property
    def key(self) -> Path:
        return self.rendered.tls / "privkey.pem"

    def publish(self, pair: Pair | None, **data: str) -> None:
        """The Secret as the API holds it (base64 data), or none."""
        path = self.rendered.api / NAMESPACE / f"{SECRET}.json"
        if pair is None and not data:
            path.unlink(missing_ok=True)
            return
        if pair is not None:
            data = {
                "tls.crt": base64.b64encode(pair.cert).decode(),
                "tls.key": base64.b64encode(pair.key).decode(),
                "ca.crt": "",
                **data,
            }
        secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls", "data": data}
        secret["metadata"] = {"name": SECRET, "namespace": NAMESPACE}
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(secret))

    def run(self) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.rendered.script)],
            env={"PATH": f"{self.rendered.bin}:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self.outputs.append(done.stdout + done.stderr)
        return done

    def reloads(self) -> list[str]:
        calls = self.rendered.api / "systemctl"
        return calls.read_text().splitlines() if calls.exists() else []

    def installed(self) -> Pair | None:
        if not self.cert.exists() and not self.key.exists():
            return None
        return Pair(cert=self.cert.read_bytes(), key=self.key.read_bytes())

    def listing(self) -> list[str]:
        """What the directory holds: a temp file left over would show here."""
        return sorted(p.name for p in self.rendered.tls.iterdir())


@pytest.fixture
def host(rendered: Rendered, pairs: dict[str, Pair]) -> Iterator[Host]:
    made = Host(rendered)
    yield made
    for output in made.outputs:
        for pair in pairs.values():
            body = [line for line in pair.key.decode().splitlines() if "PRIVATE KEY" not in line]
            assert body and not [line for line in body if line in output], output
            assert base64.b64encode(pair.key).decode()[:40] not in output, output


def test_a_new_pair_is_installed_with_its_modes_and_stalwart_reloaded(
    host: Host, pairs: dict[str, Pair]
) -> None:
    host.publish(pairs["current"])
    done = host.run()
    assert done.returncode == 0, done.stderr
    assert host.installed() == pairs["current"]
    assert host.listing() == ["fullchain.pem", "privkey.pem"]
    cert, key = host.cert.stat(), host.key.stat()
    assert (stat.S_IMODE(cert.st_mode), cert.st_uid, cert.st_gid) == (0o644, 0, 0)
    assert (stat.S_IMODE(key.st_mode), key.st_uid) == (0o640, 0)
    assert key.st_gid == host.rendered.group.gr_gid
    assert host.reloads() == [RELOAD]
    assert f"CN = {HOSTNAME}" in done.stdout
    calls = [json.loads(line) for line in (host.rendered.api / "calls").read_text().splitlines()]
    assert calls == [
        ["kubectl", "-n", NAMESPACE, "get", "secret", SECRET, "--ignore-not-found"]
        + ["-o", "jsonpath={.data.tls\\.crt} {.data.tls\\.key}"]
    ]


def test_a_second_run_changes_nothing(host: Host, pairs: dict[str, Pair]) -> None:
    host.publish(pairs["current"])
    assert host.run().returncode == 0
    before = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in (host.cert, host.key)]
    again = host.run()
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stdout
    assert [(p.stat().st_ino, p.stat().st_mtime_ns) for p in (host.cert, host.key)] == before
    assert host.reloads() == [RELOAD]
    assert host.listing() == ["fullchain.pem", "privkey.pem"]


def test_a_rotated_pair_is_picked_up_with_one_reload(host: Host, pairs: dict[str, Pair]) -> None:
    host.publish(pairs["current"])
    assert host.run().returncode == 0
    host.publish(pairs["rotated"])
    for _ in range(2):
        done = host.run()
        assert done.returncode == 0, done.stderr
    assert host.installed() == pairs["rotated"]
    assert host.reloads() == [RELOAD, RELOAD]
    assert stat.S_IMODE(host.key.stat().st_mode) == 0o640
    assert host.listing() == ["fullchain.pem", "privkey.pem"]


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("mismatched", "tls.key does not belong to the certificate in tls.crt"),
        ("expired", "the certificate in tls.crt has expired (Feb  1 00:00:00 2020 GMT)"),
        ("garbage certificate", "tls.crt is not a PEM certificate"),
        ("garbage key", "tls.key is not a PEM private key"),
    ],
)
def test_a_bad_pair_is_refused_and_the_old_files_kept(
    host: Host, pairs: dict[str, Pair], bad: str, expected: str
) -> None:
    host.publish(pairs["current"])
    assert host.run().returncode == 0
    inodes = [p.stat().st_ino for p in (host.cert, host.key)]
    if bad == "garbage certificate":
        host.publish(Pair(cert=b"not a certificate\n", key=pairs["rotated"].key))
    elif bad == "garbage key":
        host.publish(Pair(cert=pairs["rotated"].cert, key=b"not a key\n"))
    else:
        host.publish(pairs[bad])
    done = host.run()
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"stalwart-tls-sync: {expected}; kept {host.cert} and {host.key}\n" == done.stderr
    assert host.installed() == pairs["current"]
    assert [p.stat().st_ino for p in (host.cert, host.key)] == inodes
    assert host.listing() == ["fullchain.pem", "privkey.pem"]
    assert host.reloads() == [RELOAD]


def test_a_bad_first_pair_writes_nothing(host: Host, pairs: dict[str, Pair]) -> None:
    host.publish(pairs["expired"])
    assert host.run().returncode == 1
    assert host.listing() == [] and host.reloads() == []


@pytest.mark.parametrize("installed", [False, True], ids=["first-boot", "after-install"])
@pytest.mark.parametrize("stored", ["missing", "empty"])
def test_no_secret_yet_exits_0_and_changes_nothing(
    host: Host, pairs: dict[str, Pair], installed: bool, stored: str
) -> None:
    if installed:
        host.publish(pairs["current"])
        assert host.run().returncode == 0
    host.publish(None, **({"ca.crt": ""} if stored == "empty" else {}))
    done = host.run()
    assert done.returncode == 0, done.stderr
    assert f"Secret {NAMESPACE}/{SECRET} has no tls.crt and tls.key yet" in done.stdout
    assert host.installed() == (pairs["current"] if installed else None)
    assert host.reloads() == ([RELOAD] if installed else [])


@pytest.mark.parametrize("failure", ["down", "broken-template"])
def test_an_unreadable_secret_fails_with_kubectls_first_line(
    host: Host, pairs: dict[str, Pair], failure: str
) -> None:
    host.publish(pairs["current"])
    (host.rendered.api / failure).touch()
    done = host.run()
    assert done.returncode == 1
    assert done.stderr.startswith(f"stalwart-tls-sync: cannot read Secret {NAMESPACE}/{SECRET}: ")
    assert len(done.stderr.splitlines()) == 1  # the object kubectl prints next stays out
    assert host.listing() == [] and host.reloads() == []


def test_the_units_pass_systemd_analyze(rendered: Rendered) -> None:
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(rendered.service), str(rendered.timer)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stderr
    service, timer = rendered.service.read_text(), rendered.timer.read_text()
    assert f"\nExecStart={rendered.script}\n" in service
    assert f"\nReadWritePaths={rendered.tls}\n" in service
    for line in ("OnBootSec=5min", "OnCalendar=hourly", "RandomizedDelaySec=10min"):
        assert f"\n{line}\n" in timer
    assert "\nWantedBy=timers.target\n" in timer
