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
prefixed with ``-``) through a throw-away ``ssh_config`` built from the inputs like
``providers.restic``: ``Port`` (23 on a Storage Box), ``IdentityFile`` (the main account's
key), ``BatchMode`` and only the pinned ``known_hosts`` lines (``StrictHostKeyChecking yes``).
Nothing here is secret; messages are redacted like every ``ApiError`` anyway.

Errors are ``ApiError``\\ s of system ``storagebox`` (messages start with ``storagebox: ``):
``RetryableApiError`` when the box could not be reached or ``sftp`` timed out;
``PermanentApiError`` for a host key that is not the pinned one, a refused SSH key, a missing
home directory, missing ``sftp``/``ssh`` binaries and anything else.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pulumi
from pulumi import dynamic
from pulumi.runtime.rpc import UNKNOWN

from components.providers import restic
from components.providers._base import known_problems
from components.providers._http import ApiError, PermanentApiError, RetryableApiError

__all__ = [
    "SFTP_PORT",
    "SYSTEM",
    "SubaccountAuthorizedKeys",
    "SubaccountAuthorizedKeysProvider",
    "public_key_problems",
]

SYSTEM = "storagebox"
SFTP_PORT = restic.SFTP_PORT
MARKER = "# managed by dezky-infra (Pulumi SubaccountAuthorizedKeys {owner}); edits are overwritten"
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_HOME_RE = re.compile(r"^/?[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*/?$")
_TYPE_RE = re.compile(r"^(?:ssh-ed25519|ssh-rsa|ecdsa-sha2-[a-z0-9]+|sk-[a-z0-9.@-]+)$")
_OWNER_RE = re.compile(r"^# managed by dezky-infra \(Pulumi SubaccountAuthorizedKeys (\w+)\)")
_FILE = ".ssh/authorized_keys"
_NEW = ".ssh/authorized_keys.dezky-new"
_OLD = ".ssh/authorized_keys.dezky-old"

Outcome = Literal["ok", "host-key", "key-refused", "unreachable", "missing", "failed"]

_PATTERNS: tuple[tuple[re.Pattern[str], Outcome], ...] = (
    (re.compile(r"host key verification failed|REMOTE HOST IDENTIFICATION", re.I), "host-key"),
    (re.compile(r"permission denied \(publickey", re.I), "key-refused"),
    (
        re.compile(
            r"connection refused|connection reset|connection timed out|no route to host|"
            r"could not resolve hostname|broken pipe|network is unreachable|"
            r"kex_exchange_identification|connection closed",
            re.I,
        ),
        "unreachable",
    ),
    (re.compile(r"File \".*\" not found|no such file or directory", re.I), "missing"),
)


def classify_output(output: str) -> Outcome:
    """What the output of a failed ``sftp`` batch means (``failed``: none of the known cases).

    A host key other than the pinned one and a refused SSH key come first: ssh ends both with
    "Connection closed", which alone means the box could not be reached."""
    for pattern, outcome in _PATTERNS:
        if pattern.search(output):
            return outcome
    return "failed"


# --- checks --------------------------------------------------------------------------------


def _blob_type(blob: bytes) -> str | None:
    """The key type an OpenSSH public key blob names in its first field."""
    size = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else 0
    if not 0 < size <= len(blob) - 4:
        return None
    try:
        return blob[4 : 4 + size].decode("ascii")
    except UnicodeDecodeError:
        return None


def _key_problem(entry: object) -> str | None:
    """Why ``entry`` is not one OpenSSH public key line; never quotes the entry itself."""
    if not isinstance(entry, str):
        return "is not a string"
    if "PRIVATE KEY" in entry or entry.lstrip().startswith("-----"):
        return "looks like a private key: give the public key (the .pub file)"
    text = entry.strip()
    if not text or any(c in text for c in "\n\r\x00"):
        return "must be exactly one line: one public key per entry"
    fields = text.split(maxsplit=2)
    if len(fields) < 2 or not _TYPE_RE.match(fields[0]):
        return (
            "must be '<type> <base64> [comment]' with type ssh-ed25519, ssh-rsa, "
            "ecdsa-sha2-* or sk-* (no options such as command=...)"
        )
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError):
        return f"the {fields[0]} key data is not base64"
    if _blob_type(blob) != fields[0]:
        return f"the key data is not a {fields[0]} key"
    if len(fields) == 3 and not fields[2].isprintable():
        return "the comment must be printable text"
    return None


def public_key_problems(keys: object) -> list[str]:
    """Why ``keys`` is not a non-empty list of distinct OpenSSH public key lines, entry by
    entry (``keys[1]: ...``); empty if it is one. Unknown entries (preview) pass. The messages
    never contain the entries: a pasted private key must not end up in a log."""
    if isinstance(keys, str) or not isinstance(keys, Sequence):
        return ["keys: must be a list of OpenSSH public keys, one a line"]
    if not keys:
        return ["keys: at least one public key is required (delete the resource for none)"]
    problems: list[str] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(keys):
        if entry == UNKNOWN:
            continue
        problem = _key_problem(entry)
        if problem is None:
            blob = str(entry).split()[1]
            if blob in seen:
                problem = f"is the same key as keys[{seen[blob]}]"
            seen.setdefault(blob, index)
        if problem is not None:
            problems.append(f"keys[{index}]: {problem}")
    return problems


def _keys_problem(value: object) -> str | None:
    problems = public_key_problems(value)
    return "; ".join(problems) if problems else None


def _host_problem(value: object) -> str | None:
    ok = isinstance(value, str) and _HOST_RE.match(value) and ".." not in value
    return None if ok else "must be a host name or IP address (the Storage Box's server)"


def _port_problem(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        return "must be a TCP port (23 on a Storage Box)"
    return None if 0 < value < 65536 else "must be a TCP port (23 on a Storage Box)"


def _user_problem(value: object) -> str | None:
    ok = isinstance(value, str) and _USER_RE.match(value)
    return None if ok else "must be the Storage Box's main user name, such as u123456"


def _home_problem(value: object) -> str | None:
    ok = isinstance(value, str) and _HOME_RE.match(value)
    if not ok or any(part in (".", "..") for part in str(value).split("/")):
        return "must be the subaccount's home directory: letters, digits, '.', '_', '-' and '/'"
    return None


def _identity_problem(value: object) -> str | None:
    ok = isinstance(value, str) and value.startswith("/") and "\n" not in value
    return None if ok else "must be the absolute path of the main account's SSH private key"


# --- running sftp --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    host: str
    port: int
    user: str
    home: str
    identity_file: str
    known_hosts: str

    @classmethod
    def of(cls, props: dict[str, Any]) -> _Target:
        return cls(
            host=str(props["host"]),
            port=int(props["port"]),
            user=str(props["user"]),
            home=str(props["home_directory"]).rstrip("/") or "/",
            identity_file=str(props["identity_file"]),
            known_hosts=str(props["known_hosts"]),
        )

    @property
    def url(self) -> str:
        """The file, in restic's URL form (two slashes after the port: an absolute home)."""
        return f"sftp://{self.user}@{self.host}:{self.port}/{self.home}/{_FILE}"


@dataclass(frozen=True)
class _Result:
    outcome: Outcome
    command: str
    """The batch command that failed (empty: none did)."""
    detail: str


class _Session:
    """``sftp -b`` batches against one box through one throw-away ssh_config."""

    def __init__(self, sftp: str, ssh: str, target: _Target, workdir: Path, timeout: float) -> None:
        self.sftp, self.ssh, self.target = sftp, ssh, target
        self.workdir, self.timeout = workdir, timeout
        self.config = workdir / "ssh_config"
        (workdir / "known_hosts").write_text(target.known_hosts.strip() + "\n")
        self.config.write_text(
            "Host storagebox\n"
            f"    HostName {target.host}\n    Port {target.port}\n    User {target.user}\n"
            f"    IdentityFile {target.identity_file}\n    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {workdir / 'known_hosts'}\n"
            "    GlobalKnownHostsFile /dev/null\n    StrictHostKeyChecking yes\n"
            "    BatchMode yes\n    ConnectTimeout 15\n    ForwardAgent no\n"
        )

    def batch(self, *commands: str) -> _Result:
        """Run ``commands`` in the home directory, one ``sftp`` connection."""
        script = self.workdir / "batch"
        script.write_text("\n".join((f'cd "{self.target.home}"', *commands)) + "\n")
        argv = [self.sftp, "-S", self.ssh, "-F", str(self.config), "-b", str(script), "storagebox"]
        env = {"PATH": _SYSTEM_PATH, "HOME": str(self.workdir), "LC_ALL": "C.UTF-8"}
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
                raise RetryableApiError(
                    SYSTEM, f"sftp to {self.target.url} timed out after {self.timeout:g}s"
                ) from None
        echoed = [line[6:] for line in stdout.splitlines() if line.startswith("sftp> ")]
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        if proc.returncode == 0:
            return _Result("ok", "", " | ".join(lines[-4:]))
        command = echoed[-1] if echoed else ""
        return _Result(classify_output(stderr), command, " | ".join(lines[-4:]))

    def fail(self, what: str, result: _Result) -> ApiError:
        """The error of a batch that did not succeed."""
        where = f"{what} {self.target.url}"
        if result.outcome == "unreachable":
            return RetryableApiError(
                SYSTEM,
                f"{where}: could not connect to the Storage Box over SFTP (port "
                f"{self.target.port}, pinned host keys, key {self.target.identity_file}): "
                f"{result.detail}",
            )
        if result.outcome == "host-key":
            return PermanentApiError(
                SYSTEM,
                f"{where}: the server's SSH host key is not the pinned one (known_hosts); "
                f"check the Storage Box's host key before changing the pin: {result.detail}",
            )
        if result.outcome == "key-refused":
            return PermanentApiError(
                SYSTEM,
                f"{where}: the server refused the SSH key {self.target.identity_file} for "
                f"{self.target.user}; it must be one of the box's ssh_keys (set at creation): "
                f"{result.detail}",
            )
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
        if classify_output(result.detail) == "missing":
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


class SubaccountAuthorizedKeysProvider(dynamic.ResourceProvider):
    """A subaccount's ``.ssh/authorized_keys``, written as the main account over SFTP."""

    inputs = ("host", "port", "user", "home_directory", "identity_file", "known_hosts", "keys")
    checks = (
        ("host", _host_problem),
        ("port", _port_problem),
        ("user", _user_problem),
        ("home_directory", _home_problem),
        ("identity_file", _identity_problem),
        ("known_hosts", restic.known_hosts_problem),
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

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        changed = [
            k
            for k in self.inputs
            if _unknown(news.get(k)) or _plain(olds.get(k)) != _plain(news.get(k))
        ]
        return dynamic.DiffResult(
            changes=bool(changed),
            replaces=[k for k in changed if k in self.replace_on],
            stables=[],
            delete_before_replace=False,
        )

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
        if (old.host, old.user, old.home) != (target.host, target.user, target.home):
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

    @staticmethod
    def _binary(name: str, package: str) -> str:
        found = shutil.which(name, path=_SYSTEM_PATH)  # a path: checked as it is
        if found is None:
            raise PermanentApiError(SYSTEM, f"{name} is not installed (Debian package '{package}')")
        return found

    @contextmanager
    def _session(self, target: _Target) -> Iterator[_Session]:
        sftp = self._binary(self.sftp, "openssh-client")
        ssh = self._binary(self.ssh, "openssh-client")
        with tempfile.TemporaryDirectory(prefix="boxkeys-") as tmp:
            yield _Session(sftp, ssh, target, Path(tmp), self.timeout)


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
    outs["port"] = target.port
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
