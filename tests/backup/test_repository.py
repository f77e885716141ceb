"""The ResticRepository provider against real restic over real SFTP (OpenSSH on loopback)."""

from __future__ import annotations

import getpass
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime.rpc import UNKNOWN

from automation import backup
from components.providers._http import ApiError, PermanentApiError, RetryableApiError
from components.providers._restic_output import classify_output
from components.providers.restic import ResticRepositoryProvider
from tests.backup.conftest import PASSWORD, StorageBox

NEW_PASSWORD = "a brand new repository password 42"  # noqa: S105 - test value
WRONG_PASSWORD = "not-the-password-never-print-me"  # noqa: S105 - test value


def known_hosts(box: StorageBox) -> str:
    key_type, key = (box.root / "sshd" / "host_ed25519.pub").read_text().split()[:2]
    return f"[127.0.0.1]:{box.port} {key_type} {key}\n"


def props(box: StorageBox, name: str, **change: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": box.port,
        "user": getpass.getuser(),
        "path": str(box.home / name),
        "identity_file": str(box.root / "sshd" / "client_ed25519"),
        "known_hosts": known_hosts(box),
        "password": PASSWORD,
    }
    values.update(change)
    return values


def texts(error: ApiError) -> list[str]:
    found = [str(error), repr(error), error.message]
    cause = error.__cause__
    while cause is not None:
        found.append(str(cause))
        cause = cause.__cause__
    return found


def keys_of(box: StorageBox, name: str) -> list[str]:
    return sorted(p.name for p in (box.home / name / "keys").iterdir())


@pytest.fixture(scope="module")
def existing(storagebox: StorageBox) -> dict[str, Any]:
    """A repository the provider created (outs), with one snapshot; shared, not modified."""
    created = ResticRepositoryProvider().create(props(storagebox, "provider-existing"))
    assert isinstance(created.outs, dict)
    return created.outs


def test_create_initialises_a_repository_backup_can_use(
    storagebox: StorageBox, existing: dict[str, Any], tmp_path: Path
) -> None:
    assert (storagebox.home / "provider-existing" / "config").is_file()
    assert len(existing["repository_id"]) == 64
    assert existing["url"] == (
        f"sftp://{getpass.getuser()}@127.0.0.1:{storagebox.port}/"
        f"{storagebox.home}/provider-existing"
    )
    repo = storagebox.repository("provider-existing")  # the same password, in a file
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "file").write_text("x")
    backup.backup(repo, tmp_path / "data")
    assert len(backup.snapshots(repo)) == 1


def test_create_again_adopts_without_init(storagebox: StorageBox, existing: dict[str, Any]) -> None:
    config = storagebox.home / "provider-existing" / "config"
    before = (config.stat().st_mtime_ns, keys_of(storagebox, "provider-existing"))
    again = ResticRepositoryProvider().create(props(storagebox, "provider-existing"))
    assert isinstance(again.outs, dict)
    assert again.outs["repository_id"] == existing["repository_id"]
    assert (config.stat().st_mtime_ns, keys_of(storagebox, "provider-existing")) == before


def test_read_finds_the_repository_and_reports_a_missing_one_gone(
    storagebox: StorageBox, existing: dict[str, Any]
) -> None:
    provider = ResticRepositoryProvider()
    read = provider.read(existing["url"], existing)
    assert read.id == existing["url"]
    assert read.inputs == {k: existing[k] for k in ResticRepositoryProvider.inputs}
    assert (
        provider.diff(
            existing["url"], read.outs or {}, props(storagebox, "provider-existing")
        ).changes
        is False
    )

    missing = props(storagebox, "never-initialised")
    assert provider.read("sftp://gone", missing).id == ""
    assert not (storagebox.home / "never-initialised").exists()  # read never initialises


def test_wrong_password_fails_loudly_never_inits_and_never_reveals(
    storagebox: StorageBox, existing: dict[str, Any]
) -> None:
    provider = ResticRepositoryProvider()
    wrong = props(storagebox, "provider-existing", password=WRONG_PASSWORD)
    config = storagebox.home / "provider-existing" / "config"
    before = (config.stat().st_mtime_ns, keys_of(storagebox, "provider-existing"))
    with pytest.raises(
        PermanentApiError, match=r"^restic: opening sftp://.*password does not"
    ) as err:
        provider.create(wrong)
    assert not isinstance(err.value, RetryableApiError)
    with pytest.raises(PermanentApiError, match="never re-initialised") as read_err:
        provider.read(existing["url"], wrong)  # not "gone": refresh keeps it
    for error in (err.value, read_err.value):
        for text in texts(error):
            assert WRONG_PASSWORD not in text
            assert PASSWORD not in text
    assert (config.stat().st_mtime_ns, keys_of(storagebox, "provider-existing")) == before


def test_unreachable_box_is_retryable(storagebox: StorageBox) -> None:
    with pytest.raises(RetryableApiError, match=r"^restic: opening .*could not connect") as err:
        ResticRepositoryProvider().create(props(storagebox, "down", port=1))
    assert err.value.retryable
    assert not (storagebox.home / "down").exists()


def test_a_host_key_that_is_not_the_pinned_one_is_permanent(storagebox: StorageBox) -> None:
    other_key = (storagebox.root / "sshd" / "client_ed25519.pub").read_text().split()[:2]
    pinned = f"[127.0.0.1]:{storagebox.port} {other_key[0]} {other_key[1]}\n"
    with pytest.raises(PermanentApiError, match="host key is not the pinned one") as err:
        ResticRepositoryProvider().create(props(storagebox, "spoofed", known_hosts=pinned))
    assert not err.value.retryable
    assert not (storagebox.home / "spoofed").exists()


def test_a_refused_ssh_key_is_permanent(storagebox: StorageBox, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    with pytest.raises(PermanentApiError, match="refused the SSH key") as err:
        ResticRepositoryProvider().create(props(storagebox, "x", identity_file=str(stranger)))
    assert not err.value.retryable


def test_delete_forgets_and_leaves_the_repository_intact(
    storagebox: StorageBox, existing: dict[str, Any]
) -> None:
    before = sorted(
        p.relative_to(storagebox.home) for p in (storagebox.home / "provider-existing").rglob("*")
    )
    ResticRepositoryProvider().delete(existing["url"], existing)
    after = sorted(
        p.relative_to(storagebox.home) for p in (storagebox.home / "provider-existing").rglob("*")
    )
    assert after == before
    assert ResticRepositoryProvider().read(existing["url"], existing).id == existing["url"]


def recording_restic(tmp_path: Path) -> tuple[Path, Path]:
    """A ``restic`` that logs its argv (and whether RESTIC_PASSWORD is set), then runs restic."""
    log = tmp_path / "argv.log"
    wrapper = tmp_path / "restic"
    wrapper.write_text(
        f"#!/bin/sh\nprintf '%s\\n' \"$@\" >> {log}\n"
        f'[ -n "$RESTIC_PASSWORD" ] && echo env-password-set >> {log}\n'
        'exec /usr/bin/restic "$@"\n'
    )
    wrapper.chmod(0o700)
    return wrapper, log


def test_password_change_rotates_the_key_and_keeps_the_data(
    storagebox: StorageBox, tmp_path: Path
) -> None:
    wrapper, log = recording_restic(tmp_path)
    provider = ResticRepositoryProvider(restic=str(wrapper))
    olds = provider.create(props(storagebox, "rotate")).outs
    assert isinstance(olds, dict)
    repo = storagebox.repository("rotate")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mail").write_text("keep me")
    snapshot = backup.backup(repo, tmp_path / "data").snapshot_id

    news = props(storagebox, "rotate", password=NEW_PASSWORD)
    diff = provider.diff(olds["url"], olds, news)
    assert (diff.changes, diff.replaces) == (True, [])  # an update, never a re-init
    updated = provider.update(olds["url"], olds, news).outs
    assert isinstance(updated, dict)

    assert updated["repository_id"] == olds["repository_id"]
    assert len(keys_of(storagebox, "rotate")) == 1
    with pytest.raises(backup.WrongPasswordError):
        backup.snapshots(storagebox.repository("rotate"))  # the old password no longer opens
    rotated = storagebox.repository("rotate", password=NEW_PASSWORD)
    assert [s.id for s in backup.snapshots(rotated)] == [snapshot]

    # An interrupted rotation (new key added, old not removed) is completed by the rerun.
    third = "a third repository password for the rerun"
    secret = tmp_path / "third"
    secret.write_text(third + "\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "RESTIC_PASSWORD": NEW_PASSWORD,
           "RESTIC_REPOSITORY": f"sftp:storagebox:{storagebox.home}/rotate"}  # fmt: skip
    subprocess.run(
        ["restic", "--no-cache", "-o", f"sftp.command=ssh -F {storagebox.ssh_config} "
         "storagebox -s sftp", "key", "add", f"--new-password-file={secret}"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    assert len(keys_of(storagebox, "rotate")) == 2
    provider.update(olds["url"], updated, props(storagebox, "rotate", password=third))
    assert len(keys_of(storagebox, "rotate")) == 1
    assert len(backup.snapshots(storagebox.repository("rotate", password=third))) == 1

    # Every password reached restic through its environment, none on its command line.
    argv = log.read_text()
    assert {"init", "key", "add", "remove"} <= set(argv.splitlines())
    assert "env-password-set" in argv
    for password in (PASSWORD, NEW_PASSWORD, third):
        assert password not in argv


def test_rotation_when_no_password_opens_is_refused(
    storagebox: StorageBox, existing: dict[str, Any]
) -> None:
    olds = {**existing, "password": WRONG_PASSWORD}
    news = props(storagebox, "provider-existing", password=WRONG_PASSWORD + "-2")
    before = keys_of(storagebox, "provider-existing")
    with pytest.raises(PermanentApiError, match="neither the new nor the previous password"):
        ResticRepositoryProvider().update(existing["url"], olds, news)
    assert keys_of(storagebox, "provider-existing") == before


def test_without_restic_the_error_says_what_to_install(storagebox: StorageBox) -> None:
    provider = ResticRepositoryProvider(restic="/nonexistent/restic")
    with pytest.raises(PermanentApiError, match=r"^restic: /nonexistent/restic is not installed"):
        provider.create(props(storagebox, "none"))


# --- pure parts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "replaces"),
    [
        ({"host": "u2.your-storagebox.de"}, ["host"]),
        ({"port": 22}, ["port"]),
        ({"user": "u1-sub2"}, ["user"]),
        ({"path": "restic/other"}, ["path"]),
        ({"password": NEW_PASSWORD}, []),
        ({"identity_file": "/root/.ssh/other"}, []),
        ({"path": UNKNOWN}, ["path"]),
    ],
)
def test_diff_replaces_on_another_location_only(
    change: dict[str, Any], replaces: list[str]
) -> None:
    base = {"host": "u1.your-storagebox.de", "port": 23, "user": "u1-sub1", "path": "restic/mail",
            "identity_file": "/root/.ssh/id", "known_hosts": "[h]:23 ssh-ed25519 AAAA",
            "password": PASSWORD}  # fmt: skip
    provider = ResticRepositoryProvider()
    assert provider.diff("x", {**base, "port": 23.0}, dict(base)).changes is False
    result = provider.diff("x", base, {**base, **change})
    assert (result.changes, result.replaces) == (True, replaces)


@pytest.mark.parametrize(
    ("change", "failed"),
    [
        ({}, []),
        ({"host": "bad host"}, ["host"]),
        ({"port": 0}, ["port"]),
        ({"user": "Root;rm"}, ["user"]),
        ({"path": "../escape"}, ["path"]),
        ({"path": "a b"}, ["path"]),
        ({"identity_file": "relative/key"}, ["identity_file"]),
        ({"known_hosts": "u1.your-storagebox.de"}, ["known_hosts"]),
        ({"password": "short"}, ["password"]),
        ({"password": UNKNOWN, "host": UNKNOWN}, []),
    ],
)
def test_check(change: dict[str, Any], failed: list[str]) -> None:
    base = {"host": "u1.your-storagebox.de", "port": 23, "user": "u1-sub1", "path": "restic/mail",
            "identity_file": "/root/.ssh/id", "known_hosts": "[u1.your-storagebox.de]:23 "
            "ssh-ed25519 AAAAC3Nza", "password": PASSWORD}  # fmt: skip
    failures = ResticRepositoryProvider().check({}, {**base, **change}).failures
    assert [f.property for f in failures] == failed


@pytest.mark.parametrize(
    ("output", "outcome", "backup_error"),
    [
        ("Fatal: wrong password or no key found", "wrong-password", backup.WrongPasswordError),
        ("unable to create lock in backend: repository is already locked", "locked",
         backup.LockedError),
        ("Fatal: unable to open config file: ...\nIs there a repository at the following "
         "location?", "missing", backup.RepositoryMissingError),
        ("ssh: connect to host 127.0.0.1 port 1: Connection refused\nFatal: unable to open "
         "repository: unable to start the sftp session, error: EOF", "unreachable",
         backup.UnreachableError),
        ("Fatal: create repository failed: config file already exists", "failed",
         backup.CommandFailedError),
        ("Host key verification failed.\nFatal: unable to start the sftp session", "host-key",
         backup.AccessRefusedError),
        ("root@127.0.0.1: Permission denied (publickey).", "key-refused",
         backup.AccessRefusedError),
        ("Fatal: repository contains errors", "integrity", backup.IntegrityError),
    ],
)  # fmt: skip
def test_classification_matches_automation_backup(
    output: str, outcome: str, backup_error: type[backup.ResticError]
) -> None:
    assert classify_output(output) == outcome
    assert type(backup._error("x", output, ())) is backup_error
