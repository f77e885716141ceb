"""restic repositories on Storage Box (sub)accounts as Pulumi dynamic resources.

``ResticRepositoryProvider`` runs the ``restic`` binary over SFTP:

* **create** opens the repository first (``restic cat config``): an existing one is adopted,
  a missing one is created with ``restic init``. ``init`` is never run on a location where a
  repository may exist: a wrong password or a lost connection is an error, not "missing".
* **read** opens it again: a missing repository is reported gone (refresh drops it); a wrong
  password or an unreachable box stays an error, so a refresh never forgets a repository
  because the network was down.
* **update** of the password rotates the key: ``restic key add`` (opened with the old
  password), then ``restic key remove`` of the old key (opened with the new one). The data is
  untouched; at every step one of the two passwords opens the repository, and a rerun after an
  interruption finishes the rotation. A new host, port, user or path is another repository:
  replaced (the new location is adopted or initialised, the old one is only forgotten).
* **delete** only forgets the repository. Backups are deleted by a person, never by a stack;
  the component also declares the resource with ``protect`` and ``retain_on_delete``.

SFTP runs through a throw-away ``ssh_config`` built from the inputs by ``_sftp.scratch``:
``Port`` (23 on a Storage Box), ``IdentityFile``, ``BatchMode`` and only the pinned
``known_hosts`` lines of the input (``StrictHostKeyChecking yes``). The password reaches
restic only through ``RESTIC_PASSWORD`` in its environment (a new one through a 0600 file):
never on the command line, and it is redacted from every message. restic's environment is
built from scratch, so a ``RESTIC_*`` variable of the engine cannot redirect it.

Errors are ``ApiError``\\ s of system ``restic`` (messages start with ``restic: ``):
``RetryableApiError`` when the box could not be reached (the message says "could not
connect"), restic timed out or the repository is locked; ``PermanentApiError`` otherwise.

restic's output is read by ``_restic_output.classify_output``, shared with
``automation.backup``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi import dynamic
from pulumi.runtime.rpc import UNKNOWN

from components.providers import _sftp
from components.providers._base import DeclaredProvider
from components.providers._http import ApiError, PermanentApiError, RetryableApiError
from components.providers._restic_output import Outcome, classify_output

__all__ = [
    "SFTP_PORT",
    "SYSTEM",
    "ResticRepository",
    "ResticRepositoryProvider",
]

SYSTEM = "restic"
SFTP_PORT = _sftp.SFTP_PORT
_PATH_RE = re.compile(r"^/?[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*$")
_KEY_REMEDY = "its public key must be in that account's .ssh/authorized_keys"

# --- checks --------------------------------------------------------------------------------

_user_problem = _sftp.user_check("must be the (sub)account's user name, such as u123456-sub1")
_identity_problem = _sftp.identity_check("must be the absolute path of the SSH private key file")


def _path_problem(value: object) -> str | None:
    ok = isinstance(value, str) and _PATH_RE.match(value)
    if not ok or any(part in (".", "..") for part in str(value).split("/")):
        return "must be a path of letters, digits, '.', '_', '-' (relative: in the home)"
    return None


def _password_problem(value: object) -> str | None:
    ok = isinstance(value, str) and len(value) >= 16 and "\n" not in value
    return None if ok else "must be a single-line password of at least 16 characters"


# --- running restic ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    box: _sftp.Box
    path: str
    password: str = field(repr=False)

    @classmethod
    def of(cls, props: dict[str, Any]) -> _Target:
        return cls(_sftp.Box.of(props), str(props["path"]), str(props["password"]))

    @property
    def url(self) -> str:
        """Where the repository is, in restic's URL form (one slash after the port: relative
        to the home directory, two: absolute); no secret in it."""
        return self.box.url(self.path)


@dataclass(frozen=True)
class _Result:
    outcome: Outcome
    stdout: str
    detail: str


class _Session:
    """restic commands against one repository through one throw-away ssh_config."""

    def __init__(
        self, restic: str, target: _Target, scratch: _sftp.Scratch, timeout: float
    ) -> None:
        self.restic = restic
        self.target = target
        self.workdir = scratch.path
        self.timeout = timeout
        self.secrets: list[str] = [target.password]
        # ssh's own messages go to a file: restic may exit before relaying ssh's stderr.
        self.ssh_log = scratch.path / "ssh.log"
        self.sftp_command = (
            f"ssh -F {scratch.ssh_config} -E {self.ssh_log} {_sftp.HOST_ALIAS} -s sftp"
        )

    def run(self, args: Sequence[str], password: str | None = None) -> _Result:
        """``restic <args>`` opened with ``password`` (default: the target's)."""
        env = _sftp.environment(
            self.workdir,
            RESTIC_PASSWORD=password if password is not None else self.target.password,
        )
        command = [
            self.restic,
            "--no-cache",
            "-o",
            f"sftp.command={self.sftp_command}",
            "--repo",
            f"sftp:{_sftp.HOST_ALIAS}:{self.target.path}",
            *args,
        ]
        try:
            done = subprocess.run(  # noqa: S603 - fixed binary, argument list, no shell
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise _sftp.timed_out(SYSTEM, f"{args[0]} on {self.target.url}", self.timeout) from None
        ssh_output = self.ssh_log.read_text() if self.ssh_log.exists() else ""
        self.ssh_log.unlink(missing_ok=True)
        if done.returncode == 0:
            return _Result("ok", done.stdout, "")
        output = ssh_output + (done.stderr or done.stdout)
        return _Result(classify_output(output), done.stdout, _sftp.tail(output))

    def fail(self, what: str, result: _Result) -> ApiError:
        """The error of a restic command that did not succeed."""
        where = f"{what} {self.target.url}"
        ssh_error = _sftp.connection_error(
            SYSTEM, self.target.box, where, result.outcome, result.detail,
            key_remedy=_KEY_REMEDY, secrets=self.secrets,
        )  # fmt: skip
        if ssh_error is not None:
            return ssh_error
        if result.outcome == "locked":
            return RetryableApiError(
                SYSTEM, f"{where}: locked by another restic process: {result.detail}",
                secrets=self.secrets,
            )  # fmt: skip
        if result.outcome == "wrong-password":
            return PermanentApiError(
                SYSTEM,
                f"{where}: a repository is there but the password does not open it; it is "
                "never re-initialised: set the password it was created with (or add a key "
                f"for this one with 'restic key add'): {result.detail}",
                secrets=self.secrets,
            )
        if result.outcome == "missing":
            return PermanentApiError(
                SYSTEM, f"{where}: no repository there: {result.detail}", secrets=self.secrets
            )
        return PermanentApiError(SYSTEM, f"{where}: restic failed: {result.detail}",
                                 secrets=self.secrets)  # fmt: skip

    def config(self, password: str | None = None) -> tuple[str | None, _Result]:
        """The repository id (None: no repository there), opened with ``password``."""
        result = self.run(["cat", "config"], password)
        if result.outcome == "ok":
            try:
                return str(json.loads(result.stdout)["id"]), result
            except (ValueError, KeyError, TypeError):
                raise PermanentApiError(
                    SYSTEM, f"cat config {self.target.url}: not a restic config"
                ) from None
        if result.outcome == "missing":
            return None, result
        raise self.fail("opening", result)

    def keys(self, password: str) -> list[dict[str, Any]] | None:
        """The repository's keys as ``password`` opens it (``current``: its own), or None if
        it does not open it; a missing repository is an error here."""
        result = self.run(["key", "list", "--json"], password)
        if result.outcome == "wrong-password":
            return None
        if result.outcome != "ok":
            raise self.fail("opening", result)
        try:
            keys = json.loads(result.stdout)
        except ValueError:
            raise PermanentApiError(SYSTEM, "key list: restic gave no JSON") from None
        return [k for k in keys if isinstance(k, dict)] if isinstance(keys, list) else []


# --- the provider --------------------------------------------------------------------------


class ResticRepositoryProvider(DeclaredProvider):
    """A restic repository on an SFTP server (a Storage Box subaccount); never deleted here."""

    inputs = ("host", "port", "user", "path", "identity_file", "known_hosts", "password")
    checks = (
        ("host", _sftp.host_problem),
        ("port", _sftp.port_problem),
        ("user", _user_problem),
        ("path", _path_problem),
        ("identity_file", _identity_problem),
        ("known_hosts", _sftp.known_hosts_problem),
        ("password", _password_problem),
    )
    replace_on = frozenset({"host", "port", "user", "path"})

    def __init__(self, *, restic: str = "restic", timeout: float = 600.0) -> None:
        super().__init__()
        self.restic = restic
        self.timeout = timeout

    def _changed(self, olds: dict[str, Any], news: dict[str, Any]) -> list[str]:
        return [
            k
            for k in self.inputs
            if news.get(k) == UNKNOWN or _plain(olds.get(k)) != _plain(news.get(k))
        ]

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        target = _Target.of(props)
        with self._session(target) as session:
            repository_id, _ = session.config()
            if repository_id is None:
                result = session.run(["init"])
                repository_id, _ = session.config()  # also adopts one made meanwhile
                if repository_id is None:
                    raise session.fail("initialising", result)
        return dynamic.CreateResult(target.url, _outs(props, target, repository_id))

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        target = _Target.of(props)
        with self._session(target) as session:
            repository_id, _ = session.config()
        if repository_id is None:
            return dynamic.ReadResult("", {})  # gone: refresh drops it
        outs = _outs(props, target, repository_id)
        return dynamic.ReadResult(id_, outs, {k: outs[k] for k in self.inputs})

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        target = _Target.of(news)
        old_password = str(olds.get("password") or "")
        with self._session(target) as session:
            session.secrets.append(old_password)
            if old_password and old_password != target.password:
                self._rotate(session, old_password)  # the new password opened it: verified
                repository_id = str(olds.get("repository_id") or "") or None
            else:
                repository_id, opened = session.config()  # verify the new connection inputs
                if repository_id is None:
                    raise session.fail("opening", opened)
            if repository_id is None:
                repository_id, _ = session.config()
        return dynamic.UpdateResult(_outs(news, target, repository_id or ""))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        # Deliberately nothing: the repository and its snapshots stay on the Storage Box.
        return None

    # --- helpers -------------------------------------------------------------------------

    @contextmanager
    def _session(self, target: _Target) -> Iterator[_Session]:
        binary = _sftp.binary(SYSTEM, self.restic, "restic")
        options = ("ServerAliveInterval 60", "ServerAliveCountMax 240")
        with _sftp.scratch(target.box, prefix="restic-repo-", options=options) as scratch:
            yield _Session(binary, target, scratch, self.timeout)

    @staticmethod
    def _rotate(session: _Session, old_password: str) -> None:
        """Give the repository the new password as a key, then remove the old password's.

        Each step checks what is already done, so a rerun after an interruption completes
        the rotation instead of adding a second key."""
        new_password = session.target.password
        new_opens = session.keys(new_password) is not None
        old_keys = session.keys(old_password)
        if not new_opens and old_keys is None:
            raise PermanentApiError(
                SYSTEM,
                f"rotating the password of {session.target.url}: neither the new nor the "
                "previous password opens the repository; it is never re-initialised",
            )
        if not new_opens:
            secret_file = session.workdir / "new-password"
            fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(new_password + "\n")
            added = session.run(["key", "add", f"--new-password-file={secret_file}"], old_password)
            secret_file.unlink()
            if added.outcome != "ok":
                raise session.fail("adding the new key to", added)
        for key in old_keys or []:
            if not key.get("current"):
                continue  # the old password's own key only; other keys are a person's
            removed = session.run(["key", "remove", str(key.get("id"))], new_password)
            if removed.outcome != "ok":
                raise session.fail("removing the old key of", removed)


def _plain(value: object) -> object:
    return int(value) if isinstance(value, float) and value == int(value) else value


def _outs(props: dict[str, Any], target: _Target, repository_id: str) -> dict[str, Any]:
    outs = {k: props[k] for k in ResticRepositoryProvider.inputs}
    outs["port"] = target.box.port
    outs["url"] = target.url
    outs["repository_id"] = repository_id
    return outs


# --- the resource --------------------------------------------------------------------------


class ResticRepository(dynamic.Resource, module="restic", name="Repository"):
    """A restic repository at ``sftp://<user>@<host>:<port>/<path>``, adopted or initialised.

    ``password`` is kept secret in state. Removing the resource never deletes the repository.
    """

    host: pulumi.Output[str]
    port: pulumi.Output[int]
    user: pulumi.Output[str]
    path: pulumi.Output[str]
    url: pulumi.Output[str]
    repository_id: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        host: pulumi.Input[str],
        user: pulumi.Input[str],
        path: pulumi.Input[str],
        password: pulumi.Input[str],
        identity_file: pulumi.Input[str],
        known_hosts: pulumi.Input[str],
        port: pulumi.Input[int] = SFTP_PORT,
        opts: pulumi.ResourceOptions | None = None,
        provider: ResticRepositoryProvider | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "host": host,
            "port": port,
            "user": user,
            "path": path,
            "identity_file": identity_file,
            "known_hosts": known_hosts,
            "password": pulumi.Output.secret(password),
            "url": None,
            "repository_id": None,
        }
        secret = pulumi.ResourceOptions(additional_secret_outputs=["password"])
        super().__init__(
            provider or ResticRepositoryProvider(),
            resource_name,
            props,
            pulumi.ResourceOptions.merge(opts, secret),
        )
