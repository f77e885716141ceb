"""A Storage Box subaccount's ``.ssh/authorized_keys`` as a Pulumi dynamic resource.

Hetzner's API sets SSH keys only on the main account and only at creation. A subaccount
(user ``uXXXXX-subN``, home = a folder of the main account's home) accepts key logins once its
own ``<home>/.ssh/authorized_keys`` exists. ``SubaccountAuthorizedKeysProvider`` logs in over
SFTP as the main account (whose key was set at creation) and writes that file:

* **create** / **update** write exactly the given public keys (OpenSSH format, one a line,
  port 23's format; port 22 would want RFC 4716), below one comment line that marks the file
  as ours with the resource's ``owner`` token. ``.ssh`` is made 0700, the file 0600. The file
  is uploaded under a temporary name and renamed over the old one: OpenSSH's ``sftp`` renames
  with ``posix-rename@openssh.com`` when the server offers it (``internal-sftp`` does), an
  atomic replace. A server without it refuses to rename onto an existing file; then the old
  file is moved aside, the new one renamed in and the old one removed (a short window without
  the file; a failure in it moves the old file back). A new home directory is written, then
  the file in the old one is removed if it is still ours.
* **read** downloads the file and reports the keys in it; a missing file (or home) reports no
  keys, so a refresh shows the drift and the next update writes the file again.
* **delete** removes the file if it still carries this resource's ``owner`` token, and leaves
  ``.ssh`` and everything else alone. The subaccount and its repository are retained
  elsewhere; the key is a credential, and a credential nobody declares any more should stop
  working, so removing it is the honest inverse of create. The token keeps a resource that
  was replaced or renamed (a new resource wrote the file since) from removing its successor's
  file. Edits by hand are overwritten by the next update and reported by a refresh.

SFTP runs OpenSSH's ``sftp -b`` (batch mode: a failing command stops the batch unless it is
prefixed with ``-``) through a throw-away ``ssh_config`` built from the inputs by
``_sftp.scratch``, as for ``providers.restic``: ``Port`` (23 on a Storage Box),
``IdentityFile`` (the main account's key), ``BatchMode`` and only the pinned ``known_hosts``
lines (``StrictHostKeyChecking yes``); ``_sftp.classify_output`` reads what ``sftp`` says.
Nothing here is secret; messages are redacted like every ``ApiError`` anyway.

Errors are ``ApiError``\\ s of system ``storagebox`` (messages start with ``storagebox: ``):
``RetryableApiError`` when the box could not be reached or ``sftp`` timed out;
``PermanentApiError`` for a host key that is not the pinned one, a refused SSH key, a missing
home directory, missing ``sftp``/``ssh`` binaries and anything else.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi import dynamic
from pulumi.runtime.rpc import UNKNOWN

from components.providers import _sftp
from components.providers._base import DeclaredProvider, known_problems
from components.providers._http import ApiError, PermanentApiError

__all__ = [
    "SFTP_PORT",
    "SYSTEM",
    "SubaccountAuthorizedKeys",
    "SubaccountAuthorizedKeysProvider",
    "public_key_problems",
]

SYSTEM = "storagebox"
SFTP_PORT = _sftp.SFTP_PORT
MARKER = "# managed by dezky-infra (Pulumi SubaccountAuthorizedKeys {owner}); edits are overwritten"
_HOME_RE = re.compile(r"^/?[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*/?$")
_OWNER_RE = re.compile(r"^# managed by dezky-infra \(Pulumi SubaccountAuthorizedKeys (\w+)\)")
_FILE = ".ssh/authorized_keys"
_NEW = ".ssh/authorized_keys.dezky-new"
_OLD = ".ssh/authorized_keys.dezky-old"
_KEY_REMEDY = "it must be one of the box's ssh_keys (set at creation)"

# --- checks --------------------------------------------------------------------------------

public_key_problems = _sftp.public_key_problems
_user_problem = _sftp.user_check("must be the Storage Box's main user name, such as u123456")
_identity_problem = _sftp.identity_check(
    "must be the absolute path of the main account's SSH private key"
)


def _keys_problem(value: object) -> str | None:
    problems = public_key_problems(value)
    return "; ".join(problems) if problems else None


def _home_problem(value: object) -> str | None:
    ok = isinstance(value, str) and _HOME_RE.match(value)
    if not ok or any(part in (".", "..") for part in str(value).split("/")):
        return "must be the subaccount's home directory: letters, digits, '.', '_', '-' and '/'"
    return None


# --- running sftp --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    box: _sftp.Box
    home: str

    @classmethod
    def of(cls, props: dict[str, Any]) -> _Target:
        return cls(_sftp.Box.of(props), str(props["home_directory"]).rstrip("/") or "/")

    @property
    def url(self) -> str:
        """The file, in restic's URL form (two slashes after the port: an absolute home)."""
        return self.box.url(f"{self.home}/{_FILE}")

    @property
    def place(self) -> tuple[str, str, str]:
        """Which file this is: another port or key reaches the same one."""
        return self.box.host, self.box.user, self.home


@dataclass(frozen=True)
class _Result:
    outcome: _sftp.Outcome
    command: str
    """The batch command that failed (empty: none did)."""
    detail: str


class _Session:
    """``sftp -b`` batches against one box through one throw-away ssh_config."""

    def __init__(
        self, sftp: str, ssh: str, target: _Target, scratch: _sftp.Scratch, timeout: float
    ) -> None:
        self.sftp, self.ssh, self.target = sftp, ssh, target
        self.workdir, self.config, self.timeout = scratch.path, scratch.ssh_config, timeout

    def batch(self, *commands: str) -> _Result:
        """Run ``commands`` in the home directory, one ``sftp`` connection."""
        script = self.workdir / "batch"
        script.write_text("\n".join((f'cd "{self.target.home}"', *commands)) + "\n")
        options = ["-S", self.ssh, "-F", str(self.config), "-b", str(script)]
        argv = [self.sftp, *options, _sftp.HOST_ALIAS]
        env = _sftp.environment(self.workdir)
        # Its own process group: a timeout ends ssh too, not only sftp.
        with subprocess.Popen(  # noqa: S603 - resolved binary, argument list, no shell
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
        ) as proc:  # fmt: skip
            try:
                stdout, stderr = proc.communicate(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                raise _sftp.timed_out(SYSTEM, f"sftp to {self.target.url}", self.timeout) from None
        echoed = [line[6:] for line in stdout.splitlines() if line.startswith("sftp> ")]
        if proc.returncode == 0:
            return _Result("ok", "", _sftp.tail(stderr))
        command = echoed[-1] if echoed else ""
        return _Result(_sftp.classify_output(stderr), command, _sftp.tail(stderr))

    def fail(self, what: str, result: _Result) -> ApiError:
        """The error of a batch that did not succeed."""
        where = f"{what} {self.target.url}"
        ssh_error = _sftp.connection_error(
            SYSTEM, self.target.box, where, result.outcome, result.detail, key_remedy=_KEY_REMEDY
        )
        if ssh_error is not None:
            return ssh_error
        if result.command.startswith("cd ") and result.outcome == "missing":
            return PermanentApiError(
                SYSTEM,
                f"{where}: the home directory {self.target.home} does not exist on the box "
                f"(is it the subaccount's home_directory?): {result.detail}",
            )
        failed = f" at '{result.command}'" if result.command else ""
        return PermanentApiError(SYSTEM, f"{where}: sftp failed{failed}: {result.detail}")

    def download(self) -> str | None:
        """The file's text, or None if there is no file (or no home directory)."""
        local = self.workdir / "authorized_keys.current"
        local.unlink(missing_ok=True)
        result = self.batch(f'-get "{_FILE}" "{local}"')
        if result.outcome == "missing" and result.command.startswith("cd "):
            return None  # no home directory: no file either
        if result.outcome != "ok":
            raise self.fail("reading", result)
        if local.exists():
            return local.read_text(errors="replace")
        if _sftp.classify_output(result.detail) == "missing":
            return None
        raise self.fail("reading", _Result("failed", f"get {_FILE}", result.detail))

    def upload(self, text: str) -> None:
        """Replace the file with ``text``: upload under a temporary name, then rename."""
        local = self.workdir / "authorized_keys.new"
        local.write_text(text)
        local.chmod(0o600)  # sftp creates the remote file with the local mode
        result = self.batch(
            "-mkdir .ssh", "chmod 700 .ssh", f'put "{local}" {_NEW}', f"chmod 600 {_NEW}",
            f"rename {_NEW} {_FILE}",
        )  # fmt: skip
        if result.outcome == "failed" and result.command.startswith("rename "):
            result = self._replace_without_posix_rename()
        if result.outcome != "ok":
            raise self.fail("writing", result)

    def _replace_without_posix_rename(self) -> _Result:
        """The plain SFTP rename (``-l``) onto a file that is moved aside first."""
        result = self.batch(
            f"-rm {_OLD}", f"-rename -l {_FILE} {_OLD}", f"rename -l {_NEW} {_FILE}",
            f"-rm {_OLD}",
        )  # fmt: skip
        if result.outcome != "ok" and result.command.startswith(f"rename -l {_NEW}"):
            self.batch(f"-rename -l {_OLD} {_FILE}")  # put the old keys back: best effort
        return result

    def remove(self) -> None:
        """Remove the file; a missing file or home directory is already the goal."""
        result = self.batch(f"rm {_FILE}")
        if result.outcome not in ("ok", "missing"):
            raise self.fail("removing", result)


# --- the provider --------------------------------------------------------------------------


class SubaccountAuthorizedKeysProvider(DeclaredProvider):
    """A subaccount's ``.ssh/authorized_keys``, written as the main account over SFTP."""

    inputs = ("host", "port", "user", "home_directory", "identity_file", "known_hosts", "keys")
    checks = (
        ("host", _sftp.host_problem),
        ("port", _sftp.port_problem),
        ("user", _user_problem),
        ("home_directory", _home_problem),
        ("identity_file", _identity_problem),
        ("known_hosts", _sftp.known_hosts_problem),
        ("keys", _keys_problem),
    )
    replace_on = frozenset({"host", "user"})
    """Another box: the file there is another resource. A new home is an update (moved)."""

    def __init__(self, *, sftp: str = "sftp", ssh: str = "ssh", timeout: float = 120.0) -> None:
        super().__init__()
        self.sftp = sftp
        self.ssh = ssh
        self.timeout = timeout

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        problems = known_problems(news, self.checks)
        inputs = dict(news)
        if not problems and isinstance(news.get("keys"), list):
            inputs["keys"] = [k if k == UNKNOWN else str(k).strip() for k in news["keys"]]
        return dynamic.CheckResult(inputs, [dynamic.CheckFailure(k, r) for k, r in problems])

    def _changed(self, olds: dict[str, Any], news: dict[str, Any]) -> list[str]:
        return [
            k
            for k in self.inputs
            if _unknown(news.get(k)) or _plain(olds.get(k)) != _plain(news.get(k))
        ]

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        target, owner = _Target.of(props), uuid.uuid4().hex
        with self._session(target) as session:
            session.upload(_render(owner, props["keys"]))
        return dynamic.CreateResult(target.url, _outs(props, target, owner))

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        target = _Target.of(props)
        with self._session(target) as session:
            text = session.download()
        owner = str(props.get("owner") or "")
        outs = _outs({**props, "keys": _keys_in(text or "")}, target, owner)
        return dynamic.ReadResult(id_, outs, {k: outs[k] for k in self.inputs})

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        target = _Target.of(news)
        owner = str(olds.get("owner") or "") or uuid.uuid4().hex
        with self._session(target) as session:
            session.upload(_render(owner, news["keys"]))
        old = _Target.of(olds)
        if old.place != target.place:
            self._remove_if_ours(old, owner)
        return dynamic.UpdateResult(_outs(news, target, owner))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        self._remove_if_ours(_Target.of(props), str(props.get("owner") or ""))

    # --- helpers -------------------------------------------------------------------------

    def _remove_if_ours(self, target: _Target, owner: str) -> None:
        """Remove the file if it still carries ``owner``; leave anyone else's alone."""
        with self._session(target) as session:
            text = session.download()
            if text is not None and owner and _owner_of(text) == owner:
                session.remove()

    @contextmanager
    def _session(self, target: _Target) -> Iterator[_Session]:
        sftp = _sftp.binary(SYSTEM, self.sftp, "openssh-client")
        ssh = _sftp.binary(SYSTEM, self.ssh, "openssh-client")
        with _sftp.scratch(target.box, prefix="boxkeys-", options=["ForwardAgent no"]) as scratch:
            yield _Session(sftp, ssh, target, scratch, self.timeout)


def _unknown(value: object) -> bool:
    return value == UNKNOWN or (isinstance(value, list) and UNKNOWN in value)


def _plain(value: object) -> object:
    if isinstance(value, float) and value == int(value):
        return int(value)
    return list(value) if isinstance(value, tuple) else value


def _render(owner: str, keys: Sequence[str]) -> str:
    return "\n".join([MARKER.format(owner=owner), *(str(k).strip() for k in keys)]) + "\n"


def _keys_in(text: str) -> list[str]:
    """The key lines of an authorized_keys file (comments and blank lines skipped)."""
    stripped = (line.strip() for line in text.splitlines())
    return [line for line in stripped if line and not line.startswith("#")]


def _owner_of(text: str) -> str | None:
    match = _OWNER_RE.match(text)
    return match.group(1) if match else None


def _outs(props: dict[str, Any], target: _Target, owner: str) -> dict[str, Any]:
    outs = {k: props[k] for k in SubaccountAuthorizedKeysProvider.inputs}
    outs["port"] = target.box.port
    outs["keys"] = [str(k).strip() for k in props["keys"]]
    outs["url"] = target.url
    outs["owner"] = owner
    return outs


# --- the resource --------------------------------------------------------------------------


class SubaccountAuthorizedKeys(
    dynamic.Resource, module="storagebox", name="SubaccountAuthorizedKeys"
):
    """``<home_directory>/.ssh/authorized_keys`` of a subaccount, written as the main account
    (``user``, key ``identity_file``) with exactly ``keys``. Deleting it removes the file."""

    host: pulumi.Output[str]
    port: pulumi.Output[int]
    user: pulumi.Output[str]
    home_directory: pulumi.Output[str]
    keys: pulumi.Output[list[str]]
    url: pulumi.Output[str]
    owner: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        host: pulumi.Input[str],
        user: pulumi.Input[str],
        home_directory: pulumi.Input[str],
        keys: pulumi.Input[Sequence[pulumi.Input[str]]],
        identity_file: pulumi.Input[str],
        known_hosts: pulumi.Input[str],
        port: pulumi.Input[int] = SFTP_PORT,
        opts: pulumi.ResourceOptions | None = None,
        provider: SubaccountAuthorizedKeysProvider | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "host": host,
            "port": port,
            "user": user,
            "home_directory": home_directory,
            "identity_file": identity_file,
            "known_hosts": known_hosts,
            "keys": keys,
            "url": None,
            "owner": None,
        }
        super().__init__(provider or SubaccountAuthorizedKeysProvider(), resource_name, props, opts)
