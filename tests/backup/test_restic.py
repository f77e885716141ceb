"""automation.backup against real restic over real SFTP (OpenSSH on loopback)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from automation import backup
from tests.backup.conftest import PASSWORD, StorageBox


@pytest.fixture(scope="module")
def primary(storagebox: StorageBox, sample: Path) -> backup.Repository:
    """An initialised repository with one snapshot of ``sample`` (shared, not modified)."""
    repo = storagebox.repository("shared")
    backup.init(repo)
    first = backup.backup(repo, sample, tags=["mail"])
    assert first.files_new == 23
    assert len(first.snapshot_id) == 64
    return repo


def test_backup_forget_check_copy_restore(
    storagebox: StorageBox, primary: backup.Repository, sample: Path, tmp_path: Path
) -> None:
    # Start from a copy of the shared repository (one snapshot): saves an init (scrypt).
    shutil.copytree(storagebox.home / "shared", storagebox.home / "fsn1-mail")
    repo = storagebox.repository("fsn1-mail")
    results = [backup.backup(repo, sample, tags=["mail"]) for _ in range(2)]
    assert results[0].files_total == 23
    assert results[0].bytes_total == sum(f.stat().st_size for f in sample.rglob("*") if f.is_file())
    assert results[0].files_new == 0
    assert results[0].bytes_added < 10_000
    assert len({r.snapshot_id for r in results}) == 2

    # Three snapshots on one day: the daily rule keeps the newest, prune drops the rest.
    retention = backup.forget(repo, keep_daily=7, keep_weekly=5, keep_monthly=12, prune=True)
    assert retention.kept == (results[-1].snapshot_id,)
    assert len(retention.removed) == 2
    assert results[0].snapshot_id in retention.removed
    backup.check(repo, read_data_subset="100%")

    dr = storagebox.repository("hel1-mail")
    backup.init(dr, chunker_params_from=repo)
    backup.copy(repo, dr)
    copied = backup.snapshots(dr, tags=["mail"])
    assert len(copied) == 1

    restored = backup.restore(dr, tmp_path / "restore", tags=["mail"])
    assert restored.snapshot_id == copied[0].id
    assert restored.files == 23
    tree = tmp_path / "restore" / str(sample.resolve()).lstrip("/")
    assert backup.tree_digest(tree) == backup.tree_digest(sample)


def test_wrong_password_is_permanent_and_not_revealed(
    storagebox: StorageBox, primary: backup.Repository
) -> None:
    secret = "hunter2-never-print-me"  # noqa: S105
    wrong = backup.Repository(
        url=primary.url,
        password_file=storagebox.root / "wrong.password",
        ssh_config=primary.ssh_config,
    )
    wrong.password_file.write_text(secret)
    with pytest.raises(backup.WrongPasswordError) as caught:
        backup.snapshots(wrong)
    assert isinstance(caught.value, backup.PermanentError)
    assert str(caught.value).startswith("restic: snapshots: ")
    assert secret not in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert len(backup.snapshots(primary)) == 1  # nothing deleted


def test_missing_repository_is_permanent(storagebox: StorageBox) -> None:
    with pytest.raises(backup.RepositoryMissingError, match=r"^restic: snapshots: "):
        backup.snapshots(storagebox.repository("never-initialised"))


def test_unreachable_box_is_retryable(storagebox: StorageBox, primary: backup.Repository) -> None:
    config = storagebox.root / "ssh_config_down"
    config.write_text(
        storagebox.ssh_config.read_text().replace(f"Port {storagebox.port}", "Port 1")
    )
    down = backup.Repository(
        url=primary.url, password_file=primary.password_file, ssh_config=config
    )
    with pytest.raises(backup.UnreachableError, match=r"^restic: snapshots: "):
        backup.snapshots(down)


def test_locked_repository_is_retryable(storagebox: StorageBox, primary: backup.Repository) -> None:
    locks = storagebox.home / "shared" / "locks"
    env = {
        "PATH": f"{storagebox.root}/bin:/usr/bin:/bin",
        "HOME": str(storagebox.root),
        "RESTIC_PASSWORD_FILE": str(primary.password_file),
        "RESTIC_REPOSITORY": primary.url,
    }
    wrapper = storagebox.root / "bin" / "ssh"
    wrapper.parent.mkdir(exist_ok=True)
    wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {storagebox.ssh_config} "$@"\n')
    wrapper.chmod(0o700)
    # A backup from stdin holds its lock until stdin closes.
    holder = subprocess.Popen(
        ["restic", "backup", "--stdin", "--stdin-filename", "held"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while not any(locks.iterdir()):
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        with pytest.raises(backup.LockedError, match=r"^restic: check: .*already locked") as e:
            backup.check(primary, read_data_subset=None)
        assert isinstance(e.value, backup.RetryableError)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)


def test_tampered_repository_fails_restore(
    storagebox: StorageBox, primary: backup.Repository, tmp_path: Path
) -> None:
    name = "tampered"
    shutil.copytree(storagebox.home / "shared", storagebox.home / name)
    repo = storagebox.repository(name)
    packs = sorted((storagebox.home / name / "data").rglob("*"), key=lambda p: -p.stat().st_size)
    biggest = packs[0]  # the data pack holding blob.bin
    raw = bytearray(biggest.read_bytes())
    for offset in range(100, len(raw) - 100, 4096):
        raw[offset] ^= 0xFF
    biggest.chmod(0o600)
    biggest.write_bytes(bytes(raw))
    with pytest.raises(backup.IntegrityError, match=r"^restic: restore: "):
        backup.restore(repo, tmp_path / "restore")
    with pytest.raises(backup.IntegrityError, match=r"^restic: check: "):
        backup.check(repo, read_data_subset="100%")


@pytest.fixture
def three_snapshots(
    storagebox: StorageBox, primary: backup.Repository, sample: Path
) -> backup.Repository:
    """A repository where the daily rule would remove two of three snapshots."""
    name = f"guarded-{len(list(storagebox.home.iterdir()))}"
    shutil.copytree(storagebox.home / "shared", storagebox.home / name)
    repo = storagebox.repository(name)
    for _ in range(2):
        backup.backup(repo, sample, tags=["mail"])
    assert len(backup.snapshots(repo)) == 3
    return repo


def test_forget_and_prune_with_a_wrong_password_delete_nothing(
    storagebox: StorageBox, three_snapshots: backup.Repository
) -> None:
    wrong = backup.Repository(
        url=three_snapshots.url, password_file=storagebox.root / "wrong.password",
        ssh_config=three_snapshots.ssh_config,
    )  # fmt: skip
    wrong.password_file.write_text("not-the-password\n")
    with pytest.raises(backup.WrongPasswordError, match=r"^restic: forget: "):
        backup.forget(wrong, keep_daily=1, prune=True)
    assert len(backup.snapshots(three_snapshots)) == 3


def test_forget_against_an_unreachable_box_deletes_nothing(
    storagebox: StorageBox, three_snapshots: backup.Repository
) -> None:
    config = storagebox.root / "ssh_config_unreachable"
    config.write_text(
        storagebox.ssh_config.read_text().replace(f"Port {storagebox.port}", "Port 1")
    )
    down = backup.Repository(
        url=three_snapshots.url, password_file=three_snapshots.password_file, ssh_config=config
    )
    with pytest.raises(backup.UnreachableError, match=r"^restic: forget: "):
        backup.forget(down, keep_daily=1, prune=True)
    assert len(backup.snapshots(three_snapshots)) == 3
    # The same call against the reachable box does remove them: the policy was not a no-op.
    assert len(backup.forget(three_snapshots, keep_daily=1, prune=True).removed) == 2
