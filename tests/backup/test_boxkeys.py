"""SubaccountAuthorizedKeys against real OpenSSH SFTP on loopback, and under the mock runtime.

The storage box fixture's user plays the main account; a folder of its home plays a
subaccount's home directory. ``subaccount_sshd`` logs in with only the keys of such a folder's
``.ssh/authorized_keys`` (the subaccount's login) and serves an SFTP without posix-rename.
"""

from __future__ import annotations

import base64
import getpass
import socket
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.runtime.rpc import UNKNOWN

from components.providers import _sftp, boxkeys
from components.providers._http import ApiError, PermanentApiError, RetryableApiError
from components.providers.boxkeys import SubaccountAuthorizedKeysProvider
from components.storage import BackupStorageBox, StorageBoxArgs
from tests.backup.conftest import StorageBox, SubaccountSshd
from tests.components.conftest import ByName
from tests.providers import conftest as providers

KEYS_TYPE = "pulumi-python:dynamic/storagebox:SubaccountAuthorizedKeys"
SUBACCOUNT = "hcloud:index/storageBoxSubaccount:StorageBoxSubaccount"
BOX = "hcloud:index/storageBox:StorageBox"


@dataclass(frozen=True)
class Key:
    private: Path

    @property
    def public(self) -> str:
        return self.private.with_suffix(".pub").read_text().strip()


@dataclass(frozen=True)
class Keys:
    restic: Key  # the key the subaccount should accept (the platform host's restic key)
    other: Key


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    root = tmp_path_factory.mktemp("keys")
    for name, kind in (("restic", "ed25519"), ("other", "ecdsa")):
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                kind,
                "-N",
                "",
                "-C",
                f"{name}@test",
                "-f",
                str(root / name),
            ],
            check=True,
        )
    return Keys(restic=Key(root / "restic"), other=Key(root / "other"))


def main_key(box: StorageBox) -> Path:
    return box.root / "sshd" / "client_ed25519"


def pinned(box: StorageBox, port: int | None = None, key: str = "host_ed25519.pub") -> str:
    key_type, data = (box.root / "sshd" / key).read_text().split()[:2]
    return f"[127.0.0.1]:{port or box.port} {key_type} {data}\n"


def props(box: StorageBox, home: Path, keys: list[str], **change: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": box.port,
        "user": getpass.getuser(),
        "home_directory": str(home),
        "identity_file": str(main_key(box)),
        "known_hosts": pinned(box, change.get("port")),
        "keys": keys,
    }
    values.update(change)
    return values


def subaccount_home(box: StorageBox, name: str) -> Path:
    """A subaccount's home: Hetzner creates it with the subaccount."""
    home = box.home / f"sub-{name}"
    home.mkdir()
    return home


def key_lines(home: Path) -> list[str]:
    text = (home / ".ssh" / "authorized_keys").read_text()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def texts(error: ApiError) -> list[str]:
    found = [str(error), repr(error), error.message]
    cause = error.__cause__
    while cause is not None:
        found.append(str(cause))
        cause = cause.__cause__
    return found


# --- against the loopback "storage box" -----------------------------------------------------


def test_create_writes_exactly_the_keys_with_owner_only_modes(
    storagebox: StorageBox, keys: Keys
) -> None:
    home = subaccount_home(storagebox, "create")
    (home / ".ssh").mkdir(mode=0o755)
    (home / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAAstale by-hand\n")
    (home / ".ssh" / "authorized_keys").chmod(0o644)
    wanted = [keys.restic.public, keys.other.public]

    created = SubaccountAuthorizedKeysProvider().create(props(storagebox, home, wanted))

    assert key_lines(home) == wanted
    first = (home / ".ssh" / "authorized_keys").read_text().splitlines()[0]
    assert first.startswith("# managed by dezky-infra")
    assert (mode(home / ".ssh"), mode(home / ".ssh" / "authorized_keys")) == (0o700, 0o600)
    assert sorted(p.name for p in (home / ".ssh").iterdir()) == ["authorized_keys"]
    assert isinstance(created.outs, dict)
    url = f"sftp://{getpass.getuser()}@127.0.0.1:{storagebox.port}/{home}/.ssh/authorized_keys"
    assert (created.id, created.outs["url"], created.outs["keys"]) == (url, url, wanted)
    assert created.outs["owner"] in first
    assert len(created.outs["owner"]) == 32


def sftp_login(port: int, identity: Path, known_hosts: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sftp", "-b", "-", "-P", str(port), "-i", str(identity), "-o", "IdentitiesOnly=yes",
         "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
         "-o", "GlobalKnownHostsFile=/dev/null", f"{getpass.getuser()}@127.0.0.1"],
        input="pwd\n", capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_the_subaccount_logs_in_with_the_installed_key_only(
    storagebox: StorageBox, subaccount_sshd: SubaccountSshd, keys: Keys, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(pinned(storagebox, subaccount_sshd.port))
    before = sftp_login(subaccount_sshd.port, keys.restic.private, known_hosts)
    assert before.returncode != 0
    assert "Permission denied (publickey" in before.stderr

    provider = SubaccountAuthorizedKeysProvider()
    created = provider.create(props(storagebox, subaccount_sshd.home, [keys.restic.public]))
    assert isinstance(created.outs, dict)
    after = sftp_login(subaccount_sshd.port, keys.restic.private, known_hosts)
    assert after.returncode == 0, after.stderr
    assert sftp_login(subaccount_sshd.port, main_key(storagebox), known_hosts).returncode != 0

    provider.delete(created.id, created.outs)  # revokes the key
    assert sftp_login(subaccount_sshd.port, keys.restic.private, known_hosts).returncode != 0


def test_read_reports_drift_and_update_repairs_it(storagebox: StorageBox, keys: Keys) -> None:
    provider = SubaccountAuthorizedKeysProvider()
    home = subaccount_home(storagebox, "drift")
    wanted = props(storagebox, home, [keys.restic.public])
    created = provider.create(wanted)
    assert isinstance(created.outs, dict)
    read = provider.read(created.id, created.outs)
    assert read.id == created.id
    assert read.inputs == {k: created.outs[k] for k in provider.inputs}
    assert provider.diff(created.id, read.outs or {}, wanted).changes is False

    file = home / ".ssh" / "authorized_keys"
    file.write_text(file.read_text() + keys.other.public + "\n")  # added by hand
    read = provider.read(created.id, created.outs)
    assert isinstance(read.outs, dict)
    assert read.outs["keys"] == [keys.restic.public, keys.other.public]
    assert (read.inputs or {})["keys"] == read.outs["keys"]
    diff = provider.diff(created.id, read.outs, wanted)
    assert (diff.changes, diff.replaces) == (True, [])
    updated = provider.update(created.id, read.outs, wanted).outs
    assert isinstance(updated, dict)
    assert key_lines(home) == [keys.restic.public]
    assert updated["owner"] == created.outs["owner"]

    file.unlink()  # removed by hand: no keys, not gone
    read = provider.read(created.id, updated)
    assert (read.id, (read.outs or {})["keys"]) == (created.id, [])
    assert provider.diff(created.id, read.outs or {}, wanted).changes is True
    provider.update(created.id, read.outs or {}, wanted)
    assert key_lines(home) == [keys.restic.public]


def test_update_rewrites_the_keys_and_moves_with_the_home(
    storagebox: StorageBox, keys: Keys
) -> None:
    provider = SubaccountAuthorizedKeysProvider()
    first, second = subaccount_home(storagebox, "move-1"), subaccount_home(storagebox, "move-2")
    olds = provider.create(props(storagebox, first, [keys.restic.public])).outs
    assert isinstance(olds, dict)
    news = props(storagebox, first, [keys.other.public])
    olds = provider.update(olds["url"], olds, news).outs
    assert isinstance(olds, dict)
    assert key_lines(first) == [keys.other.public]
    assert mode(first / ".ssh" / "authorized_keys") == 0o600

    moved = props(storagebox, second, [keys.other.public])
    diff = provider.diff(olds["url"], olds, moved)
    assert (diff.changes, diff.replaces) == (True, [])
    outs = provider.update(olds["url"], olds, moved).outs
    assert isinstance(outs, dict)
    assert key_lines(second) == [keys.other.public]
    assert not (first / ".ssh" / "authorized_keys").exists()
    assert outs["url"].endswith(f"{second}/.ssh/authorized_keys")


def test_delete_removes_only_the_file_it_wrote(storagebox: StorageBox, keys: Keys) -> None:
    provider = SubaccountAuthorizedKeysProvider()
    home = subaccount_home(storagebox, "delete")
    wanted = props(storagebox, home, [keys.restic.public])
    old = provider.create(wanted).outs
    new = provider.create(wanted).outs  # e.g. a renamed resource, created before the old goes
    assert isinstance(old, dict)
    assert isinstance(new, dict)
    provider.delete(old["url"], old)
    assert key_lines(home) == [keys.restic.public]  # the successor's file stays

    provider.delete(new["url"], new)
    assert not (home / ".ssh" / "authorized_keys").exists()
    assert (home / ".ssh").is_dir()
    provider.delete(new["url"], new)  # already gone: nothing to do
    provider.delete(new["url"], {**new, "home_directory": str(home / "never-made")})


def test_a_server_without_posix_rename_still_gets_the_file_replaced(
    storagebox: StorageBox, subaccount_sshd: SubaccountSshd, keys: Keys, tmp_path: Path
) -> None:
    provider = SubaccountAuthorizedKeysProvider()
    home = subaccount_home(storagebox, "legacy")
    legacy = {"port": subaccount_sshd.legacy_port}
    olds = provider.create(props(storagebox, home, [keys.restic.public], **legacy)).outs
    assert isinstance(olds, dict)
    # The server really refuses a rename onto an existing file.
    local = tmp_path / "x"
    local.write_text("not a key\n")
    refused = subprocess.run(
        ["sftp", "-P", str(subaccount_sshd.legacy_port), "-i", str(main_key(storagebox)),
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-b", "-",
         f"{getpass.getuser()}@127.0.0.1"],
        input=f'cd "{home}/.ssh"\nput {local} x\nrename x authorized_keys\n',
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "remote rename" in refused.stderr
    assert key_lines(home) == [keys.restic.public]

    provider.update(olds["url"], olds, props(storagebox, home, [keys.other.public], **legacy))
    assert key_lines(home) == [keys.other.public]
    assert mode(home / ".ssh" / "authorized_keys") == 0o600
    assert sorted(p.name for p in (home / ".ssh").iterdir()) == ["authorized_keys", "x"]


def test_a_missing_home_directory_is_permanent(storagebox: StorageBox, keys: Keys) -> None:
    home = storagebox.home / "sub-never-created"
    with pytest.raises(PermanentApiError, match=r"^storagebox: writing .*does not exist") as err:
        SubaccountAuthorizedKeysProvider().create(props(storagebox, home, [keys.restic.public]))
    assert not err.value.retryable
    assert not home.exists()


def test_unreachable_box_is_retryable(storagebox: StorageBox, keys: Keys) -> None:
    home = subaccount_home(storagebox, "down")
    with pytest.raises(RetryableApiError, match=r"^storagebox: writing .*could not connect"):
        SubaccountAuthorizedKeysProvider().create(
            props(storagebox, home, [keys.restic.public], port=1)
        )
    assert not (home / ".ssh").exists()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (no SSH banner)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def test_a_box_that_does_not_answer_times_out_retryably(
    storagebox: StorageBox, keys: Keys, silent_port: int
) -> None:
    home = subaccount_home(storagebox, "silent")
    provider = SubaccountAuthorizedKeysProvider(timeout=1.0)
    with pytest.raises(RetryableApiError, match=r"^storagebox: sftp to .* timed out after 1s"):
        provider.read("x", props(storagebox, home, [keys.restic.public], port=silent_port))


def test_a_host_key_that_is_not_the_pinned_one_is_permanent(
    storagebox: StorageBox, keys: Keys
) -> None:
    home = subaccount_home(storagebox, "spoofed")
    wrong = pinned(storagebox, key="client_ed25519.pub")  # a valid key, not the host's
    with pytest.raises(PermanentApiError, match="host key is not the pinned one") as err:
        SubaccountAuthorizedKeysProvider().create(
            props(storagebox, home, [keys.restic.public], known_hosts=wrong)
        )
    assert not err.value.retryable
    assert not (home / ".ssh").exists()


def test_a_refused_ssh_key_is_permanent(storagebox: StorageBox, keys: Keys) -> None:
    home = subaccount_home(storagebox, "refused")
    stranger = props(storagebox, home, [keys.restic.public], identity_file=str(keys.other.private))
    with pytest.raises(PermanentApiError, match=r"refused the SSH key .* ssh_keys") as err:
        SubaccountAuthorizedKeysProvider().read("x", stranger)
    assert not err.value.retryable
    private = keys.other.private.read_text()
    body = "".join(private.splitlines()[1:-1])
    for text in texts(err.value):
        assert "PRIVATE KEY" not in text
        assert body[:40] not in text


@pytest.mark.parametrize(("binary", "name"), [("sftp", "/nonexistent/sftp"), ("ssh", "nossh")])
def test_without_openssh_the_error_says_what_to_install(
    storagebox: StorageBox, keys: Keys, binary: str, name: str
) -> None:
    provider = (
        SubaccountAuthorizedKeysProvider(sftp=name)
        if binary == "sftp"
        else SubaccountAuthorizedKeysProvider(ssh=name)
    )
    with pytest.raises(PermanentApiError, match=rf"^storagebox: {name} is not installed .*openssh"):
        provider.create(props(storagebox, storagebox.home, [keys.restic.public]))


# --- checks and diff -------------------------------------------------------------------------


def blob(key_type: str, *fields: bytes) -> str:
    parts = [key_type.encode(), *fields]
    data = b"".join(len(p).to_bytes(4, "big") + p for p in parts)
    return base64.b64encode(data).decode()


ED25519 = f"ssh-ed25519 {blob('ssh-ed25519', b'k' * 32)} ops@host"
SK = f"sk-ssh-ed25519@openssh.com {blob('sk-ssh-ed25519@openssh.com', b'k' * 32, b'ssh:')}"
POINT = bytes([4]) + b"p" * 64
ECDSA = f"ecdsa-sha2-nistp256 {blob('ecdsa-sha2-nistp256', b'nistp256', POINT)}"


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ([ED25519, SK, ECDSA], None),
        ([f"  {ED25519}  "], None),
        ([ED25519, UNKNOWN], None),
        ([], "keys: at least one public key"),
        (ED25519, "keys: must be a list"),
        ([ED25519, f"{ED25519}\n{ECDSA}"], "keys[1]: must be exactly one line"),
        ([f'command="/bin/sh" {ED25519}'], "keys[0]: must be '<type> <base64> [comment]'"),
        ([ED25519, f"ssh-dss {blob('ssh-dss', b'x')}"], "keys[1]: must be '<type>"),
        (["ssh-ed25519 not*base64"], "keys[0]: the ssh-ed25519 key data is not base64"),
        ([f"ssh-rsa {ED25519.split()[1]}"], "keys[0]: the key data is not a ssh-rsa key"),
        ([ED25519, ED25519.replace("ops@host", "again")], "keys[1]: is the same key as keys[0]"),
        ([ED25519, 42], "keys[1]: is not a string"),
    ],
)
def test_check_keys(keys: Any, problem: str | None) -> None:
    base = {"host": "u1.your-storagebox.de", "port": 23, "user": "u1", "keys": keys,
            "home_directory": "restic/mail", "identity_file": "/root/.ssh/id_ed25519",
            "known_hosts": "[u1.your-storagebox.de]:23 ssh-ed25519 AAAAC3Nza"}  # fmt: skip
    result = SubaccountAuthorizedKeysProvider().check({}, base)
    reasons = [f.reason for f in result.failures if f.property == "keys"]
    if problem is None:
        assert reasons == []
        assert result.inputs is not None
        assert [k if k == UNKNOWN else k.strip() for k in keys] == result.inputs["keys"]
    else:
        assert len(reasons) == 1
        assert problem in reasons[0]


def test_a_private_key_given_as_public_key_is_rejected_without_echoing_it(keys: Keys) -> None:
    private = keys.restic.private.read_text()
    problems = boxkeys.public_key_problems([keys.other.public, private])
    assert problems == ["keys[1]: looks like a private key: give the public key (the .pub file)"]
    with pytest.raises(
        ValueError, match=r"authorized_keys: keys\[1\]: looks like a private"
    ) as err:
        BackupStorageBox("backup", box_args(authorized_keys=[keys.other.public, private]))
    body = "".join(private.splitlines()[1:-1])
    assert body[:40] not in str(err.value)
    assert keys.other.public.split()[1] not in str(err.value)


def test_scratch_trusts_only_the_pinned_host_keys_and_is_removed() -> None:
    pin = "[u1.your-storagebox.de]:23 ssh-ed25519 AAAAC3Nza"
    box = _sftp.Box("u1.your-storagebox.de", 23, "u1", "/root/.ssh/id", f"\n{pin}\n\n")
    with _sftp.scratch(box, prefix="test-", options=["ForwardAgent no"]) as scratch:
        assert mode(scratch.path) == 0o700
        config = scratch.ssh_config.read_text().splitlines()
        known_hosts = (scratch.path / "known_hosts").read_text()
    assert not scratch.path.exists()
    assert known_hosts == pin + "\n"
    assert config[0] == f"Host {_sftp.HOST_ALIAS}"
    assert {
        "    HostName u1.your-storagebox.de", "    Port 23", "    User u1",
        "    IdentityFile /root/.ssh/id", "    IdentitiesOnly yes",
        f"    UserKnownHostsFile {scratch.path / 'known_hosts'}",
        "    GlobalKnownHostsFile /dev/null", "    StrictHostKeyChecking yes",
        "    BatchMode yes", "    ForwardAgent no",
    } <= set(config)  # fmt: skip


@pytest.mark.parametrize(
    ("change", "replaces"),
    [
        ({}, None),
        ({"port": 23.0}, None),
        ({"keys": [ED25519, ECDSA]}, []),
        ({"keys": [ED25519, UNKNOWN]}, []),
        ({"home_directory": "restic/other"}, []),
        ({"port": 22}, []),
        ({"known_hosts": "[u1.your-storagebox.de]:23 ssh-ed25519 AAAAother"}, []),
        ({"identity_file": "/root/.ssh/other"}, []),
        ({"host": "u2.your-storagebox.de"}, ["host"]),
        ({"user": "u2"}, ["user"]),
    ],
)
def test_diff_updates_in_place_except_on_another_box(
    change: dict[str, Any], replaces: list[str] | None
) -> None:
    olds = {"host": "u1.your-storagebox.de", "port": 23, "user": "u1",
            "home_directory": "restic/mail", "identity_file": "/root/.ssh/id_ed25519",
            "known_hosts": "[u1.your-storagebox.de]:23 ssh-ed25519 AAAA", "keys": [ED25519],
            "url": "sftp://x", "owner": "f" * 32}  # fmt: skip
    news = {k: v for k, v in olds.items() if k not in ("url", "owner")}
    result = SubaccountAuthorizedKeysProvider().diff("x", olds, {**news, **change})
    assert result.changes is (replaces is not None)
    assert result.replaces == (replaces or [])


# --- BackupStorageBox under the mock runtime -----------------------------------------------


class NumericBoxIds(ByName):
    """Registrations by name; a Storage Box gets a numeric id, as Hetzner's are."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        id_, outs = super().new_resource(args)
        return ("4242" if args.typ == BOX else id_), outs


class OptionsByName(providers.Monitor):
    """The mock monitor, keeping each registration's parent and dependencies by name."""

    def __init__(self, recorder: providers.Recorder) -> None:
        super().__init__(recorder)
        self.by_name: dict[str, tuple[str, list[str]]] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        self.by_name[request.name] = (request.parent, list(request.dependencies))
        return super().RegisterResource(request)


def box_args(**change: Any) -> StorageBoxArgs:
    values: dict[str, Any] = {
        "name": "dezky-backup",
        "location": "fsn1",
        "box_type": "bx21",
        "ssh_keys": [ED25519],
        "password": "box-password-0123456789",
        "subaccounts": {"mail": "mail-password-0123456789", "files": "files-password-01234567"},
    }
    values.update(change)
    return StorageBoxArgs(**values)


def render(monkeypatch: pytest.MonkeyPatch, args: StorageBoxArgs) -> tuple[ByName, OptionsByName]:
    monkeypatch.setattr(providers, "Recorder", NumericBoxIds)
    monkeypatch.setattr(providers, "Monitor", OptionsByName)
    outputs = {
        BOX: {
            "server": "u1.your-storagebox.de", "username": "u1",
        },
        SUBACCOUNT: {"username": "u1-sub1"},
    }  # fmt: skip
    recorder, monitor, _ = providers.render_component(
        lambda: BackupStorageBox("backup", args), (), outputs
    )
    assert isinstance(recorder, ByName)
    assert isinstance(monitor, OptionsByName)
    return recorder, monitor


def test_storage_box_declares_one_key_file_per_subaccount(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = box_args(
        authorized_keys=[ED25519],
        identity_file="/root/.ssh/storagebox_ed25519",
        known_hosts="[u1.your-storagebox.de]:23 ssh-ed25519 AAAA\n",
    )
    recorder, monitor = render(monkeypatch, args)
    files = {n: inputs for n, (typ, inputs) in recorder.by_name.items() if typ == KEYS_TYPE}
    assert sorted(files) == ["backup-files-keys", "backup-mail-keys"]
    for source in ("files", "mail"):
        inputs = files[f"backup-{source}-keys"]
        assert (inputs["host"], inputs["port"], inputs["user"]) == (
            "u1.your-storagebox.de",
            23,
            "u1",
        )
        assert inputs["home_directory"] == f"restic/{source}"  # the subaccount's output
        assert inputs["keys"] == [ED25519]
        assert inputs["identity_file"] == "/root/.ssh/storagebox_ed25519"
        assert inputs["known_hosts"].startswith("[u1.your-storagebox.de]:23 ")
        parent, dependencies = monitor.by_name[f"backup-{source}-keys"]
        account = f"{SUBACCOUNT}::backup-{source}"
        assert parent.endswith(account)
        assert any(d.endswith(account) for d in dependencies)
    assert monitor.options[KEYS_TYPE]["protect"] is False


def test_storage_box_without_keys_declares_no_key_file(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder, _ = render(monkeypatch, box_args())
    types = {typ for typ, _ in recorder.by_name.values()}
    assert SUBACCOUNT in types
    assert KEYS_TYPE not in types


def test_keys_without_a_way_to_log_in_fail_before_registering() -> None:
    with pytest.raises(ValueError, match="needs identity_file .* and known_hosts"):
        BackupStorageBox("backup", box_args(authorized_keys=[ED25519]))
