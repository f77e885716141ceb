"""restic backups on Storage Box subaccounts: the only module that runs ``restic``.

Every function runs one restic command against a :class:`Repository` and returns a typed result
parsed from restic's ``--json`` output. Passwords reach restic only through
``RESTIC_PASSWORD_FILE`` / ``RESTIC_FROM_PASSWORD_FILE``: never on the command line, never in
an error message (the password file's content is redacted from restic's output as well).

The child process gets a small explicit environment, not the caller's: a stray
``RESTIC_PASSWORD`` or ``RESTIC_REPOSITORY`` in the shell cannot change which repository is
written or which key opens it.

SFTP repositories: ``sftp:<user>@<host>:/<path>`` or, for the Storage Box's port 23,
``sftp://<user>@<host>:23/<path>`` (one slash after the port = relative to the home
directory), or an ``ssh_config`` alias (``sftp:storagebox-fsn1:restic/mail``). With
``Repository.ssh_config`` restic's ``ssh`` runs with ``-F <ssh_config>``, so one config file can
hold the aliases of both boxes (needed by :func:`copy`, which opens two repositories in one
restic process).

Errors (every message starts with ``restic: <command>: ``)::

    ResticError
    ├── RetryableError              a later attempt can succeed
    │   ├── LockedError             "repository is already locked"
    │   └── UnreachableError        ssh/sftp could not connect, connection dropped
    └── PermanentError              stalls until a person changes something
        ├── ResticMissingError      no restic binary
        ├── WrongPasswordError      no key opens the repository with that password
        ├── RepositoryMissingError  no repository at that location
        ├── AccessRefusedError      the box refused our key, or its host key is not the pinned one
        ├── IntegrityError          check failed, or a restore did not verify
        └── CommandFailedError      any other non-zero exit
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.providers import _restic_output as restic_output

MESSAGE_LIMIT = 600
TIMEOUT_SECONDS = 6 * 3600
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ResticError(Exception):
    """A restic command failed; the message starts with ``restic: <command>: ``."""


class RetryableError(ResticError):
    """A failure a later attempt can fix (network, lock)."""


class LockedError(RetryableError):
    """Another restic process holds a lock on the repository."""


class UnreachableError(RetryableError):
    """The Storage Box could not be reached over SFTP, or the connection dropped."""


class PermanentError(ResticError):
    """A failure that repeats until a person changes the repository, password or host."""


class ResticMissingError(PermanentError):
    """The restic binary is not installed."""


class WrongPasswordError(PermanentError):
    """The password file opens no key of the repository."""


class RepositoryMissingError(PermanentError):
    """There is no repository at the URL (``init`` was never run, or the path is wrong)."""


class AccessRefusedError(PermanentError):
    """The box refused our SSH key, or its host key is not the pinned one: a person must look."""


class IntegrityError(PermanentError):
    """The repository or a restored tree does not match what was backed up."""


class CommandFailedError(PermanentError):
    """restic exited non-zero for a reason not classified above."""


# One reading of restic's output for the whole project (the provider's table); what each
# outcome means for a backup run on the host.
_ERROR_OF: dict[restic_output.Outcome, type[ResticError]] = {
    "wrong-password": WrongPasswordError,
    "locked": LockedError,
    "missing": RepositoryMissingError,
    "unreachable": UnreachableError,
    "host-key": AccessRefusedError,
    "key-refused": AccessRefusedError,
    "integrity": IntegrityError,
}


@dataclass(frozen=True)
class Repository:
    """One restic repository, e.g. a Storage Box subaccount's ``restic/mail``."""

    url: str
    password_file: Path
    ssh_config: Path | None = None
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if not self.url or any(c in self.url for c in "\n\r"):
            raise ValueError(f"restic: invalid repository url {self.url!r}")


@dataclass(frozen=True)
class BackupResult:
    snapshot_id: str
    files_new: int
    files_changed: int
    files_total: int
    bytes_total: int
    bytes_added: int


@dataclass(frozen=True)
class ForgetResult:
    kept: tuple[str, ...]
    removed: tuple[str, ...]


@dataclass(frozen=True)
class Snapshot:
    id: str
    time: str
    paths: tuple[str, ...]
    tags: tuple[str, ...]


@dataclass(frozen=True)
class RestoreResult:
    snapshot_id: str
    target_dir: Path
    files: int
    bytes: int


def init(repo: Repository, chunker_params_from: Repository | None = None) -> None:
    """Create the repository; with ``chunker_params_from`` it deduplicates copies from there."""
    args = ["init"]
    if chunker_params_from is not None:
        _same_ssh_config(repo, chunker_params_from)
        args += ["--copy-chunker-params", "--from-repo", chunker_params_from.url]
    _run(repo, args, source=chunker_params_from)


def backup(repo: Repository, source_dir: Path, tags: Sequence[str] = ()) -> BackupResult:
    """Back up ``source_dir`` (stored under its absolute path) as a new snapshot."""
    source = source_dir.resolve()
    if not source.is_dir():
        raise CommandFailedError(f"restic: backup: source {source} is not a directory")
    args = ["backup", "--json", *_tag_args(tags), str(source)]
    summary = _last_message(_run(repo, args), "summary", "backup")
    snapshot_id = str(summary["snapshot_id"])
    if len(snapshot_id) < 64:  # restic < 0.17 reports the short id
        snapshot_id = _full_id(repo, snapshot_id)
    return BackupResult(
        snapshot_id=snapshot_id,
        files_new=int(summary.get("files_new", 0)),
        files_changed=int(summary.get("files_changed", 0)),
        files_total=int(summary.get("total_files_processed", 0)),
        bytes_total=int(summary.get("total_bytes_processed", 0)),
        bytes_added=int(summary.get("data_added", 0)),
    )


def forget(
    repo: Repository,
    keep_daily: int = 7,
    keep_weekly: int = 5,
    keep_monthly: int = 12,
    prune: bool = True,
    tags: Sequence[str] = (),
) -> ForgetResult:
    """Apply the retention policy (per host, paths and ``tags``), pruning unreferenced data."""
    args = ["forget", "--json", *_tag_args(tags)]
    args += ["--keep-daily", str(keep_daily), "--keep-weekly", str(keep_weekly)]
    args += ["--keep-monthly", str(keep_monthly)]
    if prune:
        args.append("--prune")
    groups = _first_json(_run(repo, args), "forget")
    kept: list[str] = []
    removed: list[str] = []
    for group in groups if isinstance(groups, list) else []:
        kept += [str(s["id"]) for s in group.get("keep") or []]
        removed += [str(s["id"]) for s in group.get("remove") or []]
    return ForgetResult(kept=tuple(kept), removed=tuple(removed))


def check(repo: Repository, read_data_subset: str | None = "10%") -> None:
    """Check the repository's structure and read back ``read_data_subset`` of the pack data."""
    args = ["check"]
    if read_data_subset:
        if not re.fullmatch(r"\d+(\.\d+)?%|\d+/\d+|\d+[kKmMgGtT]?", read_data_subset):
            raise ValueError(f"restic: check: invalid read_data_subset {read_data_subset!r}")
        args.append(f"--read-data-subset={read_data_subset}")
    _run(repo, args)


def snapshots(repo: Repository, tags: Sequence[str] = ()) -> tuple[Snapshot, ...]:
    """The repository's snapshots (optionally only those with all ``tags``), oldest first."""
    found = _first_json(_run(repo, ["snapshots", "--json", *_tag_args(tags)]), "snapshots")
    return tuple(
        Snapshot(
            id=str(s["id"]),
            time=str(s["time"]),
            paths=tuple(s.get("paths") or ()),
            tags=tuple(s.get("tags") or ()),
        )
        for s in found or []
    )


def copy(from_repo: Repository, to_repo: Repository, tags: Sequence[str] = ()) -> None:
    """Copy every snapshot of ``from_repo`` not yet in ``to_repo`` (the disaster-recovery box)."""
    _same_ssh_config(to_repo, from_repo)
    _run(to_repo, ["copy", "--from-repo", from_repo.url, *_tag_args(tags)], source=from_repo)


def restore(
    repo: Repository,
    target_dir: Path,
    snapshot: str = "latest",
    tags: Sequence[str] = (),
    verify: bool = True,
) -> RestoreResult:
    """Restore one snapshot into an empty ``target_dir`` and verify every file.

    The snapshot's absolute paths are kept under ``target_dir``. Verification is twofold:
    restic's ``restore --verify`` re-reads each restored file against the blob hashes, and
    every file ``restic ls`` lists must exist with its size.
    """
    target = target_dir.resolve()
    if target.exists() and any(target.iterdir()):
        raise CommandFailedError(f"restic: restore: target {target} is not empty")
    snapshot_id = _resolve(repo, snapshot, tags)
    args = ["restore", snapshot_id, "--target", str(target)]
    if verify:
        args.append("--verify")
    _run(repo, args)
    files = 0
    size = 0
    for node in _ls(repo, snapshot_id):
        if node.get("type") != "file":
            continue
        restored = target / str(node["path"]).lstrip("/")
        expected = int(node.get("size", 0))
        if verify and (not restored.is_file() or restored.stat().st_size != expected):
            raise IntegrityError(f"restic: restore: {restored} missing or not {expected} bytes")
        files += 1
        size += expected
    return RestoreResult(snapshot_id=snapshot_id, target_dir=target, files=files, bytes=size)


def tree_digest(root: Path) -> dict[str, str]:
    """SHA-256 of every regular file under ``root``, keyed by its relative path."""
    digests: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            digests[path.relative_to(root).as_posix()] = digest.hexdigest()
    return digests


# --- running restic ------------------------------------------------------------------------


def _resolve(repo: Repository, snapshot: str, tags: Sequence[str]) -> str:
    if snapshot != "latest":
        if not re.fullmatch(r"[0-9a-f]{8,64}", snapshot):
            raise ValueError(f"restic: restore: invalid snapshot id {snapshot!r}")
        return snapshot
    found = snapshots(repo, tags)
    if not found:
        raise CommandFailedError(f"restic: restore: no snapshot with tags {list(tags)}")
    return max(found, key=lambda s: s.time).id


def _full_id(repo: Repository, short_id: str) -> str:
    found = _first_json(_run(repo, ["snapshots", "--json", short_id]), "snapshots")
    if not found:
        raise CommandFailedError(f"restic: backup: snapshot {short_id} not found after backup")
    return str(found[0]["id"])


def _ls(repo: Repository, snapshot_id: str) -> Iterator[dict[str, Any]]:
    for line in _run(repo, ["ls", "--json", snapshot_id]).splitlines():
        if line.startswith("{"):
            item = json.loads(line)
            if item.get("struct_type", "node") == "node" and "path" in item:
                yield item


def _tag_args(tags: Sequence[str]) -> list[str]:
    for tag in tags:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", tag):
            raise ValueError(f"restic: invalid tag {tag!r}")
    return [f"--tag={tag}" for tag in tags]


def _same_ssh_config(a: Repository, b: Repository) -> None:
    if a.ssh_config != b.ssh_config:
        raise ValueError("restic: both repositories of one command must share one ssh_config")


def _run(repo: Repository, args: list[str], source: Repository | None = None) -> str:
    """Run ``restic <args>`` against ``repo``; stdout on success, a classified error otherwise."""
    binary = shutil.which("restic")
    if binary is None:
        raise ResticMissingError("restic: restic is not installed (Debian package 'restic')")
    env = {"PATH": _SYSTEM_PATH, "HOME": str(Path.home()), "LC_ALL": "C.UTF-8"}
    env["RESTIC_REPOSITORY"] = repo.url
    env["RESTIC_PASSWORD_FILE"] = str(repo.password_file)
    if source is not None:
        env["RESTIC_FROM_PASSWORD_FILE"] = str(source.password_file)
    command = [binary, *args]
    if repo.cache_dir is not None:
        command.insert(1, f"--cache-dir={repo.cache_dir}")
    with _ssh_path(repo.ssh_config) as path:
        env["PATH"] = path
        try:
            done = subprocess.run(  # noqa: S603 - fixed binary, argument list, no shell
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise UnreachableError(f"restic: {args[0]}: timed out after {exc.timeout}s") from None
    if done.returncode != 0:
        raise _error(args[0], done.stderr or done.stdout, (repo, source))
    return done.stdout


@contextmanager
def _ssh_path(ssh_config: Path | None) -> Iterator[str]:
    """PATH for restic: with an ssh_config, an ``ssh`` wrapper that adds ``-F`` comes first."""
    if ssh_config is None:
        yield _SYSTEM_PATH
        return
    ssh = shutil.which("ssh", path=_SYSTEM_PATH) or "ssh"
    with tempfile.TemporaryDirectory(prefix="restic-ssh-") as tmp:
        wrapper = Path(tmp) / "ssh"
        wrapper.write_text(
            f'#!/bin/sh\nexec {shlex.quote(ssh)} -F {shlex.quote(str(ssh_config))} "$@"\n'
        )
        wrapper.chmod(0o700)
        yield f"{tmp}:{_SYSTEM_PATH}"


def _error(command: str, output: str, repos: tuple[Repository | None, ...]) -> ResticError:
    text = _redact(output, repos)
    kind = _ERROR_OF.get(restic_output.classify_output(text), CommandFailedError)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    detail = " | ".join(lines[-6:]) or "failed without a message"
    return kind(f"restic: {command}: {detail}"[:MESSAGE_LIMIT])


def _redact(text: str, repos: tuple[Repository | None, ...]) -> str:
    for repo in repos:
        if repo is None:
            continue
        try:
            secret = repo.password_file.read_text().strip()
        except OSError:
            continue
        if secret:
            text = text.replace(secret, "***")
    return text


def _first_json(stdout: str, command: str) -> Any:
    for line in stdout.splitlines():
        if line.startswith(("[", "{")):
            return json.loads(line)
    raise CommandFailedError(f"restic: {command}: no JSON in the output")


def _last_message(stdout: str, message_type: str, command: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            item = json.loads(line)
            if isinstance(item, dict) and item.get("message_type") == message_type:
                return item
    raise CommandFailedError(f"restic: {command}: no {message_type} in the output")
